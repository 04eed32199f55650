//! Environments: what each runs (template, parameters, rendered spec), its size as it
//! counts against the team's quotas, its lifetime (TTL, idle TTL, last request), and the
//! per-team quotas themselves. Every change that grows an environment checks the quotas
//! in the same transaction, so two concurrent requests cannot both squeeze under a limit.

use slipway_core::template::Spec;
use slipway_core::workloads::StoredSpec;

use crate::{Result, Store, StoreError, on_pool};

/// Where an environment stands: what it runs, its branch, size, current release and pin.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnvironmentState {
    pub id: i64,
    pub service_id: i64,
    pub service: String,
    pub team_id: i64,
    pub team: String,
    pub name: String,
    pub branch: String,
    /// The primary workload's replicas (what `scale` sets).
    pub replicas: i32,
    pub current_release: Option<i64>,
    pub current_version: Option<i32>,
    pub pinned: bool,
    pub template: String,
    pub template_version: String,
    /// The parameter values, JSON.
    pub parameters: String,
    /// The rendered spec (none for environments older than templates).
    #[sqlx(try_from = "String")]
    pub spec: StoredSpec,
    pub preview: bool,
    pub expires_at: Option<i64>,
    pub idle_ttl_ms: Option<i64>,
    pub last_request_at: Option<i64>,
    pub total_replicas: i32,
    pub total_memory_mb: i64,
    /// `local` or the name of a registered cluster.
    pub runtime: String,
    pub created_by: String,
    pub created_at: i64,
}

macro_rules! state_select {
    () => {
        "SELECT e.id, e.service_id, s.name AS service, s.team_id, t.name AS team, e.name, e.branch, e.replicas, e.current_release, \
         r.version AS current_version, e.pinned, e.template, e.template_version, e.parameters, e.spec, e.preview, \
         e.expires_at, e.idle_ttl_ms, e.last_request_at, e.total_replicas, e.total_memory_mb, e.runtime, \
         e.created_by, e.created_at \
         FROM environments e JOIN services s ON s.id = e.service_id JOIN teams t ON t.id = s.team_id \
         LEFT JOIN releases r ON r.id = e.current_release"
    };
}

/// What an environment runs and how big it is.
#[derive(Debug, Clone)]
pub struct EnvironmentShape<'a> {
    pub template: &'a str,
    pub template_version: &'a str,
    pub parameters: &'a str,
    pub spec: &'a Spec,
    pub replicas: i32,
    pub total_replicas: i32,
    pub total_memory_mb: i64,
}

/// An environment to create.
#[derive(Debug, Clone)]
pub struct NewEnvironment<'a> {
    pub name: &'a str,
    pub branch: &'a str,
    pub shape: EnvironmentShape<'a>,
    pub preview: bool,
    pub expires_at: Option<i64>,
    pub idle_ttl_ms: Option<i64>,
    pub runtime: &'a str,
    pub created_by: &'a str,
}

/// A team's limits; `None` is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Quota {
    pub max_environments: Option<i32>,
    pub max_previews: Option<i32>,
    pub max_replicas: Option<i32>,
    pub max_memory_mb: Option<i64>,
}

/// What a team uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Usage {
    pub environments: i64,
    pub previews: i64,
    pub replicas: i64,
    pub memory_mb: i64,
}

/// A quota a change would exceed: its name, the limit, what was in use before the
/// change, and what the change asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub quota: &'static str,
    pub limit: i64,
    pub used: i64,
    pub requested: i64,
}

/// Why an environment was not created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Quota(QuotaExceeded),
    /// Its host name `<service>-<environment>` is another environment's.
    HostTaken {
        host: String,
        service: String,
        environment: String,
    },
}

impl From<Refused> for crate::StoreError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Quota(over) => crate::StoreError::Quota(over),
            Refused::HostTaken { host, service, environment } => {
                crate::StoreError::HostTaken { host, service, environment }
            }
        }
    }
}

