//! Attacks on a running server that must be refused or bounded while it keeps serving:
//! redirects off the site after signing in, a release that is not really healthy, one
//! metrics series per invented method, connection headers passed to apps, a database
//! file others can read.

use crate::both_databases;
use serde_json::json;
use slipway_e2e::portal::Portal;
use slipway_e2e::{Db, TestApp, USER_PASSWORD, borrowed, commit, fixture_app, git, local_repo, nonce};

crate::both_databases!(one_name_is_one_environment_across_all_services);

/// `<service>-<environment>` is the router host and the namespace: another team's
/// service may not claim it by splitting the name differently.
async fn one_name_is_one_environment_across_all_services(app: TestApp) {
    app.team("alpha").await;
    app.team("beta").await;
    app.service("shop-api", "alpha").await;
    app.service("shop", "beta").await;
    let before = app.snapshot().await;

    // beta's `shop` + `api-production` would be alpha's shop-api-production.
    let body = json!({"name": "api-production", "template": "web"});
    let (status, problem) = app.admin("POST", "/services/shop/environments", Some(body)).await;
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("shop-api-production") && detail.contains("service \"shop-api\""), "{problem}");
    assert_eq!(app.snapshot().await, before, "nothing was written");

    // The other way round: a service whose first environment would take a name in use.
    let body = json!({"name": "web-production", "template": "web"});
    let (status, problem) = app.admin("POST", "/services/shop/environments", Some(body)).await;
    assert_eq!(status, 201, "{problem}");
    let (status, problem) = app.admin("POST", "/services", Some(json!({"name": "shop-web", "team": "alpha"}))).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("service \"shop\""), "{problem}");
    assert_eq!(app.admin("GET", "/services/shop-web", None).await.0, 404, "no half-made service");

    // Once the name is free again it can be taken.
    let (status, problem) = app.admin("DELETE", "/services/shop/environments/web-production", None).await;
    assert!(status == 200 || status == 204, "{status} {problem}");
    app.service("shop-web", "alpha").await;
}

/// Signs in through the form with `next` and answers where the server sends the browser.
async fn sign_in_to(app: &TestApp, next: &str) -> Option<String> {
    let mut portal = Portal::anonymous(&app.url);
    let form = portal.get(&format!("/login?next={}", urlencode(next))).await;
    assert_eq!(form.status, 200, "{}", form.html);
    assert!(!form.html.contains("evil.example"), "the form never carries a foreign next: {}", form.html);
    let nonce =
        form.set_cookies.iter().find_map(|c| c.split(';').next()?.strip_prefix("slipway_login=").map(str::to_owned));
    portal.cookie = format!("slipway_login={}", nonce.expect("nonce cookie"));
    let csrf = form.csrf().expect("csrf");
    let answer = portal
        .post_raw("/login", &[("csrf_token", &csrf), ("username", "ana"), ("password", USER_PASSWORD), ("next", next)])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.html);
    answer.location
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

both_databases!(signing_in_never_sends_the_browser_to_another_site);
async fn signing_in_never_sends_the_browser_to_another_site(app: TestApp) {
    app.user("ana").await;
    // Browsers drop tabs and newlines from URLs and read a backslash as a slash: each of
    // these is `//evil.example` to them.
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/\u{7f}/evil.example",
        "//evil.example",
        "https://evil.example",
    ] {
        assert_eq!(sign_in_to(&app, next).await.as_deref(), Some("/"), "next {next:?}");
    }
    assert_eq!(
        sign_in_to(&app, "/catalog?lifecycle=production").await.as_deref(),
        Some("/catalog?lifecycle=production")
    );
}

/// A health path that answers 404 is not a healthy release (Kubernetes' probes count
/// 2xx and 3xx only); the previous release keeps serving.
// SQLite only: it is about the engine's health check; a failed deploy's records are checked on both
// in deploy.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_whose_health_path_answers_404_never_goes_live() {
    let app = TestApp::start_with(Db::Sqlite, &["--health-timeout", "3"]).await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);

    let missing = b"[web]\nport = 8080\nhealth = \"/not-here\"\n";
    commit(work.path(), &[("slipway.toml", &missing[..]), ("index.html", b"v2\n")], "wrong health path").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("GET /not-here did not answer healthy") && out.stderr.contains("404"), "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1));
}

/// hyper accepts any token as a method; each must not become a metrics series.
// SQLite only: it is about the metrics' labels; no query is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_share_one_metrics_series() {
    let app = TestApp::start(Db::Sqlite).await;
    for n in 0..40 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).expect("method");
        let response = app.http.request(method, format!("{}/api/v1/services", app.url)).send().await.expect("send");
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let (status, _) = app.admin("GET", "/services", None).await;
    assert_eq!(status, 200);
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(!text.contains("INVENTED"), "no series per invented method");
    assert!(text.contains("method=\"other\""), "{text}");
    assert!(text.contains("method=\"GET\""), "known methods keep their names");
}

