//! A replica told to stop (SIGTERM) loses no run: the run it is executing gets its grace
//! to finish, and one still running after the grace is handed to another replica that
//! shares the data dir, which runs it again from the start.
//!
//! The hand-back test is PostgreSQL only: it needs a second replica on the same database.

use crate::both_databases;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce, start_process};

/// A build that takes a few seconds, so a stop arrives while it runs.
const SLOW: &str = "FROM localhost/slipway/busybox\nRUN sleep 4\nCOPY index.html /www/index.html\n\
                    CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

async fn shop(app: &TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    let scale = Some(json!({"replicas": 1}));
    assert_eq!(app.admin("POST", "/services/shop/environments/production/scale", scale).await.0, 200);
}

/// Waits until the newest run of shop is running; answers it.
async fn running_run(app: &TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, runs) = app.admin("GET", "/services/shop/runs?limit=1", None).await;
        if runs["items"][0]["status"] == "running" {
            return runs["items"][0].clone();
        }
        assert!(Instant::now() < deadline, "the slow run never started: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_databases!(a_stopping_server_lets_the_run_it_executes_finish with ["--workers", "1"]);
/// Deploys through the API: no request in flight holds the server up, so only the
/// engine's drain keeps the run alive after SIGTERM. With one worker a second deploy
/// waits in the queue for this replica alone: it is ended with a reason, not waited for.
async fn a_stopping_server_lets_the_run_it_executes_finish(mut app: TestApp) {
    shop(&app).await;
    let staging = Some(json!({"name": "staging", "template": "web", "branch": "staging"}));
    assert_eq!(app.admin("POST", "/services/shop/environments", staging).await.0, 201);
    let token = app.admin_api_token("git").await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app(&format!("slow {}\n", nonce())))).await;
    commit(work.path(), &[("Containerfile", SLOW.as_bytes())], "slow").await;
    // An untracked branch: stored, nothing deploys.
    assert_eq!(git(work.path(), &[], &["push", &url, "main:slow"]).await.code, 0);
    let deploy = Some(json!({"environment": "production", "git_ref": "slow"}));
    let (status, queued) = app.admin("POST", "/services/shop/runs", deploy).await;
    assert_eq!(status, 201, "{queued}");
    let run = running_run(&app).await;
    assert_eq!(run["id"], queued["id"]);
    let second = Some(json!({"environment": "staging", "git_ref": "slow"}));
    let (status, waiting) = app.admin("POST", "/services/shop/runs", second).await;
    assert_eq!((status, &waiting["status"]), (201, &json!("queued")), "{waiting}");

    let status = app.stop().await;
    assert!(status.success(), "slipwayd stopped cleanly: {status:?}");
    app.restart().await;
    let (_, after) = app.admin("GET", &format!("/runs/{}", run["id"]), None).await;
    assert_eq!(after["status"], "succeeded", "{after}");
    let (_, ended) = app.admin("GET", &format!("/runs/{}", waiting["id"]), None).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert_eq!(ended["reason"], "slipwayd stopped before the run started; push or deploy again", "{ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_still_executing_after_the_grace_goes_to_another_replica() {
    let suffix = nonce().replace('-', "");
    let (node_a, node_b) = (format!("a{}", &suffix[..10]), format!("b{}", &suffix[..10]));
    let _cleanup = crate::replicas::Cleanup(vec![node_a.clone(), node_b.clone()]);
    let shared = ["--shared-data-dir", "--workers", "1"];
    let flags = [&["--node-id", node_a.as_str(), "--shutdown-grace", "0"][..], &shared[..]].concat();
    let mut a = TestApp::start_with(Db::Postgres, &flags).await;
    let data_dir = a.data_dir.path().to_str().expect("utf-8").to_owned();
    let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", &data_dir, "--database-url", &a.database_url];
    args.extend(["--node-id", node_b.as_str()]);
    args.extend(shared);
    let b = start_process(&args, &[]).await;
    shop(&a).await;
    let token = a.admin_api_token("git").await;
    let url = a.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app(&format!("slow {}\n", nonce())))).await;
    commit(work.path(), &[("Containerfile", SLOW.as_bytes())], "slow").await;
    let dir = work.path().to_path_buf();
    let push = tokio::spawn(async move { git(&dir, &[], &["push", &url, "main"]).await });
    let run = running_run(&a).await;
    assert_eq!(run["node"], json!(node_a), "a runs it first: {run}");
    // Stopped once a's build has begun, so the log shows it begun there and again on b.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, log) = a.admin("GET", &format!("/runs/{}/log", run["id"]), None).await;
        let lines = log["lines"].as_array().cloned().unwrap_or_default();
        if lines.iter().any(|l| l["line"].as_str().is_some_and(|t| t.starts_with("-----> Build ("))) {
            break;
        }
        assert!(Instant::now() < deadline, "a's build never began: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = a.stop().await;
    assert!(status.success(), "a stopped cleanly: {status:?}");
    let out = push.await.expect("push task");
    assert_eq!(out.code, 0, "the pusher followed the run to its end on b: {out:?}");
    assert!(out.stderr.contains(&format!("{node_a} is stopping; another replica runs this again")), "{out:?}");

    let http = slipway_e2e::http_client();
    let on_b = |path: String| {
        let (http, url, admin) = (http.clone(), format!("{}/api/v1{path}", b.url), a.admin_token.clone());
        async move { http.get(url).bearer_auth(admin).send().await.expect("b answers").json::<Value>().await.expect("json") }
    };
    let after = on_b(format!("/runs/{}", run["id"])).await;
    assert_eq!((&after["status"], &after["node"]), (&json!("succeeded"), &json!(node_b)), "{after}");
    let log = on_b(format!("/runs/{}/log", run["id"])).await;
    let builds = log["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["line"].as_str().is_some_and(|t| t.starts_with("-----> Build (")));
    assert_eq!(builds.count(), 2, "begun on a, run again from the start on b: {log}");
}
