//! git push to build, with the real git client and real Podman: live output, rejected
//! pushes, the layer cache, crash recovery, concurrency, deploys and cancel.

use crate::both_databases;
use crate::each_database;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_e2e::{Db, TestApp, borrowed, commit, engine_has_image, fixture_app, git, local_repo, nonce};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Team `payments` owning `service`; answers an admin API token for git.
async fn setup(app: &TestApp, service: &str) -> String {
    if app.call("GET", "/teams/payments", Some(&app.admin_token), None).await.0 == 404 {
        app.team("payments").await;
    }
    app.service(service, "payments").await;
    app.admin_api_token(&format!("git-{service}")).await
}

/// The fixture app with extra build steps before it copies its page.
fn containerfile(steps: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "Containerfile",
            format!(
                "FROM localhost/slipway/busybox\n{steps}COPY index.html /www/index.html\n\
                 CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
            )
            .into_bytes(),
        ),
        ("index.html", b"hello\n".to_vec()),
    ]
}

async fn runs_of(app: &TestApp, service: &str) -> Vec<Value> {
    let (status, page) = app.admin("GET", &format!("/services/{service}/runs"), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().expect("items").clone()
}

async fn log_of(app: &TestApp, run: i64) -> String {
    let (status, page) = app.admin("GET", &format!("/runs/{run}/log"), None).await;
    assert_eq!(status, 200, "{page}");
    page["lines"].as_array().expect("lines").iter().filter_map(|l| l["line"].as_str()).collect::<Vec<_>>().join("\n")
}

async fn remote_main(dir: &std::path::Path, url: &str) -> Option<String> {
    let out = git(dir, &[], &["ls-remote", url, "refs/heads/main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout.split_whitespace().next().map(str::to_owned)
}

both_databases!(a_push_streams_its_build_and_ends_in_a_stored_run);
async fn a_push_streams_its_build_and_ends_in_a_stored_run(app: TestApp) {
    let token = setup(&app, "shop").await;
    // A step that prints a line, waits a second and prints another (its nonce keeps it
    // out of the cache): the first line must reach the pusher before the second is
    // printed, so lines stream while the build runs rather than at its end. The first is
    // coloured: SGR colours survive storage and show as colours on the run page.
    let id = nonce();
    let files = containerfile(&format!(
        "RUN printf '\\033[31mtick-%s\\033[0m\\n' {id} && sleep 1 && printf 'tock-%s\\n' {id}\n"
    ));
    let work = local_repo(&borrowed(&files)).await;

    let mut push = tokio::process::Command::new("git")
        .args(["push", &app.git_url("shop", &token), "main"])
        .current_dir(work.path())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("git push");
    let mut lines = BufReader::new(push.stderr.take().expect("stderr")).lines();
    let (mut tick_at, mut tock_at) = (None, None);
    let mut output = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        if tick_at.is_none() && line.contains(&format!("tick-{id}")) {
            tick_at = Some(Instant::now());
        }
        if tock_at.is_none() && line.contains(&format!("tock-{id}")) {
            tock_at = Some(Instant::now());
        }
        output.push(line);
    }
    let status = push.wait().await.expect("wait");
    let output = output.join("\n");
    assert!(status.success(), "{output}");
    let (tick, tock) = match (tick_at, tock_at) {
        (Some(tick), Some(tock)) => (tick, tock),
        _ => panic!("the build's own lines are missing from the push: {output}"),
    };
    assert!(
        tock.duration_since(tick) >= Duration::from_millis(700),
        "the build's first line must arrive while the build runs (a second before its next), not with it: {output}"
    );
    assert!(output.contains("remote: -----> Build (Containerfile)"), "{output}");
    assert!(output.contains("remote: -----> Run 1 succeeded: build"), "per-stage timings: {output}");

    let runs = runs_of(&app, "shop").await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["environment"], "production");
    assert_eq!(run["trigger"], "push");
    let build = &run["stages"][0];
    assert_eq!((build["name"].as_str(), build["status"].as_str()), (Some("build"), Some("succeeded")));
    assert!(build["duration_ms"].as_i64().unwrap_or_default() >= 1000, "{build}");
    assert_eq!(run["stages"][1]["status"], "skipped", "no registry configured");
    let image = run["image"].as_str().expect("image recorded");
    // localhost/slipway/<installation>/shop:<commit>: installations sharing an engine
    // never share a tag.
    let (prefix, tag) = image.rsplit_once(':').expect("a tag");
    let installation = prefix.strip_prefix("localhost/slipway/").and_then(|p| p.strip_suffix("/shop"));
    assert!(installation.is_some_and(|i| i.len() == 12 && i.bytes().all(|b| b.is_ascii_hexdigit())), "{image}");
    assert_eq!(tag.len(), 12, "{image}");
    assert!(engine_has_image(image).await, "{image} is not in the engine");
    let log = log_of(&app, 1).await;
    assert!(log.contains("STEP 2/4"), "{log}");
    assert!(log.contains(&format!("\u{1b}[31mtick-{id}\u{1b}[0m")), "the colour is stored: {log:?}");
    let portal = slipway_e2e::portal::Portal::sign_in(&app.url, "admin", slipway_e2e::ADMIN_PASSWORD).await;
    let page = portal.get("/runs/1").await;
    assert!(page.html.contains(&format!("<span class=\"fg-1\">tick-{id}</span>")), "{}", page.html);
    // Debris would be the sequences left as text around the printed line (the STEP
    // line's own source text holds `\033[31m`, which is not debris).
    let debris = [format!("[31mtick-{id}"), format!("tick-{id}[0m"), format!("tick-{id}\u{1b}")];
    assert!(debris.iter().all(|d| !page.html.contains(d.as_str())), "no escape debris: {}", page.html);
    let (_, audit) = app.admin("GET", "/audit", None).await;
    let pushed = audit["items"].as_array().expect("items").iter().any(|e| {
        e["action"] == "git push"
            && e["outcome"] == "success"
            && e["target"].as_str().unwrap_or_default().starts_with("/git/shop.git refs/heads/main ")
    });
    assert!(pushed, "an accepted push is audited: {audit}");
}

both_databases!(a_failing_build_rejects_the_push_and_keeps_the_branch);
async fn a_failing_build_rejects_the_push_and_keeps_the_branch(app: TestApp) {
    let token = setup(&app, "shop").await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app("v1\n"))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let good = remote_main(work.path(), &url).await;

    commit(work.path(), &borrowed(&containerfile(&format!("RUN echo {} && exit 3\n", nonce()))), "broken").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "a failed build must reject the push: {out:?}");
    assert!(out.stderr.contains("pre-receive hook declined"), "{out:?}");
    assert!(out.stderr.contains("exit status 3"), "the builder's error reaches the pusher: {out:?}");
    assert_eq!(remote_main(work.path(), &url).await, good, "the branch must not move");

    let runs = runs_of(&app, "shop").await;
    let failed = &runs[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["reason"].as_str().unwrap_or_default().contains("build failed"), "{failed}");
    assert!(log_of(&app, failed["id"].as_i64().expect("id")).await.contains("exit status 3"));

    // No Containerfile at all: refused with the fix in the message.
    std::fs::remove_file(work.path().join("Containerfile")).expect("rm");
    commit(work.path(), &[], "no containerfile").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no Containerfile or Dockerfile"), "{out:?}");

    // An invalid slipway.toml names the key.
    commit(work.path(), &[("Containerfile", fixture_app("x")[0].1.as_slice()), ("slipway.toml", b"[biuld]\n")], "typo")
        .await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("biuld"), "{out:?}");
    assert_eq!(remote_main(work.path(), &url).await, good);
}

