//! The release phase: a release command runs once in the new image before traffic
//! moves; its output reaches the pusher, and its failure or overrun leaves the previous
//! release serving.

use crate::both_databases;
use std::time::{Duration, Instant};

use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

/// The fixture app with a release command.
fn with_release(body: &str, command: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut files = fixture_app(body);
    files.retain(|(name, _)| *name != "slipway.toml");
    files.push(("slipway.toml", format!("[web]\nport = 8080\n[release]\ncommand = \"{command}\"\n").into_bytes()));
    files
}

both_databases!(the_release_command_runs_before_traffic_moves);
async fn the_release_command_runs_before_traffic_moves(app: TestApp) {
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&with_release(&v1, "echo migrating the database"))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("migrating the database"), "the release command's output reaches the pusher: {out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1.clone()));

    let failing = b"[web]\nport = 8080\n[release]\ncommand = \"echo cannot migrate; exit 7\"\n";
    commit(work.path(), &[("slipway.toml", &failing[..]), ("index.html", b"v2\n")], "bad migration").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("the release command exited with status 7"), "{out:?}");
    assert!(out.stderr.contains("cannot migrate"), "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1), "the old release keeps serving");
}

/// A release command that never ends is killed at `--release-timeout`; nothing moves.
// SQLite only: it is about the release command's time limit in the engine; the release rows are
// checked on both above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_command_that_never_ends_times_out() {
    let app = TestApp::start_with(Db::Sqlite, &["--release-timeout", "2"]).await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&v1))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);

    let hanging = b"[web]\nport = 8080\n[release]\ncommand = \"echo migrating forever; sleep 600\"\n";
    commit(work.path(), &[("slipway.toml", &hanging[..]), ("index.html", b"v2\n")], "slow migration").await;
    let started = Instant::now();
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("migrating forever"), "{out:?}");
    assert!(
        out.stderr.contains("the release command failed: it did not finish within 2 s (--release-timeout)"),
        "{out:?}"
    );
    assert!(out.stderr.contains("the previous release keeps serving"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "the push ended at the deadline, not after the sleep");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1));
    // The release container was removed, not left sleeping.
    let node = std::fs::read_to_string(app.data_dir.path().join("node-id")).expect("node id");
    let left = slipway_e2e::running_containers(&[format!("dev.slipway.node={}", node.trim())]).await;
    assert_eq!(left.len(), 2, "only v1's two replicas run: {left:?}");
}

/// The engine's followed output of a release command that never ends (Podman's can miss
/// the container's exit) does not hold the deploy: the exit decides, and the output
/// still reaches the pusher.
// SQLite only: it is about the engine's followed output (through a proxy of the engine
// API); the release it records is the same as in the tests above, which run on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_output_that_never_ends_does_not_hold_the_release() {
    let proxy = slipway_e2e::engine_proxy::EngineProxy::start().await;
    let app = TestApp::start_with_env(Db::Sqlite, &[], &[("SLIPWAY_ENGINE", proxy.url.as_str())]).await;
    let token = app.shop_to_push().await;
    proxy.stall_followed_output(true);
    let v1 = format!("v1 {}\n", nonce());
    let work = local_repo(&borrowed(&with_release(&v1, "echo step one; echo step two"))).await;
    let started = Instant::now();
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("step one") && out.stderr.contains("step two"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(60), "the push did not wait for the output to end");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, v1));
}
