//! slipwayd launched in the test's own process (`slipwayd::launch`), for tests that
//! hand it something a process cannot be given: a clock they move.

use std::sync::Arc;
use std::time::Duration;

use crate::{ADMIN_PASSWORD, Db, Server, TestApp, fresh_postgres_database, http_client, slipwayd_bin};

/// A clock a test moves: slipwayd's time plus an offset (see `TestApp::start_in_process`).
#[derive(Debug, Default)]
pub struct TestClock(std::sync::atomic::AtomicI64);

impl TestClock {
    /// Moves the clock to `secs` seconds after real time.
    pub fn set_ahead(&self, secs: i64) {
        self.0.store(secs * 1000, std::sync::atomic::Ordering::SeqCst);
    }
}

impl slipway_service::clock::Clock for TestClock {
    fn now_ms(&self) -> i64 {
        slipway_service::clock::now_ms() + self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl TestApp {
    /// Launches slipwayd in this test's process (`slipwayd::launch`) with `clock`, on
    /// the same engine, registries and database a process would use. Its output is not
    /// captured, and it cannot be killed or restarted as a process can.
    pub async fn start_in_process(db: Db, clock: Arc<TestClock>) -> TestApp {
        let data_dir = tempfile::tempdir().expect("data dir");
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", data_dir.path().join("slipway.db").display()),
            Db::Postgres => fresh_postgres_database().await,
        };
        let dir = data_dir.path().to_str().expect("utf-8 path").to_owned();
        let args = [
            "slipwayd",
            "--data-dir",
            &dir,
            "--database-url",
            &database_url,
            "--postgres-image",
            "localhost/slipway/postgres",
            "--redis-image",
            "localhost/slipway/redis",
        ];
        let args = <slipwayd::Args as clap::Parser>::try_parse_from(args).expect("slipwayd's arguments");
        let config = slipwayd::Config::load(args).expect("slipwayd's configuration");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let apps_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen for apps");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let apps_url = format!("http://{}", apps_listener.local_addr().expect("bound"));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let launch = slipwayd::Launch {
            listener,
            apps_listener,
            shutdown: shutdown.clone(),
            clock,
            admin_password: Some(ADMIN_PASSWORD.to_owned()),
            hook_program: slipwayd_bin(),
        };
        let task = tokio::spawn(async move {
            if let Err(err) = slipwayd::launch(config, launch).await {
                panic!("slipwayd (in-process) stopped: {err:#}");
            }
        });
        let http = http_client();
        let mut app = TestApp {
            url,
            apps_url,
            db,
            database_url,
            data_dir,
            admin_token: String::new(),
            http,
            args: Vec::new(),
            server: Server::InProcess { shutdown, task },
            output: Default::default(),
            contract: Default::default(),
        };
        // Serving starts once the launch is through its start-up: poll until it answers.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while app.http.get(format!("{}/healthz", app.url)).send().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the in-process slipwayd did not start within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
        app
    }
}