// SQLite only: it is about the engine's build cache; the runs' rows are checked on both above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_file_change_rebuilds_from_the_cache() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = setup(&app, "shop").await;
    let url = app.git_url("shop", &token);
    let steps = format!("RUN echo {} > /built.txt\n", nonce());
    let work = local_repo(&borrowed(&containerfile(&steps))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    commit(work.path(), &[("index.html", b"changed\n")], "one file").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let runs = runs_of(&app, "shop").await;
    let second = log_of(&app, runs[0]["id"].as_i64().expect("id")).await;
    assert!(second.contains("Using cache"), "the RUN step must come from the cache:\n{second}");
    assert!(!log_of(&app, runs[1]["id"].as_i64().expect("id")).await.contains("Using cache"));
}

both_databases!(a_server_killed_mid_build_leaves_no_run_running);
async fn a_server_killed_mid_build_leaves_no_run_running(mut app: TestApp) {
    let token = setup(&app, "shop").await;
    let files = containerfile(&format!("RUN sleep 20 && echo {}\n", nonce()));
    let work = local_repo(&borrowed(&files)).await;
    let url = app.git_url("shop", &token);
    let dir = work.path().to_path_buf();
    let push = tokio::spawn(async move { git(&dir, &[], &["push", &url, "main"]).await });

    app.wait_for_run(1, 60, |run| run["status"] == "running").await;
    app.kill9().await;
    let out = push.await.expect("push task");
    assert_ne!(out.code, 0, "the push cannot succeed once the server died: {out:?}");

    app.restart().await;
    let run = app.wait_for_run(1, 10, |run| run["status"] != "running").await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["reason"].as_str().unwrap_or_default().contains("interrupted"), "{run}");
    assert!(runs_of(&app, "shop").await.iter().all(|r| r["status"] != "running"));

    // The next push works.
    commit(work.path(), &borrowed(&fixture_app("after the crash\n")), "next").await;
    let url = app.git_url("shop", &token);
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(runs_of(&app, "shop").await[0]["status"], "succeeded");
}