/// Inserts an environment inside an open transaction `$tx`, claiming its host name and
/// checking the team's quotas; evaluates to `Result<Result<i64, Refused>, sqlx::Error>`.
/// A macro because the SQLite and PostgreSQL transactions are different types.
macro_rules! insert_environment {
    ($tx:expr, $service_id:expr, $team_id:expr, $new:expr, $now:expr) => {
        async {
            let new: &$crate::environments::NewEnvironment<'_> = $new;
            let s = &new.shape;
            let service: String =
                sqlx::query_scalar("SELECT name FROM services WHERE id = $1").bind($service_id).fetch_one(&mut *$tx).await?;
            let host = format!("{service}-{}", new.name);
            // Checked here for the message; the unique index decides under concurrency.
            let owner: Option<(String, String)> = sqlx::query_as(
                "SELECT s.name, e.name FROM environments e JOIN services s ON s.id = e.service_id WHERE e.host = $1",
            )
            .bind(&host)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some((service, environment)) = owner {
                return Ok(Err($crate::environments::Refused::HostTaken { host, service, environment }));
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO environments (service_id, name, branch, created_at, replicas, template, template_version, \
                 parameters, spec, preview, expires_at, idle_ttl_ms, created_by, total_replicas, total_memory_mb, \
                 runtime, host) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 RETURNING id",
            )
            .bind($service_id)
            .bind(new.name)
            .bind(new.branch)
            .bind($now)
            .bind(s.replicas)
            .bind(s.template)
            .bind(s.template_version)
            .bind(s.parameters)
            .bind(slipway_core::workloads::StoredSpec::encode(s.spec))
            .bind(new.preview)
            .bind(new.expires_at)
            .bind(new.idle_ttl_ms)
            .bind(new.created_by)
            .bind(s.total_replicas)
            .bind(s.total_memory_mb)
            .bind(new.runtime)
            .bind(&host)
            .fetch_one(&mut *$tx)
            .await?;
            let delta = $crate::environments::Usage {
                environments: 1,
                previews: i64::from(new.preview),
                replicas: i64::from(s.total_replicas),
                memory_mb: s.total_memory_mb,
            };
            let quota: Option<$crate::environments::Quota> = sqlx::query_as(
                "SELECT max_environments, max_previews, max_replicas, max_memory_mb FROM quotas WHERE team_id = $1",
            )
            .bind($team_id)
            .fetch_optional(&mut *$tx)
            .await?;
            if let Some(quota) = quota {
                let usage: $crate::environments::Usage =
                    sqlx::query_as($crate::environments::USAGE_SQL).bind($team_id).fetch_one(&mut *$tx).await?;
                if let Some(over) = $crate::environments::exceeded(&quota, &usage, &delta) {
                    return Ok::<_, sqlx::Error>(Err($crate::environments::Refused::Quota(over)));
                }
            }
            Ok(Ok(id))
        }
    };
}
pub(crate) use insert_environment;

/// Usage of a team, from the environments of its services.
pub(crate) const USAGE_SQL: &str = "SELECT \
    CAST(COUNT(*) AS BIGINT) AS environments, \
    CAST(COALESCE(SUM(CASE WHEN e.preview THEN 1 ELSE 0 END), 0) AS BIGINT) AS previews, \
    CAST(COALESCE(SUM(e.total_replicas), 0) AS BIGINT) AS replicas, \
    CAST(COALESCE(SUM(e.total_memory_mb), 0) AS BIGINT) AS memory_mb \
    FROM environments e JOIN services s ON s.id = e.service_id WHERE s.team_id = $1";

/// The first quota `usage` breaks, given what the change added (`delta`).
pub(crate) fn exceeded(quota: &Quota, usage: &Usage, delta: &Usage) -> Option<QuotaExceeded> {
    let checks = [
        ("max_environments", quota.max_environments.map(i64::from), usage.environments, delta.environments),
        ("max_previews", quota.max_previews.map(i64::from), usage.previews, delta.previews),
        ("max_replicas", quota.max_replicas.map(i64::from), usage.replicas, delta.replicas),
        ("max_memory_mb", quota.max_memory_mb, usage.memory_mb, delta.memory_mb),
    ];
    checks.into_iter().find_map(|(name, limit, used, added)| {
        let limit = limit?;
        // Only a change that grows the usage is refused: shrinking is always allowed.
        (added > 0 && used > limit).then_some(QuotaExceeded {
            quota: name,
            limit,
            used: used - added,
            requested: added,
        })
    })
}

