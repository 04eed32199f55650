//! Several slipwayd processes on one PostgreSQL and one shared data dir (as on
//! Kubernetes): every push is run exactly once, by the replica that received it, and a
//! replica killed mid-run does not lose its run: another takes it over and finishes it.
//!
//! PostgreSQL only: replicas share one database, which SQLite (a file of one process)
//! cannot be.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use slipway_e2e::{
    Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce, remove_containers_of, start_process,
};

/// Removes both replicas' containers however the test ends.
pub(crate) struct Cleanup(pub(crate) Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for node in &self.0 {
            remove_containers_of(node);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_run_every_push_once_and_lose_no_run() {
    let suffix = nonce().replace('-', "");
    let (node_a, node_b) = (format!("a{}", &suffix[..10]), format!("b{}", &suffix[..10]));
    let _cleanup = Cleanup(vec![node_a.clone(), node_b.clone()]);
    let mut a = TestApp::start_with(Db::Postgres, &["--node-id", &node_a, "--lease-seconds", "3"]).await;
    let data_dir = a.data_dir.path().to_str().expect("utf-8").to_owned();
    let b = start_process(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir,
            "--database-url",
            &a.database_url,
            "--node-id",
            &node_b,
            "--lease-seconds",
            "3",
        ],
        &[],
    )
    .await;
    app_setup(&a).await;
    let token = a.admin_api_token("git").await;
    let url_a = a.git_url("shop", &token);
    let url_b = format!("{}/git/shop.git", b.url).replacen("http://", &format!("http://push:{token}@"), 1);

    // 20 pushes, alternating between the replicas.
    let work = local_repo(&borrowed(&fixture_app(&format!("push 0 {}\n", nonce())))).await;
    for i in 0..20 {
        if i > 0 {
            commit(work.path(), &[("index.html", format!("push {i} {}\n", nonce()).as_bytes())], "next").await;
        }
        let url = if i % 2 == 0 { &url_a } else { &url_b };
        let out = git(work.path(), &[], &["push", url, "main"]).await;
        assert_eq!(out.code, 0, "push {i}: {out:?}");
    }
    let (_, runs) = a.admin("GET", "/services/shop/runs?limit=50", None).await;
    let runs = runs["items"].as_array().expect("runs").clone();
    assert_eq!(runs.len(), 20, "one run per push");
    let mut by_node = std::collections::HashMap::<String, usize>::new();
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        *by_node.entry(run["node"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        let (_, log) = a.admin("GET", &format!("/runs/{}/log", run["id"]), None).await;
        let builds = log["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["line"].as_str().is_some_and(|t| t.starts_with("-----> Build (")));
        assert_eq!(builds.count(), 1, "run {} was executed exactly once: {log}", run["id"]);
    }
    assert_eq!(by_node.get(&node_a), Some(&10), "{by_node:?}");
    assert_eq!(by_node.get(&node_b), Some(&10), "{by_node:?}");

    // Kill replica a in the middle of a run: b takes the run over and finishes it.
    let slow = "FROM localhost/slipway/busybox\nRUN sleep 6\nCOPY index.html /www/index.html\n\
                CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    commit(work.path(), &[("Containerfile", slow.as_bytes()), ("index.html", nonce().as_bytes())], "slow").await;
    let dir = work.path().to_path_buf();
    let push = tokio::spawn(async move { git(&dir, &[], &["push", &url_a, "main"]).await });
    let (http, admin, b_url) = (a.http.clone(), a.admin_token.clone(), b.url.clone());
    let on_b = |path: String| {
        let http = http.clone();
        let url = format!("{b_url}/api/v1{path}");
        let admin = admin.clone();
        async move { http.get(url).bearer_auth(admin).send().await.expect("b answers").json::<Value>().await.expect("json") }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        let runs = on_b("/services/shop/runs?limit=1".to_owned()).await;
        let newest = &runs["items"][0];
        if newest["status"] == "running" && newest["node"] == json!(node_a) {
            break newest["id"].as_i64().expect("id");
        }
        assert!(Instant::now() < deadline, "the slow run never started: {runs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    a.kill9().await;
    let out = push.await.expect("push task");
    assert_ne!(out.code, 0, "the push died with its replica: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = on_b(format!("/runs/{run_id}")).await;
        let status = run["status"].as_str().unwrap_or_default();
        if !["running", "queued"].contains(&status) {
            assert_eq!(status, "succeeded", "{run}");
            assert_eq!(run["node"], json!(node_b), "finished by the surviving replica: {run}");
            break;
        }
        assert!(Instant::now() < deadline, "replica b never finished the dead replica's run: {run}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = on_b(format!("/runs/{run_id}/log")).await.to_string();
    assert!(log.contains(&format!("{node_b} runs it again from the start")), "{log}");
}

async fn app_setup(app: &TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    // One replica keeps 20 deploys quick.
    let (status, _) =
        app.admin("POST", "/services/shop/environments/production/scale", Some(json!({"replicas": 1}))).await;
    assert_eq!(status, 200);
}

/// With `--shared-data-dir` a run is not pinned to the replica that queued it: both
/// replicas claim from one queue and the claim must hand each run to exactly one of
/// them. Six pushes go to replica a at once, each to its own environment; a has one
/// worker, so b (which polls the queue) must run some of them, and every pusher still
/// sees its run's log, streamed by a from what b stores, and its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_sharing_a_data_dir_race_for_unpinned_runs_and_run_each_once() {
    const ENVIRONMENTS: usize = 6;
    let suffix = nonce().replace('-', "");
    let (node_a, node_b) = (format!("a{}", &suffix[..10]), format!("b{}", &suffix[..10]));
    let _cleanup = Cleanup(vec![node_a.clone(), node_b.clone()]);
    let shared = ["--shared-data-dir", "--workers", "1"];
    let a = TestApp::start_with(Db::Postgres, &[&["--node-id", node_a.as_str()][..], &shared[..]].concat()).await;
    let data_dir = a.data_dir.path().to_str().expect("utf-8").to_owned();
    let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", &data_dir, "--database-url", &a.database_url];
    args.extend(["--node-id", node_b.as_str()]);
    args.extend(shared);
    let b = start_process(&args, &[]).await;
    a.team("payments").await;
    a.service("shop", "payments").await;
    for i in 0..ENVIRONMENTS {
        let body = json!({"name": format!("e{i}"), "template": "web", "branch": format!("b{i}")});
        let (status, created) = a.admin("POST", "/services/shop/environments", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        let scale = Some(json!({"replicas": 1}));
        assert_eq!(a.admin("POST", &format!("/services/shop/environments/e{i}/scale"), scale).await.0, 200);
    }
    let token = a.admin_api_token("git").await;
    let url_a = a.git_url("shop", &token);
    assert!(b.url.starts_with("http://"), "replica b serves");

    let work = local_repo(&borrowed(&fixture_app(&format!("race {}\n", nonce())))).await;
    let mut pushes = Vec::new();
    for i in 0..ENVIRONMENTS {
        let (dir, url) = (work.path().to_path_buf(), url_a.clone());
        pushes.push(tokio::spawn(async move { git(&dir, &[], &["push", &url, &format!("main:b{i}")]).await }));
    }
    for (i, push) in pushes.into_iter().enumerate() {
        let out = push.await.expect("push task");
        assert_eq!(out.code, 0, "push {i}: {out:?}");
        assert!(out.stderr.contains("-----> Build ("), "push {i} streamed its build log: {out:?}");
        assert!(out.stderr.contains("succeeded"), "push {i} saw its run end: {out:?}");
    }

    let (_, runs) = a.admin("GET", "/services/shop/runs?limit=50", None).await;
    let runs: Vec<Value> =
        runs["items"].as_array().expect("runs").iter().filter(|r| r["trigger"] == "push").cloned().collect();
    assert_eq!(runs.len(), ENVIRONMENTS, "one run per push: {runs:?}");
    let mut on_b = 0;
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        let (_, log) = a.admin("GET", &format!("/runs/{}/log", run["id"]), None).await;
        let builds = log["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .filter(|l| l["line"].as_str().is_some_and(|t| t.starts_with("-----> Build (")));
        assert_eq!(builds.count(), 1, "run {} was executed exactly once: {log}", run["id"]);
        assert!(run["node"] == json!(node_a) || run["node"] == json!(node_b), "{run}");
        if run["node"] == json!(node_b) {
            on_b += 1;
        }
    }
    // Six runs queued on a, whose one worker runs them one after another for seconds: b
    // polls the queue every 2 s, so it must take some.
    let placed: Vec<String> = runs.iter().map(|r| format!("{} on {}", r["git_ref"], r["node"])).collect();
    assert!(on_b > 0, "replica b executed none of the runs replica a queued: {placed:?}");
}
