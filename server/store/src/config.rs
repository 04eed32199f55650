//! Config versions: each change to an environment's config vars is a new immutable row
//! holding the whole config (JSON, secrets already sealed by the service layer).

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConfigVersionRow {
    pub environment_id: i64,
    pub version: i32,
    /// The snapshot as JSON; its format belongs to slipway-core's `config` module.
    pub vars: String,
    pub created_by: String,
    pub created_at: i64,
}

macro_rules! columns {
    () => {
        "environment_id, version, vars, created_by, created_at"
    };
}

impl Store {
    /// The newest config version of an environment, if it was ever configured.
    pub async fn latest_config(&self, environment_id: i64) -> Result<Option<ConfigVersionRow>> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ConfigVersionRow>(concat!(
            "SELECT ", columns!(), " FROM config_versions WHERE environment_id = $1 ORDER BY version DESC LIMIT 1"))
            .bind(environment_id).fetch_optional(pool).await)?;
        Ok(row)
    }

    pub async fn config_version(&self, environment_id: i64, version: i32) -> Result<ConfigVersionRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ConfigVersionRow>(concat!(
            "SELECT ", columns!(), " FROM config_versions WHERE environment_id = $1 AND version = $2"))
            .bind(environment_id).bind(version).fetch_one(pool).await)?;
        Ok(row)
    }

    /// Stores `version` (the one after the version the change was computed from). Two
    /// changes computed from the same version race for it: the loser gets
    /// [`crate::StoreError::Conflict`] and computes its change again, so no update is lost.
    pub async fn insert_config_version(
        &self,
        environment_id: i64,
        version: i32,
        vars: &str,
        created_by: &str,
        now: i64,
    ) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO config_versions (environment_id, version, vars, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5)")
            .bind(environment_id).bind(version).bind(vars).bind(created_by).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
