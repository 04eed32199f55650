//! A team's worth of pushes at once: ten services pushed to one slipwayd together, five
//! rounds in a row, and every push goes live. (Issue: one replica of ten once never
//! answered its health check, and a rollback's deploy hung, when pushes overlapped.)
//!
//! SQLite only: its single writer is the harder case for fifty overlapping runs; claims
//! competing on PostgreSQL are tested in `replicas.rs` and the store's tests.

use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

const SERVICES: usize = 10;
const ROUNDS: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_services_pushed_at_once_all_go_live_five_times() {
    let app = std::sync::Arc::new(TestApp::start(Db::Sqlite).await);
    app.team("payments").await;
    let token = app.admin_api_token("git").await;
    let mut repos = Vec::new();
    for i in 0..SERVICES {
        let name = format!("svc{i}");
        app.service(&name, "payments").await;
        let work = local_repo(&borrowed(&fixture_app(&format!("{name} r0 {}\n", nonce())))).await;
        repos.push((name, work));
    }
    let repos = std::sync::Arc::new(repos);
    for round in 1..=ROUNDS {
        let mut pushes = Vec::new();
        for i in 0..SERVICES {
            let (app, repos, token) = (app.clone(), repos.clone(), token.clone());
            pushes.push(tokio::spawn(async move {
                let (name, work) = &repos[i];
                let body = format!("{name} r{round} {}\n", nonce());
                if round > 1 {
                    commit(work.path(), &[("index.html", body.as_bytes())], "next").await;
                }
                let out = git(work.path(), &[], &["push", &app.git_url(name, &token), "main"]).await;
                (name.clone(), out)
            }));
        }
        let mut failed = Vec::new();
        for push in pushes {
            let (name, out) = push.await.expect("push task");
            if out.code != 0 || !out.stderr.contains(" is live (push to live: ") {
                failed.push(format!("{name}: exit {}\n{}", out.code, out.stderr));
            }
        }
        assert!(
            failed.is_empty(),
            "round {round}: {} of {SERVICES} pushes did not go live:\n{}\n--- server ---\n{}",
            failed.len(),
            failed.join("\n"),
            app.server_output()
        );
        // Each service serves what its latest push holds.
        for (name, work) in repos.iter() {
            let expected = std::fs::read_to_string(work.path().join("index.html")).expect("index.html");
            assert_eq!(app.get_app(name, "production", "/").await, (200, expected), "round {round}: {name}");
        }
    }
}