crate::both_databases!(ten_concurrent_pushes_each_end_in_a_finished_run);

async fn ten_concurrent_pushes_each_end_in_a_finished_run(app: TestApp) {
    let mut pushes = Vec::new();
    let mut repos = Vec::new();
    for i in 0..10 {
        let service = format!("svc-{i}");
        let token = setup(&app, &service).await;
        let work = local_repo(&borrowed(&fixture_app(&format!("service {i} {}\n", nonce())))).await;
        let url = app.git_url(&service, &token);
        let dir = work.path().to_path_buf();
        repos.push(work);
        pushes.push(tokio::spawn(async move { git(&dir, &[], &["push", &url, "main"]).await }));
    }
    for (i, push) in pushes.into_iter().enumerate() {
        let out = push.await.expect("push task");
        assert_eq!(out.code, 0, "push {i}: {out:?}");
    }
    for i in 0..10 {
        let runs = runs_of(&app, &format!("svc-{i}")).await;
        assert_eq!(runs.len(), 1, "svc-{i}: {runs:?}");
        assert_eq!(runs[0]["status"], "succeeded", "svc-{i}: {}", runs[0]);
        assert!(runs[0]["finished_at"].is_string());
    }
}

both_databases!(deploy_without_a_push_and_cancel);
async fn deploy_without_a_push_and_cancel(app: TestApp) {
    let token = setup(&app, "shop").await;
    let url = app.git_url("shop", &token);
    let slow = containerfile(&format!("RUN sleep 20 && echo {}\n", nonce()));
    let work = local_repo(&borrowed(&fixture_app("v1\n"))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    // A slow commit on a branch no environment tracks: stored, not built.
    commit(work.path(), &borrowed(&slow), "slow").await;
    let out = git(work.path(), &[], &["push", &url, "main:slow"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not tracked by any environment"), "{out:?}");

    let (status, run) =
        app.admin("POST", "/services/shop/runs", Some(json!({"environment": "production", "git_ref": "slow"}))).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["trigger"], "deploy");
    let id = run["id"].as_i64().expect("id");
    app.wait_for_run(id, 60, |run| run["status"] == "running").await;
    let (status, cancelled) = app.admin("POST", &format!("/runs/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    let run = app.wait_for_run(id, 15, |run| run["status"] != "running").await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let (status, _) = app.admin("POST", &format!("/runs/{id}/cancel"), None).await;
    assert_eq!(status, 409, "an ended run cannot be cancelled again");

    let (status, problem) =
        app.admin("POST", "/services/shop/runs", Some(json!({"environment": "production", "git_ref": "nope"}))).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("git_ref")), "{problem}");
    let (status, _) = app.admin("POST", "/services/shop/runs", Some(json!({"environment": "staging"}))).await;
    assert_eq!(status, 404);

    // The CLI deploys the environment's branch and follows the build live.
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = app.cli(&home.path().join("config.toml"));
    cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
    let out = slipway_e2e::run_cli(cmd, &["deploy", "shop", "production"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("STEP 1/3"), "{out:?}");
    assert!(out.stderr.contains("succeeded"), "{out:?}");
    let mut cmd = app.cli(&home.path().join("config.toml"));
    cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
    let out = slipway_e2e::run_cli(cmd, &["runs", "shop", "--json"], "").await;
    let runs: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(runs[0]["trigger"], "deploy");
    assert_eq!(runs[0]["status"], "succeeded");
}

each_database!(a_built_image_is_pushed_to_the_registry);
async fn a_built_image_is_pushed_to_the_registry(db: Db) {
    let location = slipway_e2e::registry_location('t');
    let (registry, prefix) = location.split_once('/').expect("HOST/PREFIX");
    let app = TestApp::start_with(db, &["--registry", &location]).await;
    let token = setup(&app, "shop").await;
    let work = local_repo(&borrowed(&fixture_app(&format!("pushed {}\n", nonce())))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(&format!("Pushed {location}/shop:")), "{out:?}");

    let run = &runs_of(&app, "shop").await[0];
    assert_eq!(run["stages"][1]["status"], "succeeded", "{run}");
    let commit = run["commit"].as_str().expect("commit");
    let image = run["image"].as_str().expect("image");
    assert!(image.starts_with(&format!("{location}/shop:{}@sha256:", &commit[..12])), "{image}");

    // The registry itself has the tag.
    let tags: Value = app
        .http
        .get(format!("http://{registry}/v2/{prefix}/shop/tags/list"))
        .send()
        .await
        .expect("registry")
        .json()
        .await
        .expect("json");
    assert_eq!(tags["tags"], json!([&commit[..12]]), "{tags}");
}

both_databases!(a_newer_run_supersedes_a_queued_one_for_the_same_environment);
async fn a_newer_run_supersedes_a_queued_one_for_the_same_environment(app: TestApp) {
    let token = setup(&app, "shop").await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app("v1\n"))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    // The next push builds slowly, so the deploys below queue behind it.
    commit(work.path(), &borrowed(&containerfile(&format!("RUN sleep 3 && echo {}\n", nonce()))), "slow").await;
    let dir = work.path().to_path_buf();
    let first = tokio::spawn(async move { git(&dir, &[], &["push", &url, "main"]).await });
    app.wait_for_run(2, 60, |run| run["status"] == "running").await;

    let deploy = || app.admin("POST", "/services/shop/runs", Some(json!({"environment": "production"})));
    let (status, second) = deploy().await;
    assert_eq!(status, 201, "{second}");
    let (_, third) = deploy().await;
    let (second, third) = (second["id"].as_i64().expect("id"), third["id"].as_i64().expect("id"));

    // One active run per environment: the second never starts, the third waits its turn.
    let superseded = app.wait_for_run(second, 10, |run| run["status"] != "queued").await;
    assert_eq!(superseded["status"], "superseded", "{superseded}");
    let pushed = first.await.expect("push");
    // Said in full if it fails: the push's own run and what it printed.
    let run = app.wait_for_run(2, 60, |run| run["finished_at"].is_string()).await;
    assert_eq!(pushed.code, 0, "{pushed:?}\nrun 2: {run}");
    let last = app.wait_for_run(third, 60, |run| run["finished_at"].is_string()).await;
    assert_eq!(last["status"], "succeeded", "{last}");
}

// SQLite only: it is about the build's time limit in the engine; a failed run's rows are checked on
// both above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_over_its_time_limit_fails_the_run() {
    let app = TestApp::start_with(Db::Sqlite, &["--build-timeout", "1"]).await;
    let token = setup(&app, "shop").await;
    let work = local_repo(&borrowed(&containerfile(&format!("RUN sleep 5 && echo {}\n", nonce())))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("the build took longer than 1 s"), "{out:?}");
    let run = &runs_of(&app, "shop").await[0];
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["stages"][0]["status"], "failed");
}

