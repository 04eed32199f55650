//! The portal in a real Chromium (headless, through chromedriver): sign in, create a
//! team and a service, push and watch the run page turn to succeeded without a reload,
//! open the app, create an environment through the generated form (a bad parameter is
//! refused by the browser and, past it, by the server with its message), roll back from
//! the releases list, and publish a template version. Screenshots of the main pages are
//! saved under target/test-artifacts/portal/.
//!
//! SQLite only: it is about the pages in a real browser; the portal's routes and queries
//! run on both databases in `portal.rs`.

use fantoccini::Locator;
use slipway_e2e::browser::{Browser, artifacts_dir};
use slipway_e2e::{ADMIN_PASSWORD, Db, TestApp, borrowed, commit, engine, fixture_app, git, local_repo};

const TEMPLATE: &str = "apiVersion: slipway.dev/v1
kind: EnvironmentTemplate
metadata: {name: browser-made, version: 1.0.0, description: Published from the portal}
parameters:
  replicas: {type: integer, default: 1, minimum: 1, maximum: 3}
spec:
  workloads:
    web: {replicas: \"${replicas}\", memory: 64Mi, port: 8080, health: /}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_portal_in_chromium() {
    let app = TestApp::start(Db::Sqlite).await;
    let browser = Browser::start().await;
    let base = app.url.clone();

    // Sign in through the form.
    browser.goto(&format!("{base}/services/anything")).await;
    assert_eq!(browser.current_path().await, "/login", "pages send the browser to sign in");
    browser.screenshot("login").await;
    browser.fill("#username", "admin").await;
    browser.fill("#password", ADMIN_PASSWORD).await;
    browser.click("form[action='/login'] button[type=submit]").await;
    browser.wait_for_text("main h1", "Not found", 10).await; // back where it was going

    // Create a team in the admin page, join it, then create a service on the dashboard.
    browser.goto(&format!("{base}/admin")).await;
    browser.fill("#new-team", "web-team").await;
    browser.click("form[action='/admin/teams'] button").await;
    browser.wait_for_text("main h1", "Team web-team", 10).await;
    browser.fill("#member-username", "admin").await;
    browser.click("form[action='/teams/web-team/members'] button").await;
    browser.wait_for_text(".members", "admin", 10).await;
    browser.goto(&format!("{base}/")).await;
    browser.click("#new-service summary").await;
    browser.fill("#service-name", "storefront").await;
    browser.fill("#service-description", "Made in Chromium").await;
    browser.click("form[action='/services'] button").await;
    browser.wait_for_text("main h1", "storefront", 10).await;
    browser.screenshot("service-empty").await;

    // Push, and watch the run page go to succeeded live.
    let token = app.admin_api_token("browser-git").await;
    let url = app.git_url("storefront", &token);
    let work = local_repo(&borrowed(&fixture_app("hello from chromium v1\n"))).await;
    let dir = work.path().to_owned();
    let push_url = url.clone();
    let push = tokio::spawn(async move { git(&dir, &[], &["push", &push_url, "main"]).await });
    let run = app.eventually_run("storefront").await;
    browser.goto(&format!("{base}/runs/{run}")).await;
    let done =
        app.wait_for_run(run, 120, |r| !matches!(r["status"].as_str(), Some("queued" | "running" | "preparing"))).await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", app.server_output());
    let status = browser.wait_for_text("#run-status", "succeeded", 10).await;
    assert_eq!(status, "succeeded");
    let log = browser.wait_for_text("#log", "Deploy production v1", 10).await;
    assert!(log.contains("STEP 1/3"), "the build log streamed in: {log}");
    let stage = browser.client.find(Locator::Css("#stages li[data-stage=deploy] .status")).await.expect("stage");
    assert_eq!(stage.text().await.expect("text"), "succeeded");
    browser.screenshot("run").await;
    let pushed = push.await.expect("push task");
    assert_eq!(pushed.code, 0, "{pushed:?}");

    the_run_page_follows_a_run_without_a_reload(&app, &browser, &token).await;

    // The app's URL serves it (Chromium resolves *.localhost to this machine).
    let port = app.apps_url.rsplit(':').next().expect("port").to_owned();
    browser.goto(&format!("http://storefront-production.localhost:{port}/")).await;
    browser.wait_for_text("body", "hello from chromium v1", 20).await;

    // Create an environment through the form generated from the template.
    browser.goto(&format!("{base}/services/storefront/new-environment")).await;
    browser.fill("#name", "staging").await;
    browser.fill("#param-replicas", "50").await;
    let valid = browser.eval("return document.getElementById('env-form').checkValidity()").await;
    assert_eq!(valid, serde_json::Value::Bool(false), "the browser refuses replicas above the maximum");
    // Past the browser's check, the server refuses it with its own message.
    browser.eval("document.getElementById('env-form').noValidate = true; return null").await;
    browser.click("button[value=create]").await;
    let message = browser.wait_for_text(".field-error", "replicas", 10).await;
    assert!(message.contains("50"), "the server's message names the value: {message}");
    browser.screenshot("new-environment-error").await;
    browser.fill("#param-replicas", "1").await;
    browser.click("button[value=preview]").await;
    browser.wait_for_text("#plan", "\"replicas\": 1", 10).await;
    browser.click("button[value=create]").await;
    browser.wait_for_text("main h1", "staging", 10).await;
    assert_eq!(browser.current_path().await, "/services/storefront/envs/staging");
    browser.screenshot("environment").await;
    // Nothing tracks branch staging yet: deploy main there from the page.
    browser.fill("#git-ref", "main").await;
    browser.click("form[action$='/deploy'] button").await;
    browser.wait_for_text("h1", "Run #", 10).await;
    let path = browser.current_path().await;
    let deploy: i64 = path.strip_prefix("/runs/").and_then(|id| id.parse().ok()).expect("the run page");
    let done = app
        .wait_for_run(deploy, 120, |r| !matches!(r["status"].as_str(), Some("queued" | "running" | "preparing")))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", app.server_output());
    browser.wait_for_text("#run-status", "succeeded", 10).await;
    assert_eq!(app.get_app("storefront", "staging", "/").await.1, "hello from chromium v1\n");

    // A second release, then roll back to v1 from the releases list.
    commit(work.path(), &[("index.html", b"hello from chromium v2\n")], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("storefront", "production", "/").await.1, "hello from chromium v2\n");
    browser.goto(&format!("{base}/services/storefront")).await;
    browser.screenshot("service").await;
    browser.click("#env-production button[aria-label='Roll production back to v1']").await;
    browser.wait_for_text("h1", "Run #", 10).await;
    let path = browser.current_path().await;
    let rollback: i64 = path.strip_prefix("/runs/").and_then(|id| id.parse().ok()).expect("the run page");
    let done = app
        .wait_for_run(rollback, 120, |r| !matches!(r["status"].as_str(), Some("queued" | "running" | "preparing")))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", app.server_output());
    browser.wait_for_text("#run-status", "succeeded", 10).await;
    assert_eq!(app.get_app("storefront", "production", "/").await.1, "hello from chromium v1\n");

    // An admin publishes a template version.
    browser.goto(&format!("{base}/templates")).await;
    browser.fill("#source", TEMPLATE).await;
    browser.click("form[action='/templates'] button").await;
    browser.wait_for_text("#browser-made-1\\.0\\.0", "browser-made", 10).await;
    browser.screenshot("templates").await;

    for (page, name) in [("/", "dashboard"), ("/catalog", "catalog"), ("/teams/web-team", "team"), ("/admin", "admin")]
    {
        browser.goto(&format!("{base}{page}")).await;
        browser.screenshot(name).await;
    }
    browser.close().await;
    for name in ["login", "run", "service", "environment", "templates", "dashboard", "catalog", "admin"] {
        let png = std::fs::read(artifacts_dir().join(format!("{name}.png"))).expect("screenshot saved");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{name}.png is a real screenshot");
    }
}