impl Store {
    pub async fn environment_state(&self, environment_id: i64) -> Result<EnvironmentState> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentState>(concat!(state_select!(), " WHERE e.id = $1"))
            .bind(environment_id).fetch_one(pool).await)?;
        Ok(row)
    }

    /// A service's environments by name.
    pub async fn list_environments(&self, service_id: i64) -> Result<Vec<EnvironmentState>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentState>(
            concat!(state_select!(), " WHERE e.service_id = $1 ORDER BY e.name"))
            .bind(service_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// One page of a service's environments in name order, after `after`.
    pub async fn list_environments_after(
        &self,
        service_id: i64,
        after: &str,
        limit: i64,
    ) -> Result<Vec<EnvironmentState>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentState>(
            concat!(state_select!(), " WHERE e.service_id = $1 AND e.name > $2 ORDER BY e.name LIMIT $3"))
            .bind(service_id).bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Every environment that has a current release, for rebuilding routes at start.
    pub async fn live_environments(&self) -> Result<Vec<EnvironmentState>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentState>(
            concat!(state_select!(), " WHERE e.current_release IS NOT NULL"))
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Environments past their TTL or idle for longer than their idle TTL at `now`.
    pub async fn expired_environments(&self, now: i64) -> Result<Vec<EnvironmentState>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentState>(concat!(state_select!(),
            " WHERE (e.expires_at IS NOT NULL AND e.expires_at <= $1) \
             OR (e.idle_ttl_ms IS NOT NULL AND COALESCE(e.last_request_at, e.created_at) + e.idle_ttl_ms <= $1) \
             ORDER BY e.id"))
            .bind(now).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Creates an environment, refusing it (and writing nothing) if its host name is
    /// another environment's or it would break a quota of `team_id`.
    pub async fn create_environment(
        &self,
        service_id: i64,
        team_id: i64,
        new: &NewEnvironment<'_>,
        now: i64,
    ) -> Result<i64> {
        let id = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            // The first statement writes: it starts SQLite's write transaction and, on
            // PostgreSQL, locks the team's quota row so creations of one team queue here.
            sqlx::query("UPDATE quotas SET team_id = team_id WHERE team_id = $1").bind(team_id).execute(&mut *tx).await?;
            let id = match insert_environment!(tx, service_id, team_id, new, now).await? {
                Ok(id) => id,
                Err(refused) => {
                    tx.rollback().await?;
                    return Ok(Err(refused));
                }
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(id))
        }.await)?;
        id.map_err(StoreError::from)
    }

    /// Changes what an environment runs or how big it is (an upgrade, a scale, a
    /// rollback's restore), refusing a change that grows it past a quota.
    pub async fn reshape_environment(
        &self,
        environment_id: i64,
        team_id: i64,
        shape: &EnvironmentShape<'_>,
    ) -> Result<()> {
        let result = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE quotas SET team_id = team_id WHERE team_id = $1").bind(team_id).execute(&mut *tx).await?;
            let before: (i32, i64) =
                sqlx::query_as("SELECT total_replicas, total_memory_mb FROM environments WHERE id = $1")
                    .bind(environment_id).fetch_one(&mut *tx).await?;
            sqlx::query(
                "UPDATE environments SET template = $1, template_version = $2, parameters = $3, spec = $4, \
                 replicas = $5, total_replicas = $6, total_memory_mb = $7 WHERE id = $8")
                .bind(shape.template).bind(shape.template_version).bind(shape.parameters).bind(StoredSpec::encode(shape.spec))
                .bind(shape.replicas).bind(shape.total_replicas).bind(shape.total_memory_mb).bind(environment_id)
                .execute(&mut *tx).await?;
            let delta = Usage {
                environments: 0,
                previews: 0,
                replicas: i64::from(shape.total_replicas) - i64::from(before.0),
                memory_mb: shape.total_memory_mb - before.1,
            };
            let quota: Option<Quota> = sqlx::query_as(
                "SELECT max_environments, max_previews, max_replicas, max_memory_mb FROM quotas WHERE team_id = $1")
                .bind(team_id).fetch_optional(&mut *tx).await?;
            if let Some(quota) = quota {
                let usage: Usage = sqlx::query_as(USAGE_SQL).bind(team_id).fetch_one(&mut *tx).await?;
                if let Some(over) = exceeded(&quota, &usage, &delta) {
                    tx.rollback().await?;
                    return Ok(Err(over));
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(()))
        }.await)?;
        result.map_err(StoreError::Quota)
    }

    pub async fn delete_environment(&self, environment_id: i64) -> Result<()> {
        let n = on_pool!(self, pool => sqlx::query("DELETE FROM environments WHERE id = $1")
            .bind(environment_id).execute(pool).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Records that environments (by `<service>` and `<env>` name) served requests at `at`.
    pub async fn touch_environment(&self, service: &str, environment: &str, at: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE environments SET last_request_at = $3 \
             WHERE name = $2 AND service_id = (SELECT id FROM services WHERE name = $1)")
            .bind(service).bind(environment).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn quota(&self, team_id: i64) -> Result<Quota> {
        let quota: Option<Quota> = on_pool!(self, pool => sqlx::query_as(
            "SELECT max_environments, max_previews, max_replicas, max_memory_mb FROM quotas WHERE team_id = $1")
            .bind(team_id).fetch_optional(pool).await)?;
        Ok(quota.unwrap_or_default())
    }

    pub async fn usage(&self, team_id: i64) -> Result<Usage> {
        let usage = on_pool!(self, pool => sqlx::query_as::<_, Usage>(USAGE_SQL).bind(team_id).fetch_one(pool).await)?;
        Ok(usage)
    }

    pub async fn set_quota(&self, team_id: i64, quota: &Quota, by: &str, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO quotas (team_id, max_environments, max_previews, max_replicas, max_memory_mb, updated_by, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (team_id) DO UPDATE SET \
             max_environments = $2, max_previews = $3, max_replicas = $4, max_memory_mb = $5, updated_by = $6, \
             updated_at = $7")
            .bind(team_id).bind(quota.max_environments).bind(quota.max_previews).bind(quota.max_replicas)
            .bind(quota.max_memory_mb).bind(by).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The first quota a team already breaks (after an admin lowered it): deploys check it.
    pub async fn quota_violation(&self, team_id: i64) -> Result<Option<QuotaExceeded>> {
        let quota = self.quota(team_id).await?;
        let usage = self.usage(team_id).await?;
        // A zero delta never "grows" usage, so compare directly.
        let checks = [
            ("max_environments", quota.max_environments.map(i64::from), usage.environments),
            ("max_previews", quota.max_previews.map(i64::from), usage.previews),
            ("max_replicas", quota.max_replicas.map(i64::from), usage.replicas),
            ("max_memory_mb", quota.max_memory_mb, usage.memory_mb),
        ];
        Ok(checks.into_iter().find_map(|(name, limit, used)| {
            let limit = limit?;
            (used > limit).then_some(QuotaExceeded { quota: name, limit, used, requested: 0 })
        }))
    }
}

impl Store {
    /// The service and environment whose host name is `host`, if any.
    pub async fn host_owner(&self, host: &str) -> Result<Option<(String, String)>> {
        let sql = "SELECT s.name, e.name FROM environments e JOIN services s ON s.id = e.service_id WHERE e.host = $1";
        Ok(on_pool!(self, pool => sqlx::query_as(sql).bind(host).fetch_optional(pool).await)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growth_past_a_limit_is_refused() {
        let quota = Quota { max_replicas: Some(4), ..Quota::default() };
        let grow = Usage { replicas: 2, ..Usage::default() };
        let over = exceeded(&quota, &Usage { replicas: 5, ..Usage::default() }, &grow).expect("over");
        assert_eq!(over, QuotaExceeded { quota: "max_replicas", limit: 4, used: 3, requested: 2 });
        assert_eq!(exceeded(&quota, &Usage { replicas: 4, ..Usage::default() }, &grow), None, "at the limit is fine");
        let shrink = Usage { replicas: -1, ..Usage::default() };
        assert_eq!(exceeded(&quota, &Usage { replicas: 6, ..Usage::default() }, &shrink), None);
    }
}
