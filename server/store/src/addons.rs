//! Add-ons of environments: which container and volume hold each, where replicas reach
//! it, and its generated password (sealed by the caller).

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddonRow {
    pub environment_id: i64,
    pub kind: String,
    pub container: String,
    pub volume: String,
    pub host: String,
    pub port: i32,
    pub password_sealed: String,
    pub created_at: i64,
}

impl Store {
    pub async fn insert_addon(&self, row: &AddonRow) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO addons (environment_id, kind, container, volume, host, port, password_sealed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(row.environment_id).bind(&row.kind).bind(&row.container).bind(&row.volume).bind(&row.host)
            .bind(row.port).bind(&row.password_sealed).bind(row.created_at)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn addons_of(&self, environment_id: i64) -> Result<Vec<AddonRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, AddonRow>(
            "SELECT environment_id, kind, container, volume, host, port, password_sealed, created_at \
             FROM addons WHERE environment_id = $1 ORDER BY kind")
            .bind(environment_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Records where a re-created add-on container is.
    pub async fn move_addon(
        &self,
        environment_id: i64,
        kind: &str,
        container: &str,
        host: &str,
        port: i32,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE addons SET container = $3, host = $4, port = $5 WHERE environment_id = $1 AND kind = $2")
            .bind(environment_id).bind(kind).bind(container).bind(host).bind(port)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
