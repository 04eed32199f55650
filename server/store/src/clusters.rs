//! Registered Kubernetes clusters: where they are, and their kubeconfig (sealed by the
//! caller; opened only by the engine that deploys there).

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClusterRow {
    pub name: String,
    pub context: String,
    pub server: String,
    pub kubeconfig_sealed: String,
    pub base_domain: String,
    pub ingress_class: String,
    pub created_by: String,
    pub created_at: i64,
}

macro_rules! columns {
    () => {
        "name, context, server, kubeconfig_sealed, base_domain, ingress_class, created_by, created_at"
    };
}

impl Store {
    /// Registers a cluster; [`crate::StoreError::Conflict`] when the name is taken.
    pub async fn insert_cluster(&self, row: &ClusterRow) -> Result<()> {
        on_pool!(self, pool => sqlx::query(concat!("INSERT INTO clusters (", columns!(), ") \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
            .bind(&row.name).bind(&row.context).bind(&row.server).bind(&row.kubeconfig_sealed)
            .bind(&row.base_domain).bind(&row.ingress_class).bind(&row.created_by).bind(row.created_at)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn cluster_by_name(&self, name: &str) -> Result<ClusterRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, ClusterRow>(concat!(
            "SELECT ", columns!(), " FROM clusters WHERE name = $1"))
            .bind(name).fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn list_clusters(&self) -> Result<Vec<ClusterRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ClusterRow>(concat!(
            "SELECT ", columns!(), " FROM clusters ORDER BY name"))
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    /// One page of clusters in name order, after `after`.
    pub async fn list_clusters_after(&self, after: &str, limit: i64) -> Result<Vec<ClusterRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, ClusterRow>(concat!(
            "SELECT ", columns!(), " FROM clusters WHERE name > $1 ORDER BY name LIMIT $2"))
            .bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Removes a cluster no environment runs on; [`crate::StoreError::InUse`] otherwise
    /// (checked in the same statement, so an environment created meanwhile still counts).
    pub async fn delete_cluster(&self, name: &str) -> Result<()> {
        let n = on_pool!(self, pool => sqlx::query(
            "DELETE FROM clusters WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM environments WHERE runtime = $1)")
            .bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            self.cluster_by_name(name).await?;
            return Err(crate::StoreError::InUse);
        }
        Ok(())
    }

    /// Names of the environments (`service/env`) running on a cluster.
    pub async fn environments_on(&self, runtime: &str) -> Result<Vec<String>> {
        let rows: Vec<String> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT s.name || '/' || e.name FROM environments e JOIN services s ON s.id = e.service_id \
             WHERE e.runtime = $1 ORDER BY 1")
            .bind(runtime).fetch_all(pool).await)?;
        Ok(rows)
    }
}
