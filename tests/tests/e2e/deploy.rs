//! Deploy and run on the local runtime: a push ends live behind the app router, a new
//! release replaces the old, an unhealthy release leaves the old one serving, and a
//! killed replica is replaced.

use crate::both_databases;
use crate::each_database;
use std::time::{Duration, Instant};

use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

both_databases!(a_push_ends_live_and_the_next_push_replaces_it);
async fn a_push_ends_live_and_the_next_push_replaces_it(app: TestApp) {
    let token = app.shop_to_push().await;
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

both_databases!(an_unhealthy_release_leaves_the_old_one_serving with ["--health-timeout", "3"]);
async fn an_unhealthy_release_leaves_the_old_one_serving(app: TestApp) {
    let token = app.shop_to_push().await;
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

// SQLite only: it is about the reconcile loop replacing a container; the rows it reads are those
// the deploy tests check on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_is_replaced() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
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
    slipway_e2e::running_containers(&[format!("dev.slipway.node={node}")]).await
}

async fn kill(id: &str) {
    let (status, answer) =
        slipway_e2e::engine::call_async("POST", &format!("/v1.41/containers/{id}/kill"), &[], None).await;
    assert_eq!(status, 204, "{answer}");
}

// SQLite only: it measures the router during rollouts (four threads of load); the
// store's part of a deploy is the same as in the deploy tests above, which run on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollouts_under_load_fail_no_request() {
    let app = std::sync::Arc::new(TestApp::start_with(Db::Sqlite, &["--health-timeout", "3"]).await);
    let token = app.shop_to_push().await;
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

both_databases!(rollback_pins_then_deploy_unpins_and_promote_and_scale_work);
async fn rollback_pins_then_deploy_unpins_and_promote_and_scale_work(app: TestApp) {
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let cli = |args: &'static [&'static str]| {
        let mut cmd = app.cli(&app.data_dir.path().join("cli.toml"));
        cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
        slipway_e2e::run_cli(cmd, args, "")
    };
    let (v1, v2, v3) = (format!("v1 {}\n", nonce()), format!("v2 {}\n", nonce()), format!("v3 {}\n", nonce()));
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    commit(work.path(), &[("index.html", v2.as_bytes())], "v2").await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    let (_, releases) = app.admin("GET", "/services/shop/environments/production/releases", None).await;
    let releases = &releases["items"];
    assert_eq!(releases[0]["version"], 2);
    assert_eq!(releases[0]["current"], true);
    assert_eq!(releases[1]["version"], 1);

    // Roll back to v1: it serves again, and the environment is pinned.
    let out = cli(&["rollback", "shop", "production"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1.clone()));
    let (_, env) = app.admin("GET", "/services/shop/environments/production", None).await;
    assert_eq!((env["pinned"].as_bool(), env["release"].as_u64()), (Some(true), Some(3)), "{env}");

    // A push to the pinned environment is accepted and says how to unpin; nothing deploys.
    commit(work.path(), &[("index.html", v3.as_bytes())], "v3").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("pinned by a rollback") && out.stderr.contains("slipway deploy shop production"),
        "{out:?}"
    );
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1.clone()));

    // A deliberate deploy ships main and unpins.
    let out = cli(&["deploy", "shop", "production"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v3.clone()));
    let (_, env) = app.admin("GET", "/services/shop/environments/production", None).await;
    assert_eq!(env["pinned"], false);

    // Scale up and down; the router follows.
    let (status, env) = app
        .admin("POST", "/services/shop/environments/production/scale", Some(serde_json::json!({"replicas": 3})))
        .await;
    assert_eq!((status, env["replicas"].as_u64()), (200, Some(3)), "{env}");
    wait_healthy_replicas(&app, 3).await;
    let out = cli(&["scale", "shop", "production", "1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    wait_healthy_replicas(&app, 1).await;
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v3.clone()));
    let (status, problem) = app
        .admin("POST", "/services/shop/environments/production/scale", Some(serde_json::json!({"replicas": 0})))
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("replicas")));
    let (status, problem) =
        app.admin("POST", "/services/shop/environments/production/rollback", Some(serde_json::json!({"to": 99}))).await;
    assert_eq!((status, problem["detail"].as_str()), (404, Some("production has no release v99")), "{problem}");

    // Promote production's image to a second environment made as users make one (from a
    // template; it tracks branch staging, which has no commit yet), without a rebuild.
    let out = cli(&["envs", "create", "shop", "staging", "--template", "web"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_ne!(app.get_app("shop", "staging", "/").await.0, 200, "nothing runs there before the promote");
    let out = cli(&["promote", "shop", "--from", "production", "--to", "staging"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("STEP 1/"), "promote must not rebuild: {out:?}");
    assert_eq!(app.get_app("shop", "staging", "/").await, (200, v3.clone()));
    let (_, production) = app.admin("GET", "/services/shop/environments/production/releases?limit=1", None).await;
    let (_, staging) = app.admin("GET", "/services/shop/environments/staging/releases", None).await;
    assert_eq!(staging["items"].as_array().map(Vec::len), Some(1), "{staging}");
    assert_eq!(staging["items"][0]["image"], production["items"][0]["image"], "the same image: {staging}");

    let out = cli(&["status", "shop", "--json"]).await;
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    let envs = status["environments"].as_array().expect("environments");
    assert_eq!(envs.len(), 2, "{status}");
    assert!(envs.iter().all(|e| e["healthy_replicas"].as_u64() >= Some(1)), "{status}");
}

async fn wait_healthy_replicas(app: &TestApp, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, env) = app.admin("GET", "/services/shop/environments/production", None).await;
        if env["healthy_replicas"].as_u64() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {want} healthy replicas: {env}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_databases!(app_logs_show_the_replicas_output_to_the_owners);
async fn app_logs_show_the_replicas_output_to_the_owners(app: TestApp) {
    let token = app.shop_to_push().await;
    let marker = nonce();
    let containerfile = format!(
        "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\n\
         CMD [\"sh\", \"-c\", \"echo booted {marker}; exec httpd -f -p 8080 -h /www\"]\n"
    );
    let work = local_repo(&[("Containerfile", containerfile.as_bytes()), ("index.html", b"hi\n")]).await;
    assert_eq!(git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await.code, 0);

    let mut cmd = app.cli(&app.data_dir.path().join("cli.toml"));
    cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
    let out = slipway_e2e::run_cli(cmd, &["app-logs", "shop", "production"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let booted = out.stdout.lines().filter(|l| l.contains(&format!("booted {marker}"))).count();
    assert_eq!(booted, 2, "one line from each replica: {out:?}");

    // Another team's member may not read them.
    app.team("search").await;
    let eve = app.user("eve").await;
    app.member("search", "eve", "member").await;
    let (status, _) = app.call("GET", "/services/shop/environments/production/logs", Some(&eve), None).await;
    assert_eq!(status, 403);
}

// SQLite only: it is about the router and the reconcile loop's replacements, which read the same
// rows as the deploy tests that run on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_replica_left_the_router_answers_503_until_they_are_back() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let body = format!("back {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&body))).await;
    assert_eq!(git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await.code, 0);

    let node = std::fs::read_to_string(app.data_dir.path().join("node-id")).expect("node id");
    for id in containers(node.trim()).await {
        kill(&id).await;
    }
    // The router still lists both replicas; each refuses, so it tries the other, then
    // answers 503 with a page that says what is wrong.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, page) = loop {
        let answer = app.get_app("shop", "production", "/").await;
        if answer.0 == 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status, 503, "{page}");
    assert!(page.contains("No healthy replica of shop-production"), "{page}");

    // The reconcile loop brings them back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get_app("shop", "production", "/").await != (200, body.clone()) {
        assert!(Instant::now() < deadline, "the replicas did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A replica that answers plain requests with 200 and upgrade requests (as websockets
/// make) with 101, then echoes: busybox nc running a small script per connection.
const UPGRADE_SERVER: &str = r#"upgrade=no
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\r')
  [ -z "$line" ] && break
  case "$line" in [Uu]pgrade:*) upgrade=yes ;; esac
done
if [ "$upgrade" = yes ]; then
  printf 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n'
  exec cat
fi
printf 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n'
"#;

// SQLite only: it is about the router's splicing of upgraded connections; no query is involved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_connections_pass_through_the_router() {
    let app = TestApp::start(Db::Sqlite).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let token = app.shop_to_push().await;
    let containerfile = "FROM localhost/slipway/busybox\nCOPY serve.sh /serve.sh\n\
                         CMD [\"nc\", \"-ll\", \"-p\", \"8080\", \"-e\", \"/bin/sh\", \"/serve.sh\"]\n";
    let work =
        local_repo(&[("Containerfile", containerfile.as_bytes()), ("serve.sh", UPGRADE_SERVER.as_bytes())]).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let addr = app.apps_url.trim_start_matches("http://").to_owned();
    let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect to the router");
    let request = format!(
        "GET /socket HTTP/1.1\r\nHost: shop-production.localhost:{port}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(n, 1, "the router closed the connection: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    // Now the connection is the replica's: what goes in comes back.
    stream.write_all(b"ping over the upgraded connection\n").await.expect("send");
    let mut echoed = vec![0u8; 34];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&echoed, b"ping over the upgraded connection\n");
}

each_database!(old_build_images_are_collected_and_rollback_says_when_one_went);
/// Old build images go once no kept release needs them; rolling back to a release whose
/// image went says how to get it back.
async fn old_build_images_are_collected_and_rollback_says_when_one_went(db: Db) {
    let app =
        TestApp::start_with_env(db, &["--image-retention", "1"], &[("SLIPWAY_LOG", "warn,slipway_engine=debug")]).await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app(&format!("gc v1 {}\n", nonce())))).await;
    let mut tags = Vec::new();
    for i in 1..=3 {
        if i > 1 {
            commit(work.path(), &[("index.html", format!("gc v{i} {}\n", nonce()).as_bytes())], "next").await;
        }
        let out = git(work.path(), &[], &["push", &url, "main"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        tags.push(image_of_run(&app, i).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while slipway_e2e::engine_has_image(&tags[0]).await || slipway_e2e::engine_has_image(&tags[1]).await {
        assert!(Instant::now() < deadline, "old images were not collected: {tags:?}\n{}", app.server_output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(slipway_e2e::engine_has_image(&tags[2]).await, "the current release keeps its image");
    let (status, problem) =
        app.admin("POST", "/services/shop/environments/production/rollback", Some(serde_json::json!({"to": 1}))).await;
    assert_eq!(status, 409, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap_or_default().contains("slipway deploy shop production --ref"),
        "{problem}"
    );
}

/// An engine that stops answering mid-deploy fails the deploy at `--deploy-timeout`,
/// naming the step, and the previous release keeps serving; once the engine answers
/// again, the next push goes live.
// SQLite only: it is about an engine that stops answering (through a proxy of the
// engine API); what the store records of a failed deploy is checked on both above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_the_engine_never_answers_times_out_and_the_old_release_keeps_serving() {
    let proxy = slipway_e2e::engine_proxy::EngineProxy::start().await;
    let app = TestApp::start_with_env(
        Db::Sqlite,
        &["--health-timeout", "10", "--deploy-timeout", "20"],
        &[("SLIPWAY_ENGINE", proxy.url.as_str())],
    )
    .await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    proxy.stall_container_creates(true);
    commit(work.path(), &[("index.html", format!("v2 {}\n", nonce()).as_bytes())], "v2").await;
    let started = Instant::now();
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("the deploy did not finish within 20 s (--deploy-timeout) while starting replica 1 of 2 (web)"),
        "the error names the limit and the step: {out:?}"
    );
    assert!(out.stderr.contains("the previous release keeps serving"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "the push ended at the deadline, not later");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1), "v1 keeps serving");

    proxy.stall_container_creates(false);
    let v3 = format!("v3 {}\n", nonce());
    commit(work.path(), &[("index.html", v3.as_bytes())], "v3").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "the server keeps working once the engine answers: {out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v3));
}

/// Two installations on one engine that build the same commit of a same-named service
/// get their own images: one's image collection never removes what the other runs.
/// (Both once tagged `localhost/slipway/shop:<commit>`, and a rollback in one hung or
/// failed when the other collected that tag.)
// SQLite only: what it checks is the engine's image names and collection, which no
// query decides; two installations on PostgreSQL would add two databases and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_sharing_an_engine_never_share_or_collect_each_others_images() {
    let a = TestApp::start_with(Db::Sqlite, &["--image-retention", "1"]).await;
    let b = TestApp::start_with(Db::Sqlite, &["--image-retention", "1"]).await;
    let (token_a, token_b) = (a.shop_to_push().await, b.shop_to_push().await);
    // One repository pushed to both: the very same commit.
    let work = local_repo(&borrowed(&fixture_app(&format!("shared {}\n", nonce())))).await;
    assert_eq!(git(work.path(), &[], &["push", &a.git_url("shop", &token_a), "main"]).await.code, 0);
    assert_eq!(git(work.path(), &[], &["push", &b.git_url("shop", &token_b), "main"]).await.code, 0);
    let (image_a, image_b) = (image_of_run(&a, 1).await, image_of_run(&b, 1).await);
    assert_ne!(image_a, image_b, "the same service and commit in two installations");

    // A moves on; with a retention of 1 its first build goes.
    commit(work.path(), &[("index.html", format!("a v2 {}\n", nonce()).as_bytes())], "a v2").await;
    assert_eq!(git(work.path(), &[], &["push", &a.git_url("shop", &token_a), "main"]).await.code, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while slipway_e2e::engine_has_image(&image_a).await {
        assert!(Instant::now() < deadline, "A did not collect {image_a}\n{}", a.server_output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(slipway_e2e::engine_has_image(&image_b).await, "A's collection removed B's {image_b}");
    // B's release still runs from its own image: a killed replica comes back.
    let node = std::fs::read_to_string(b.data_dir.path().join("node-id")).expect("node id");
    let ids = containers(node.trim()).await;
    kill(&ids[0]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = containers(node.trim()).await;
        if now.len() == 2 && !now.contains(&ids[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "B's killed replica was not replaced: {now:?}\n{}", b.server_output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The image a run built, as the API reports it.
async fn image_of_run(app: &TestApp, run: i64) -> String {
    let (_, run) = app.admin("GET", &format!("/runs/{run}"), None).await;
    run["image"].as_str().unwrap_or_else(|| panic!("an image: {run}")).to_owned()
}

/// A replacement replica that is slow to get healthy must not hold up a deploy of its
/// environment. (The reconcile loop held the environment's lock through the replacement's
/// whole health wait, up to --health-timeout, and a push or rollback meanwhile sat in
/// its deploy stage, "running" with nothing in its log.)
// SQLite only: it is about the environment lock between the reconcile loop and a deploy, held in
// memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_does_not_wait_behind_a_slow_replacement() {
    let app = TestApp::start_with(Db::Sqlite, &["--health-timeout", "90"]).await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    // Replicas started after `slow-after` (a Unix time) take ten minutes to listen: the
    // first deploy's are quick, a replacement started later is not.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let slow_after = now + 20;
    let containerfile = "FROM localhost/slipway/busybox\nCOPY . /www/\n\
        CMD [\"sh\", \"-c\", \"if [ $(date +%s) -ge $(cat /www/slow-after) ]; then sleep 600; fi; exec httpd -f -p 8080 -h /www\"]\n";
    let v1 = format!("v1 {}\n", nonce());
    let slow = slow_after.to_string();
    let files: Vec<(&str, &[u8])> = vec![
        ("Containerfile", containerfile.as_bytes()),
        ("index.html", v1.as_bytes()),
        ("slow-after", slow.as_bytes()),
    ];
    let work = local_repo(&files).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // Past `slow-after`, kill a replica: its replacement starts and never gets healthy.
    let wait = Duration::from_secs(slow_after + 1)
        .saturating_sub(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock"));
    tokio::time::sleep(wait).await;
    let node = std::fs::read_to_string(app.data_dir.path().join("node-id")).expect("node id");
    let ids = containers(node.trim()).await;
    assert_eq!(ids.len(), 2, "{ids:?}");
    kill(&ids[0]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = containers(node.trim()).await;
        if now.iter().any(|id| !ids.contains(id)) {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement was started: {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1), "the healthy replica serves meanwhile");

    // v2 deploys while the replacement waits for its health check.
    let v2 = format!("v2 {}\n", nonce());
    commit(work.path(), &[("index.html", v2.as_bytes()), ("slow-after", b"9999999999")], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (_, run) = app.admin("GET", "/runs/2", None).await;
    let deploy = run["stages"].as_array().expect("stages").iter().find(|s| s["name"] == "deploy").expect("deploy");
    let took = deploy["duration_ms"].as_i64().expect("duration");
    assert!(took < 45_000, "the deploy waited {took} ms behind the replacement's 90 s health wait: {run}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v2));
}