/// A run held in its deploy stage until the page has shown it running: the app's health
/// check answers only once the test creates `/www/ready.txt` in its container. The page
/// must then turn to succeeded by itself (a marker set in the page survives only if it
/// is never reloaded).
async fn the_run_page_follows_a_run_without_a_reload(app: &TestApp, browser: &Browser, token: &str) {
    app.service("watched", "web-team").await;
    let containerfile = "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\nRUN chmod 0777 /www\n\
                         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("Containerfile", containerfile.as_bytes().to_vec()),
        ("slipway.toml", b"[web]\nport = 8080\nhealth = \"/ready.txt\"\n".to_vec()),
        ("index.html", b"watched\n".to_vec()),
    ];
    let work = local_repo(&borrowed(&files)).await;
    let url = app.git_url("watched", token);
    let dir = work.path().to_owned();
    let push = tokio::spawn(async move { git(&dir, &[], &["push", &url, "main"]).await });
    let run = app.eventually_run("watched").await;
    browser.goto(&format!("{}/runs/{run}", app.url)).await;
    browser.eval("window.__slipwayNoReload = true; return null").await;
    browser.wait_for_text("#run-status", "running", 60).await;
    app.eventually(60, "the held replica runs", || async move {
        !app.replicas_of("watched", "production").await.is_empty()
    })
    .await;
    assert_eq!(browser.eval("return document.getElementById('run-status').textContent").await, "running");
    // Each replica the rollout starts (one after another) is made ready as it appears.
    let mut ready = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let done = loop {
        for id in app.replicas_of("watched", "production").await {
            if ready.insert(id.clone()) {
                engine::exec(&id, &["touch", "/www/ready.txt"]).await;
            }
        }
        let (_, r) = app.admin("GET", &format!("/runs/{run}"), None).await;
        if !matches!(r["status"].as_str(), Some("queued" | "running" | "preparing")) {
            break r;
        }
        assert!(std::time::Instant::now() < deadline, "the run did not end: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}\n{}", app.server_output());
    assert_eq!(browser.wait_for_text("#run-status", "succeeded", 10).await, "succeeded");
    let marker = browser.eval("return window.__slipwayNoReload === true").await;
    assert_eq!(marker, serde_json::Value::Bool(true), "the page turned from running to succeeded without a reload");
    let pushed = push.await.expect("push task");
    assert_eq!(pushed.code, 0, "{pushed:?}");
}