/// Headers about the client's connection to the router (`Connection` and the headers it
/// names, `Keep-Alive`, `TE`…) stay there: the app sees the message, not the hop.
// SQLite only: it is about the router's handling of headers; no query is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_headers_stay_with_the_router() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    // busybox httpd runs /cgi-bin scripts with the request headers as HTTP_* variables.
    let files: &[(&str, &[u8])] = &[
        (
            "Containerfile",
            b"FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\nCOPY env.cgi /www/cgi-bin/env\n\
              RUN chmod 0755 /www/cgi-bin/env\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        ),
        ("index.html", b"ok\n"),
        ("env.cgi", b"#!/bin/sh\necho 'Content-Type: text/plain'\necho\nenv | grep '^HTTP_' | sort\n"),
    ];
    let work = local_repo(files).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let port = app.apps_url.rsplit(':').next().unwrap_or_default();
    let response = app
        .http
        .get(format!("{}/cgi-bin/env", app.apps_url))
        .header("host", format!("shop-production.localhost:{port}"))
        .header("connection", "keep-alive, X-Internal-Token")
        .header("x-internal-token", "meant-for-the-proxy")
        .header("keep-alive", "timeout=5")
        .header("x-kept", "yes")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let seen = response.text().await.expect("text");
    assert!(seen.contains("HTTP_X_KEPT=yes"), "end-to-end headers pass: {seen}");
    assert!(!seen.contains("INTERNAL_TOKEN") && !seen.contains("HTTP_KEEP_ALIVE"), "{seen}");
}

/// The database holds password hashes and sealed secrets: 0600 when created, and made
/// 0600 again at start when someone opened it up.
// SQLite only: it is about the SQLite database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_is_readable_by_slipwayd_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mut app = TestApp::start(Db::Sqlite).await;
    let db = app.data_dir.path().join("slipway.db");
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    app.kill9().await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    app.restart().await;
    assert_eq!(mode(&db), 0o600);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app.server_output().contains("made the database file private") {
        assert!(std::time::Instant::now() < deadline, "no warning: {}", app.server_output());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, _) = app.admin("GET", "/services", None).await;
    assert_eq!(status, 200, "and it keeps serving");
}

/// A build that prints without end is cut at its stage's budget with one marker line;
/// the deploy's lines still follow. Watching the finished run's events again and again
/// leaves no channel behind.
// SQLite only: it is about the bounds of a build's output in memory and in the log; the run's rows
// are checked on both in pipeline.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_that_prints_without_end_is_cut_and_watching_it_costs_nothing_after() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let containerfile = format!(
        "FROM localhost/slipway/busybox\nRUN echo {} && seq 1 12000\nCOPY index.html /www/index.html\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        nonce()
    );
    let work = local_repo(&[("Containerfile", containerfile.as_bytes()), ("index.html", b"chatty\n")]).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (_, runs) = app.admin("GET", "/services/shop/runs", None).await;
    let run = runs["items"][0]["id"].as_i64().expect("run");

    let mut lines = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = app.admin("GET", &format!("/runs/{run}/log?after={after}"), None).await;
        assert_eq!(status, 200, "{page}");
        let batch = page["lines"].as_array().expect("lines").clone();
        after = page["next_after"].as_i64().expect("next_after");
        lines.extend(batch);
        if page["finished"] == true {
            break;
        }
    }
    let of = |stage: &str| lines.iter().filter(|l| l["stage"] == stage).count();
    assert!(of("build") <= 10_001, "{} build lines", of("build"));
    assert!(
        lines.iter().any(|l| l["line"]
            .as_str()
            .unwrap_or_default()
            .starts_with("[log cut: the build stage printed more than 10000 lines")),
        "one marker says the log was cut"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["stage"] == "deploy" && l["line"].as_str().unwrap_or_default().contains("replicas healthy")),
        "the deploy still reports"
    );

    for _ in 0..30 {
        let response = app
            .http
            .get(format!("{}/api/v1/runs/{run}/events", app.url))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .expect("events");
        assert_eq!(response.status(), 200);
        let body = response.text().await.expect("the stream of an ended run ends");
        assert!(body.contains("event: finished"), "{}", &body[body.len().saturating_sub(300)..]);
    }
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    let channels: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("slipway_run_event_channels "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no channel gauge in {text}"));
    assert!(channels <= 1.0, "{channels} run event channels are left");
}
