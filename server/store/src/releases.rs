//! Releases: each successful deploy's immutable record (image, commit, config version,
//! template and rendered spec), and the environment's pointer to the one that serves.

use slipway_core::template::Spec;
use slipway_core::workloads::StoredSpec;

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReleaseRow {
    pub id: i64,
    pub environment_id: i64,
    pub version: i32,
    pub run_id: Option<i64>,
    pub image: String,
    pub image_id: String,
    pub commit_sha: String,
    pub port: i32,
    pub health: String,
    /// The config version the release runs with (0: never configured).
    pub config_version: i32,
    pub template: String,
    pub template_version: String,
    pub parameters: String,
    /// The spec the release ran (none for releases older than templates).
    #[sqlx(try_from = "String")]
    pub spec: StoredSpec,
    pub created_by: String,
    pub created_at: i64,
}

/// A release to record.
#[derive(Debug, Clone)]
pub struct NewRelease<'a> {
    pub environment_id: i64,
    pub run_id: Option<i64>,
    pub image: &'a str,
    pub image_id: &'a str,
    pub commit_sha: &'a str,
    pub port: i32,
    pub health: &'a str,
    pub config_version: i32,
    pub template: &'a str,
    pub template_version: &'a str,
    pub parameters: &'a str,
    pub spec: &'a Spec,
    pub created_by: &'a str,
}

macro_rules! release_columns {
    () => {
        "id, environment_id, version, run_id, image, image_id, commit_sha, port, health, config_version, template, \
         template_version, parameters, spec, created_by, created_at"
    };
}

impl Store {
    /// Records the next version and makes it current, in one transaction.
    pub async fn create_release(&self, new: &NewRelease<'_>, now: i64) -> Result<ReleaseRow> {
        let row = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            // One statement computes the version and writes: a transaction that read first
            // and wrote later would fail on SQLite when another writer came between.
            let row: ReleaseRow = sqlx::query_as(concat!(
                "INSERT INTO releases (environment_id, version, run_id, image, image_id, commit_sha, port, health, \
                 config_version, template, template_version, parameters, spec, created_by, created_at) \
                 SELECT $1, CAST(COALESCE(MAX(version), 0) + 1 AS INTEGER), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14 \
                 FROM releases WHERE environment_id = $1 RETURNING ",
                release_columns!()))
                .bind(new.environment_id).bind(new.run_id).bind(new.image).bind(new.image_id)
                .bind(new.commit_sha).bind(new.port).bind(new.health).bind(new.config_version).bind(new.template)
                .bind(new.template_version).bind(new.parameters).bind(StoredSpec::encode(new.spec)).bind(new.created_by).bind(now)
                .fetch_one(&mut *tx).await?;
            sqlx::query("UPDATE environments SET current_release = $1 WHERE id = $2")
                .bind(row.id).bind(new.environment_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<ReleaseRow, sqlx::Error>(row)
        }.await)?;
        Ok(row)
    }

    pub async fn release_by_id(&self, id: i64) -> Result<ReleaseRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ReleaseRow>(
            concat!("SELECT ", release_columns!(), " FROM releases WHERE id = $1"))
            .bind(id).fetch_one(pool).await)?;
        Ok(row)
    }

    /// An environment's releases, newest first.
    pub async fn list_releases(&self, environment_id: i64, limit: i64) -> Result<Vec<ReleaseRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ReleaseRow>(
            concat!("SELECT ", release_columns!(), " FROM releases WHERE environment_id = $1 ORDER BY version DESC LIMIT $2"))
            .bind(environment_id).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// An environment's releases, newest first, below version `before`.
    pub async fn list_releases_before(&self, environment_id: i64, before: i64, limit: i64) -> Result<Vec<ReleaseRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ReleaseRow>(
            concat!("SELECT ", release_columns!(),
                " FROM releases WHERE environment_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3"))
            .bind(environment_id).bind(before).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    pub async fn release_by_version(&self, environment_id: i64, version: i32) -> Result<ReleaseRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ReleaseRow>(
            concat!("SELECT ", release_columns!(), " FROM releases WHERE environment_id = $1 AND version = $2"))
            .bind(environment_id).bind(version).fetch_one(pool).await)?;
        Ok(row)
    }

    /// The images of each environment's newest `per_environment` releases (what rollback
    /// may still need), and of the commits of runs not yet ended (`service:commit`).
    pub async fn images_in_use(&self, per_environment: i64) -> Result<(Vec<String>, Vec<(String, String)>)> {
        let releases: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT image FROM (SELECT image, ROW_NUMBER() OVER (PARTITION BY environment_id ORDER BY version DESC) AS n \
             FROM releases) AS ranked WHERE n <= $1")
            .bind(per_environment).fetch_all(pool).await)?;
        let runs: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT s.name, r.commit_sha FROM runs r JOIN services s ON s.id = r.service_id \
             WHERE r.status IN ('preparing', 'queued', 'running')")
            .fetch_all(pool).await)?;
        Ok((releases, runs))
    }

    /// The `(service, commit)` of every image this installation built and has not
    /// collected yet: the only images its garbage collection may remove (an engine may
    /// hold other installations' too).
    pub async fn built_commits(&self) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT DISTINCT s.name, r.commit_sha FROM runs r JOIN services s ON s.id = r.service_id \
             WHERE r.image IS NOT NULL AND NOT r.image_collected")
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Records that the image of a service's commit is gone (for every run that built it).
    pub async fn mark_image_collected(&self, service: &str, commit_prefix: &str) -> Result<()> {
        let pattern = format!("{commit_prefix}%");
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET image_collected = TRUE WHERE commit_sha LIKE $2 \
             AND service_id = (SELECT id FROM services WHERE name = $1)")
            .bind(service).bind(&pattern).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_pinned(&self, environment_id: i64, pinned: bool) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE environments SET pinned = $1 WHERE id = $2")
            .bind(pinned).bind(environment_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
