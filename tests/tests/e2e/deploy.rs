//! Deploy and run on the local runtime: a push ends live behind the app router, a new
//! release replaces the old, an unhealthy release leaves the old one serving, and a
//! killed replica is replaced.

use std::time::{Duration, Instant};

use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

async fn setup(app: &TestApp) -> String {
    app.team("payments").await;
    app.service("shop", "payments").await;
    app.admin_api_token("git").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_ends_live_and_the_next_push_replaces_it() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);
    let (status, _) = app.get_app("shop", "production", "/").await;
    assert_eq!(status, 404, "nothing is deployed yet");

    let v1 = format!("hello v1 {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Deploy production v1: 2/2 replicas healthy"), "{out:?}");
    let port = app.apps_url.rsplit(':').next().unwrap_or_default();
    assert!(
        out.stderr.contains(&format!("http://shop-production.localhost:{port} is live (push to live: ")),
        "{out:?}"
    );
    // When git push returns, the new content is what the router serves.
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1.clone()));

    let v2 = format!("hello v2 {}\n", nonce());
    commit(work.path(), &[("index.html", v2.as_bytes())], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Deploy production v2"), "{out:?}");
    for _ in 0..4 {
        assert_eq!(app.get_app("shop", "production", "/").await, (200, v2.clone()), "every replica serves v2");
    }
    let (_, unknown) = app.get_app("nope", "production", "/").await;
    assert!(unknown.contains("No such app"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_release_leaves_the_old_one_serving() {
    let app = TestApp::start_with(Db::Sqlite, &["--health-timeout", "3"]).await;
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);
    let good = format!("good {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&good))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);

    // This release listens on another port than slipway.toml says: it never gets healthy.
    let broken = "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"9999\", \"-h\", \"/www\"]\n";
    commit(work.path(), &[("Containerfile", broken.as_bytes()), ("index.html", b"broken\n")], "broken").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("is not healthy"), "{out:?}");
    assert!(out.stderr.contains("the previous release keeps serving"), "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_replaced() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = setup(&app).await;
    let body = format!("resilient {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&body))).await;
    assert_eq!(git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await.code, 0);

    let node = std::fs::read_to_string(app.data_dir.path().join("node-id")).expect("node id");
    let ids = containers(node.trim()).await;
    assert_eq!(ids.len(), 2, "two replicas run: {ids:?}");
    kill(&ids[0]).await;
    let killed_at = Instant::now();
    loop {
        let now = containers(node.trim()).await;
        if now.len() == 2 && !now.contains(&ids[0]) {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "the killed replica was not replaced in 10 s: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.get_app("shop", "production", "/").await, (200, body));
}

/// Ids of the running containers of a slipwayd node, through the engine's API.
async fn containers(node: &str) -> Vec<String> {
    let engine =
        std::env::var("SLIPWAY_ENGINE").unwrap_or_else(|_| "unix:///var/tmp/slipway-podman/podman.sock".to_owned());
    let socket = engine.trim_start_matches("unix://");
    let filters = format!("{{\"label\":[\"dev.slipway.node={node}\"],\"status\":[\"running\"]}}");
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-G", "--unix-socket", socket, "http://engine/v1.41/containers/json"])
        .args(["--data-urlencode", &format!("filters={filters}")])
        .output()
        .await
        .expect("curl");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("container list");
    list.as_array().into_iter().flatten().filter_map(|c| c["Id"].as_str().map(str::to_owned)).collect()
}

async fn kill(id: &str) {
    let engine =
        std::env::var("SLIPWAY_ENGINE").unwrap_or_else(|_| "unix:///var/tmp/slipway-podman/podman.sock".to_owned());
    let socket = engine.trim_start_matches("unix://");
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-X", "POST", "--unix-socket", socket])
        .arg(format!("http://engine/v1.41/containers/{id}/kill"))
        .output()
        .await
        .expect("curl");
    assert!(output.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollouts_under_load_fail_no_request() {
    let app = std::sync::Arc::new(TestApp::start_with(Db::Sqlite, &["--health-timeout", "3"]).await);
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..2 {
        let (app, stop) = (app.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut last) = (0u32, Vec::new(), String::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match app.get_app("shop", "production", "/").await {
                    (200, body) => {
                        ok += 1;
                        last = body;
                    }
                    other => failed.push(other),
                }
            }
            (ok, failed, last)
        }));
    }

    let v2 = format!("v2 {}\n", nonce());
    commit(work.path(), &[("index.html", v2.as_bytes())], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let broken = "FROM localhost/slipway/busybox\nCMD [\"httpd\", \"-f\", \"-p\", \"9999\", \"-h\", \"/\"]\n";
    commit(work.path(), &[("Containerfile", broken.as_bytes())], "unhealthy").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    // Keep the load on past the old replicas' drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    for task in load {
        let (ok, failed, last) = task.await.expect("load task");
        assert!(
            failed.is_empty(),
            "{} failed requests during the rollouts: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(ok > 50, "too little load to show anything: {ok} requests");
        assert_eq!(last, v2, "v2 serves after the good rollout and the refused one");
    }
}