// SQLite only: it is about the registry's login; the push stage's records are checked
// on both databases in `a_built_image_is_pushed_to_the_registry`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_a_registry_that_needs_a_login() {
    let setting = std::env::var("SLIPWAY_TEST_AUTH_REGISTRY").unwrap_or_else(|_| {
        panic!("SLIPWAY_TEST_AUTH_REGISTRY is not set: run scripts/test, which starts a registry with a login")
    });
    let parts: Vec<&str> = setting.split_whitespace().collect();
    let (registry, user, password) = (parts[0], parts[1], parts[2]);
    let location = format!("{registry}/t{}", nonce().replace('-', ""));

    let app = TestApp::start_with(
        Db::Sqlite,
        &["--registry", &location, "--registry-username", user, "--registry-password", password],
    )
    .await;
    let token = setup(&app, "shop").await;
    let work = local_repo(&borrowed(&fixture_app(&format!("login {}\n", nonce())))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(runs_of(&app, "shop").await[0]["stages"][1]["status"], "succeeded");
    assert!(!out.stderr.contains(password), "the registry password must never reach a log");

    let wrong = TestApp::start_with(
        Db::Sqlite,
        &["--registry", &location, "--registry-username", user, "--registry-password", "not-the-password"],
    )
    .await;
    let token = setup(&wrong, "shop").await;
    let work = local_repo(&borrowed(&fixture_app(&format!("wrong {}\n", nonce())))).await;
    let out = git(work.path(), &[], &["push", &wrong.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "an image that cannot be pushed fails the run: {out:?}");
    let run = &runs_of(&wrong, "shop").await[0];
    assert_eq!(
        (run["stages"][0]["status"].as_str(), run["stages"][1]["status"].as_str()),
        (Some("succeeded"), Some("failed"))
    );
    assert!(run["reason"].as_str().unwrap_or_default().contains("push failed"), "{run}");
}
