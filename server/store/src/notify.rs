//! Change notifications between slipwayd replicas that share a PostgreSQL database
//! (`LISTEN`/`NOTIFY`), so in-memory caches drop stale entries at once. With SQLite
//! there is one process and nothing to tell.

use sqlx::postgres::PgListener;

use crate::{Db, Result, Store, on_pool};

/// The channel that carries credential changes (revoked tokens, changed users).
pub const AUTH_CHANNEL: &str = "slipway_auth";

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Message(String),
    /// The connection dropped and was re-established; messages may have been missed.
    Lost,
}

/// A live subscription to [`AUTH_CHANNEL`].
#[derive(Debug)]
pub struct Subscription(PgListener);

impl Subscription {
    /// Waits for the next notice; `None` when the subscription cannot continue.
    pub async fn next(&mut self) -> Option<Notice> {
        match self.0.try_recv().await {
            Ok(Some(notification)) => Some(Notice::Message(notification.payload().to_owned())),
            Ok(None) => Some(Notice::Lost),
            Err(err) => {
                tracing::warn!(%err, "change notifications stopped");
                None
            }
        }
    }
}

impl Store {
    /// Tells every replica about a credential change. A no-op on SQLite.
    pub async fn publish_auth_change(&self, message: &str) -> Result<()> {
        if matches!(self.db, Db::Postgres(_)) {
            on_pool!(self, pool => sqlx::query("SELECT pg_notify($1, $2)")
                .bind(AUTH_CHANNEL).bind(message).execute(pool).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Subscribes to credential changes; `None` on SQLite, where there are no replicas.
    pub async fn subscribe_auth_changes(&self) -> Result<Option<Subscription>> {
        match &self.db {
            Db::Sqlite(_) => Ok(None),
            Db::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(AUTH_CHANNEL).await?;
                Ok(Some(Subscription(listener)))
            }
        }
    }
}
