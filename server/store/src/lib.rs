//! Slipway's persistence: one [`Store`] over SQLite (the embedded default) or PostgreSQL
//! (several `slipwayd` replicas sharing one database). This is the only crate with SQL.
//!
//! Every query is written once, in SQL both databases accept (`$N` placeholders,
//! `RETURNING`, times as Unix milliseconds), and runs on whichever pool is configured
//! through the [`on_pool!`] macro. sqlx's compile-time `query!` checks one database per
//! crate, so queries are checked at run time instead, by the shared test suite that runs
//! against both databases.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub mod addons;
pub mod audit;
pub mod catalog;
pub mod clusters;
pub mod config;
pub mod environments;
pub mod notify;
pub mod releases;
pub mod runs;
pub mod schema;
pub mod services;
pub mod teams;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod traffic;
pub mod users;

/// Runs the same query code against whichever database the store holds.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The two supported databases.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What went wrong in the store. Callers map `NotFound`/`Conflict`/`InUse` to domain
/// errors; everything else is an internal error whose text is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error("still referenced by other records")]
    InUse,
    #[error("database URL {url:?} is not valid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot open the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A write the run state machine does not allow: a caller's bug, never stored.
    #[error("{0}")]
    Transition(#[from] slipway_core::run::Refused),
    #[error("quota {} exceeded", .0.quota)]
    Quota(environments::QuotaExceeded),
    #[error("host name {host} is taken by environment {environment} of service {service}")]
    HostTaken { host: String, service: String, environment: String },
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::InUse,
            _ => StoreError::Database(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a store talks to, for logs and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle to the database; cheap to clone (it is a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// The SQLite file (and its WAL and shared-memory files, which SQLite creates with the
/// database file's mode) is readable by slipwayd's user only: it holds password hashes
/// and sealed secrets. Created 0600 when missing; an existing one open to others is
/// made private, with a warning.
fn private_database_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
            return Ok(());
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            let Ok(meta) = std::fs::metadata(&file) else { continue };
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                tracing::warn!(file = %file.display(), was = format!("{:o}", mode & 0o777), "made the database file private (0600)");
            }
        }
    }
    Ok(())
}

/// Hides the password of a database URL so it can be logged and shown in errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl Store {
    /// Opens the database at `url` (`sqlite://path` or `postgres://…`) and applies the
    /// migrations for that database.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store> {
        let shown = redact_url(url);
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl { url: shown.clone(), reason: e.to_string() })?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            private_database_file(options.get_filename())
                .map_err(|e| StoreError::BadUrl { url: shown.clone(), reason: e.to_string() })?;
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .connect_with(options)
                .await
                .map_err(|source| StoreError::Connect { url: shown, source })?;
            Store { db: Db::Sqlite(pool) }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::BadUrl { url: shown.clone(), reason: e.to_string() })?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|source| StoreError::Connect { url: shown, source })?;
            Store { db: Db::Postgres(pool) }
        } else {
            return Err(StoreError::BadUrl {
                url: shown,
                reason: "use sqlite://PATH or postgres://USER@HOST/DB".into(),
            });
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlx::migrate!("../../migrations/sqlite").run(pool).await?,
            Db::Postgres(pool) => sqlx::migrate!("../../migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Decodes a JSON column written by this crate.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serialising plain data (strings, vectors of structs of strings) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}
