//! Fresh stores for tests (feature `testing`), on each database: a SQLite file, and a
//! PostgreSQL database of the test's own on the server `SLIPWAY_TEST_POSTGRES_URL` names
//! (`scripts/test` starts one). The store's own tests and the use cases' tests share it.

use crate::Store;
use sqlx::Connection;

/// A fresh store on one database: its SQLite file goes with its directory when dropped,
/// its PostgreSQL database with [`Fresh::finish`].
#[derive(Debug)]
pub struct Fresh {
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Fresh {
    pub async fn sqlite() -> Fresh {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&format!("sqlite://{}/store.db", dir.path().display()), 4).await.expect("sqlite");
        Fresh { store, _dir: Some(dir), pg: None }
    }

    /// `tag` keeps the databases of tests running at once apart.
    pub async fn postgres(tag: &str) -> Fresh {
        let admin = std::env::var("SLIPWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!("SLIPWAY_TEST_POSTGRES_URL is not set: run scripts/test, which starts a private PostgreSQL")
        });
        // A fixed prefix, the test's tag (letters and `_`) and the process id.
        // PostgreSQL cuts names at 63 bytes: a long tag is cut instead of the process id.
        let tag: String = tag.chars().take(40).collect();
        let name = format!("slipway_store_{tag}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PostgreSQL");
        for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await.expect("database");
        }
        let mut url = url::Url::parse(&admin).expect("url");
        url.set_path(&format!("/{name}"));
        let store = Store::open(url.as_str(), 8).await.expect("postgres");
        Fresh { store, _dir: None, pg: Some((admin, name)) }
    }

    /// Closes the store and drops its PostgreSQL database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin).await.expect("connect to PostgreSQL");
            let sql = format!("DROP DATABASE IF EXISTS {name}");
            sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await.expect("drop");
        }
    }
}

/// A team `payments`, its service `shop` and `count` environments `e0`, `e1`… (tracking
/// branches `b0`, `b1`…); answers (service, environments).
pub async fn environments(store: &Store, count: usize) -> (i64, Vec<i64>) {
    let team = store.create_team("payments", 1).await.expect("team");
    let service = store
        .create_service("shop", team.id, &crate::services::CatalogFields::default(), None, 1)
        .await
        .expect("service");
    let mut environments = Vec::new();
    let spec = slipway_core::workloads::legacy_spec(8080, "/");
    for i in 0..count {
        let (name, branch) = (format!("e{i}"), format!("b{i}"));
        let shape = crate::environments::EnvironmentShape {
            template: "web",
            template_version: "1.0.0",
            parameters: "{}",
            spec: &spec,
            replicas: 1,
            total_replicas: 1,
            total_memory_mb: 0,
        };
        let new = crate::environments::NewEnvironment {
            name: &name,
            branch: &branch,
            shape,
            preview: false,
            expires_at: None,
            idle_ttl_ms: None,
            runtime: "local",
            created_by: "admin",
        };
        environments.push(store.create_environment(service.id, team.id, &new, 1).await.expect("environment"));
    }
    // The spec reads back typed, as written.
    let state = store.environment_state(environments[0]).await.expect("environment");
    assert_eq!(state.spec.get().expect("readable"), Some(&spec));
    (service.id, environments)
}
