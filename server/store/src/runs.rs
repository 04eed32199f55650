//! Environments (which branch deploys where), pipeline runs, their stages and log lines,
//! and the run queue: claims with leases so that two workers never run the same run and
//! a run whose worker died is found and ended.

use slipway_core::run::{RunStatus, Stage, StageStatus};

use crate::{Result, Store, StoreError, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EnvironmentRow {
    pub id: i64,
    pub service_id: i64,
    pub name: String,
    pub branch: String,
    pub created_at: i64,
}

/// A run with its service's and environment's names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    pub service_id: i64,
    pub service: String,
    pub environment_id: Option<i64>,
    pub environment: Option<String>,
    pub trigger: String,
    pub git_ref: String,
    pub commit_sha: String,
    pub actor: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub reason: String,
    pub node: Option<String>,
    pub cancel_requested: bool,
    pub image: Option<String>,
    pub image_id: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StageRow {
    pub position: i32,
    #[sqlx(try_from = "String")]
    pub name: Stage,
    #[sqlx(try_from = "String")]
    pub status: StageStatus,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub seq: i64,
    pub at: i64,
    pub stage: String,
    pub line: String,
}

/// A run to enqueue.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub service_id: i64,
    pub environment_id: Option<i64>,
    pub trigger: &'a str,
    pub git_ref: &'a str,
    pub commit_sha: &'a str,
    pub actor: &'a str,
    /// The replica that must run it (it holds the pushed objects), if any.
    pub node: Option<&'a str>,
    /// `Preparing` (not claimable until [`Store::mark_queued`]), `Queued`, or a final
    /// status for a run that has nothing to do.
    pub status: RunStatus,
    pub reason: &'a str,
    pub stages: &'a [Stage],
    /// When the commit was made (Unix ms), for lead time; none when unknown.
    pub commit_at: Option<i64>,
}

/// A finished run of a long-lived (non-preview) environment: what DORA metrics count.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeployEventRow {
    pub environment_id: i64,
    pub trigger: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// Whether its deploy stage started: a failed build never reached the environment.
    pub deployed: bool,
    pub commit_at: Option<i64>,
    pub created_at: i64,
    pub finished_at: i64,
}

macro_rules! run_select {
    () => {
        "SELECT r.id, r.service_id, s.name AS service, r.environment_id, e.name AS environment, r.trigger, \
         r.git_ref, r.commit_sha, r.actor, r.status, r.reason, r.node, r.cancel_requested, r.image, r.image_id, \
         r.created_at, r.started_at, r.finished_at \
         FROM runs r JOIN services s ON s.id = r.service_id LEFT JOIN environments e ON e.id = r.environment_id"
    };
}

/// Finished runs of non-preview environments since `$1`; callers add the scope. Two
/// queries rather than one with `($2 = 0 OR ...)`, which no index can serve.
macro_rules! deploy_events {
    () => {
        "SELECT r.environment_id AS environment_id, r.trigger, r.status, r.commit_at, r.created_at, \
         r.finished_at AS finished_at, EXISTS (SELECT 1 FROM run_stages st WHERE st.run_id = r.id \
         AND st.name = 'deploy' AND st.started_at IS NOT NULL) AS deployed \
         FROM runs r JOIN environments e ON e.id = r.environment_id JOIN services s ON s.id = r.service_id \
         WHERE e.preview = FALSE AND r.status IN ('succeeded', 'failed') AND r.finished_at >= $1"
    };
}

/// Why a running run goes back to the queue (see `Store::requeue_from_start`).
#[derive(Debug, Clone, Copy)]
enum Requeue<'a> {
    /// Its lease ran out before `now`, and it was taken over fewer than `max_attempts` times.
    Expired { now: i64, max_attempts: i32 },
    /// Its replica (`node`, which holds the lease) is stopping.
    HandedBack { node: &'a str },
}

impl Store {
    /// The environment tracking `branch`, if any (the oldest when several do).
    pub async fn environment_for_branch(&self, service_id: i64, branch: &str) -> Result<Option<EnvironmentRow>> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentRow>(
            "SELECT id, service_id, name, branch, created_at FROM environments \
             WHERE service_id = $1 AND branch = $2 ORDER BY id LIMIT 1")
            .bind(service_id).bind(branch).fetch_optional(pool).await)?;
        Ok(row)
    }

    pub async fn environment_by_name(&self, service_id: i64, name: &str) -> Result<EnvironmentRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, EnvironmentRow>(
            "SELECT id, service_id, name, branch, created_at FROM environments WHERE service_id = $1 AND name = $2")
            .bind(service_id).bind(name).fetch_one(pool).await)?;
        Ok(row)
    }

    /// Stores a run and its stages in one transaction; a new queued run for an
    /// environment supersedes that environment's older queued runs.
    pub async fn create_run(&self, new: &NewRun<'_>, now: i64) -> Result<i64> {
        let id = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO runs (service_id, environment_id, trigger, git_ref, commit_sha, actor, status, reason, \
                 node, created_at, finished_at, commit_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 RETURNING id")
                .bind(new.service_id).bind(new.environment_id).bind(new.trigger).bind(new.git_ref)
                .bind(new.commit_sha).bind(new.actor).bind(new.status.as_str()).bind(new.reason).bind(new.node).bind(now)
                .bind(if new.status.is_waiting() { None } else { Some(now) })
                .bind(new.commit_at)
                .fetch_one(&mut *tx).await?;
            let active = new.status.is_waiting();
            let stage_status = StageStatus::initial(new.status).as_str();
            for (position, name) in new.stages.iter().enumerate() {
                sqlx::query("INSERT INTO run_stages (run_id, position, name, status) VALUES ($1, $2, $3, $4)")
                    .bind(id).bind(position as i32).bind(name.as_str()).bind(stage_status)
                    .execute(&mut *tx).await?;
            }
            if let (Some(env), true) = (new.environment_id, active) {
                sqlx::query(
                    "UPDATE runs SET status = 'superseded', reason = 'superseded by a newer run', finished_at = $1 \
                     WHERE environment_id = $2 AND status IN ('queued', 'preparing') AND id < $3")
                    .bind(now).bind(env).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<i64, sqlx::Error>(id)
        }.await)?;
        Ok(id)
    }

    pub async fn run_by_id(&self, id: i64) -> Result<RunRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(concat!(run_select!(), " WHERE r.id = $1"))
            .bind(id).fetch_one(pool).await)?;
        Ok(row)
    }

    /// A service's runs, newest first, before run id `before`.
    pub async fn list_runs(&self, service_id: i64, before: i64, limit: i64) -> Result<Vec<RunRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(
            concat!(run_select!(), " WHERE r.service_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"))
            .bind(service_id).bind(before).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// An environment's runs, newest first, before run id `before`.
    pub async fn list_environment_runs(&self, environment_id: i64, before: i64, limit: i64) -> Result<Vec<RunRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(
            concat!(run_select!(), " WHERE r.environment_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"))
            .bind(environment_id).bind(before).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// The newest runs of the services of the teams `user_id` belongs to.
    pub async fn recent_runs_of_member(&self, user_id: i64, limit: i64) -> Result<Vec<RunRow>> {
        // Walk runs newest first and keep the member's. `CROSS JOIN` fixes that order on
        // SQLite (its planner otherwise starts from the services, gathers every run of
        // each and sorts them all); PostgreSQL reads it as an ordinary join.
        let rows = on_pool!(self, pool => sqlx::query_as::<_, RunRow>(
            "SELECT r.id, r.service_id, s.name AS service, r.environment_id, e.name AS environment, r.trigger, \
             r.git_ref, r.commit_sha, r.actor, r.status, r.reason, r.node, r.cancel_requested, r.image, r.image_id, \
             r.created_at, r.started_at, r.finished_at \
             FROM runs r CROSS JOIN services s LEFT JOIN environments e ON e.id = r.environment_id \
             WHERE s.id = r.service_id \
             AND EXISTS (SELECT 1 FROM team_members m WHERE m.team_id = s.team_id AND m.user_id = $1) \
             ORDER BY r.id DESC LIMIT $2")
            .bind(user_id).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Finished runs of non-preview environments since `since` (Unix ms), oldest first, of
    /// one service.
    pub async fn deploy_events_of_service(&self, service_id: i64, since: i64) -> Result<Vec<DeployEventRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, DeployEventRow>(concat!(deploy_events!(),
            " AND r.service_id = $2 ORDER BY r.finished_at, r.id"))
            .bind(since).bind(service_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// The same for every service of one team.
    pub async fn deploy_events_of_team(&self, team_id: i64, since: i64) -> Result<Vec<DeployEventRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, DeployEventRow>(concat!(deploy_events!(),
            " AND s.team_id = $2 ORDER BY r.finished_at, r.id"))
            .bind(since).bind(team_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    pub async fn stages(&self, run_id: i64) -> Result<Vec<StageRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, StageRow>(
            "SELECT position, name, status, started_at, finished_at FROM run_stages WHERE run_id = $1 ORDER BY position")
            .bind(run_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Claims the oldest queued run this node may take whose environment has no running
    /// run, leasing it until `lease_until`.
    pub async fn claim_run(&self, node: &str, lease_until: i64, now: i64) -> Result<Option<i64>> {
        const SQLITE: &str = "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, started_at = $3, \
             node = COALESCE(node, $1) \
             WHERE id = (SELECT r.id FROM runs r WHERE r.status = 'queued' AND (r.node IS NULL OR r.node = $1) \
               AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.environment_id = r.environment_id AND o.status = 'running') \
               ORDER BY r.id LIMIT 1) \
             AND status = 'queued' RETURNING id";
        const POSTGRES: &str = "UPDATE runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, started_at = $3, \
             node = COALESCE(node, $1) \
             WHERE id = (SELECT r.id FROM runs r WHERE r.status = 'queued' AND (r.node IS NULL OR r.node = $1) \
               AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.environment_id = r.environment_id AND o.status = 'running') \
               ORDER BY r.id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             AND status = 'queued' RETURNING id";
        let id = match &self.db {
            crate::Db::Sqlite(pool) => {
                sqlx::query_scalar::<_, i64>(SQLITE).bind(node).bind(lease_until).bind(now).fetch_optional(pool).await?
            }
            crate::Db::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(POSTGRES)
                    .bind(node)
                    .bind(lease_until)
                    .bind(now)
                    .fetch_optional(pool)
                    .await?
            }
        };
        Ok(id)
    }

    /// Extends a lease the node still holds; answers whether cancellation was requested,
    /// or `NotFound` when the run is no longer this node's.
    pub async fn renew_lease(&self, run_id: i64, node: &str, lease_until: i64) -> Result<bool> {
        let cancel = on_pool!(self, pool => sqlx::query_scalar::<_, bool>(
            "UPDATE runs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running' \
             RETURNING cancel_requested")
            .bind(lease_until).bind(run_id).bind(node).fetch_optional(pool).await)?;
        cancel.ok_or(StoreError::NotFound)
    }

    pub async fn start_stage(&self, run_id: i64, position: i32, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE run_stages SET status = 'running', started_at = $1 WHERE run_id = $2 AND position = $3")
            .bind(now).bind(run_id).bind(position).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn finish_stage(&self, run_id: i64, position: i32, status: StageStatus, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE run_stages SET status = $1, finished_at = $2 WHERE run_id = $3 AND position = $4")
            .bind(status.as_str()).bind(now).bind(run_id).bind(position).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn set_run_image(&self, run_id: i64, image: &str, image_id: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE runs SET image = $1, image_id = $2 WHERE id = $3")
            .bind(image).bind(image_id).bind(run_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends a running run held by `node`; stages that never ran are marked skipped.
    /// Answers false when the run was not this node's to end.
    pub async fn finish_run(&self, run_id: i64, node: &str, status: RunStatus, reason: &str, now: i64) -> Result<bool> {
        // Refused by the state machine: a bug in the caller, not a state to store.
        let status = RunStatus::Running.finish(status)?.as_str();
        let done = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE runs SET status = $1, reason = $2, finished_at = $3, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $4 AND lease_owner = $5 AND status = 'running'")
                .bind(status).bind(reason).bind(now).bind(run_id).bind(node)
                .execute(&mut *tx).await?.rows_affected();
            sqlx::query("UPDATE run_stages SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'")
                .bind(run_id).execute(&mut *tx).await?;
            sqlx::query("UPDATE run_stages SET status = 'failed', finished_at = $1 WHERE run_id = $2 AND status = 'running'")
                .bind(now).bind(run_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(done)
        }.await)?;
        Ok(done == 1)
    }

    /// Makes a prepared run claimable: by its own replica, or by any when `unpin`.
    pub async fn mark_queued(&self, run_id: i64, unpin: bool) -> Result<()> {
        let (from, to) = (RunStatus::Preparing, RunStatus::Preparing.queue()?);
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = $1, node = CASE WHEN $2 THEN NULL ELSE node END WHERE id = $3 AND status = $4")
            .bind(to.as_str()).bind(unpin).bind(run_id).bind(from.as_str())
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends a run that never reached a worker (preparing or queued) with a reason.
    pub async fn fail_unstarted_run(&self, run_id: i64, reason: &str, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = 'failed', reason = $1, finished_at = $2 WHERE id = $3 AND status IN ('preparing', 'queued')")
            .bind(reason).bind(now).bind(run_id).execute(pool).await.map(|r| r.rows_affected()))?;
        on_pool!(self, pool => sqlx::query("UPDATE run_stages SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'")
            .bind(run_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Cancels a queued run outright, or flags a running one for its worker. Answers
    /// the run's status afterwards.
    pub async fn request_cancel(&self, run_id: i64, now: i64) -> Result<RunStatus> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = 'cancelled', reason = 'cancelled before it started', finished_at = $1 \
             WHERE id = $2 AND status IN ('queued', 'preparing')")
            .bind(now).bind(run_id).execute(pool).await.map(|r| r.rows_affected()))?;
        on_pool!(self, pool => sqlx::query("UPDATE runs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'")
            .bind(run_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(self.run_by_id(run_id).await?.status)
    }

    /// Ends runs whose worker is gone: those leased by `node` (this replica before a
    /// restart), those queued for `node` (their pushed objects are gone with the push),
    /// and any whose lease expired. Answers how many were ended.
    pub async fn interrupt_orphaned_runs(&self, node: &str, now: i64) -> Result<u64> {
        // Every statement writes (no read-then-write transaction, which SQLite refuses
        // when another writer comes between); the stage updates run first, while the
        // runs still match.
        const ORPHANS: &str = "(status = 'running' AND (lease_owner = $1 OR lease_expires_at < $2)) \
             OR (status IN ('queued', 'preparing') AND node = $1)";
        let n = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE run_stages SET status = 'failed', finished_at = $2 WHERE status = 'running' \
                 AND run_id IN (SELECT id FROM runs WHERE {ORPHANS})")))
                .bind(node).bind(now).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE run_stages SET status = 'skipped' WHERE status = 'pending' \
                 AND run_id IN (SELECT id FROM runs WHERE {ORPHANS})")))
                .bind(node).bind(now).execute(&mut *tx).await?;
            let ended = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE runs SET status = 'failed', reason = 'interrupted: slipwayd stopped during the run', \
                 finished_at = $2, lease_owner = NULL, lease_expires_at = NULL WHERE {ORPHANS}")))
                .bind(node).bind(now).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(ended)
        }.await)?;
        Ok(n)
    }

    /// Running runs whose lease ran out (their replica stopped renewing), with how often
    /// each was taken over already.
    pub async fn expired_runs(&self, now: i64) -> Result<Vec<(i64, i32)>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, (i64, i32)>(
            "SELECT id, attempts FROM runs WHERE status = 'running' AND lease_expires_at < $1 ORDER BY id")
            .bind(now).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Puts a run whose lease ran out back in the queue for any replica to run from the
    /// start (its stages reset, its log kept), if it was taken over fewer than
    /// `max_attempts` times; answers whether it was.
    pub async fn requeue_expired_run(&self, run_id: i64, now: i64, max_attempts: i32) -> Result<bool> {
        self.requeue_from_start(run_id, Requeue::Expired { now, max_attempts }).await
    }

    /// Puts a running run back in the queue for any replica, its stages reset (its log
    /// kept), if `why` holds; answers whether it did.
    async fn requeue_from_start(&self, run_id: i64, why: Requeue<'_>) -> Result<bool> {
        let (from, to) = (RunStatus::Running, RunStatus::Running.requeue()?);
        const SET: &str = "UPDATE runs SET status = $1, node = NULL, lease_owner = NULL, lease_expires_at = NULL, \
             started_at = NULL, attempts = attempts + 1 WHERE id = $2 AND status = $3";
        let requeued = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let query = match why {
                Requeue::Expired { .. } => sqlx::AssertSqlSafe(format!("{SET} AND lease_expires_at < $4 AND attempts < $5")),
                Requeue::HandedBack { .. } => sqlx::AssertSqlSafe(format!("{SET} AND lease_owner = $4")),
            };
            let query = sqlx::query(query).bind(to.as_str()).bind(run_id).bind(from.as_str());
            let query = match why {
                Requeue::Expired { now, max_attempts } => query.bind(now).bind(max_attempts),
                Requeue::HandedBack { node } => query.bind(node),
            };
            if query.execute(&mut *tx).await?.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query("UPDATE run_stages SET status = 'pending', started_at = NULL, finished_at = NULL WHERE run_id = $1")
                .bind(run_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<bool, sqlx::Error>(true)
        }.await)?;
        Ok(requeued)
    }

    /// Ends the runs waiting for `node` alone (queued or preparing, pinned to it) with
    /// `reason`: that replica is stopping. Answers how many.
    pub async fn end_waiting_runs_of(&self, node: &str, reason: &str, now: i64) -> Result<u64> {
        let to = RunStatus::Queued.fail_unstarted()?;
        let n = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE run_stages SET status = 'skipped' WHERE status = 'pending' AND run_id IN \
                 (SELECT id FROM runs WHERE status IN ('queued', 'preparing') AND node = $1)")
                .bind(node).execute(&mut *tx).await?;
            let n = sqlx::query("UPDATE runs SET status = $1, reason = $2, finished_at = $3 \
                 WHERE status IN ('queued', 'preparing') AND node = $4")
                .bind(to.as_str()).bind(reason).bind(now).bind(node)
                .execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<u64, sqlx::Error>(n)
        }.await)?;
        Ok(n)
    }

    /// Hands a run this node is executing back to the queue for any replica, from the
    /// start (this replica is stopping); answers whether it was this node's to hand back.
    pub async fn hand_back_run(&self, run_id: i64, node: &str) -> Result<bool> {
        self.requeue_from_start(run_id, Requeue::HandedBack { node }).await
    }

    /// Appends log lines in one statement.
    pub async fn append_logs(&self, run_id: i64, lines: &[LogRow]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut builder = sqlx::QueryBuilder::new("INSERT INTO run_logs (run_id, seq, at, stage, line) ");
            builder.push_values(lines, |mut row, log| {
                row.push_bind(run_id).push_bind(log.seq).push_bind(log.at).push_bind(&log.stage).push_bind(&log.line);
            });
            builder.build().execute(pool).await.map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The sequence number of a run's last stored line (0 when none).
    pub async fn last_log_seq(&self, run_id: i64) -> Result<i64> {
        let seq = on_pool!(self, pool => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM run_logs WHERE run_id = $1")
            .bind(run_id).fetch_one(pool).await)?;
        Ok(seq)
    }

    /// Log lines after `after` (a sequence number), oldest first.
    pub async fn logs(&self, run_id: i64, after: i64, limit: i64) -> Result<Vec<LogRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, LogRow>(
            "SELECT seq, at, stage, line FROM run_logs WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(run_id).bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use slipway_core::run::{RunStatus, Stage, StageStatus};

    /// The SQL above names statuses and stages as words (they are the persisted form):
    /// every quoted word next to `status`/`name` must be one the core enums parse, so a
    /// renamed status cannot leave a query matching nothing.
    #[test]
    fn every_status_word_in_the_sql_is_a_core_status() {
        // The store's files whose SQL names run or stage statuses.
        let runs = include_str!("runs.rs");
        let source = [&runs[..runs.find("#[cfg(test)]").unwrap_or(runs.len())], include_str!("releases.rs")].concat();
        let quoted = regex_lite_words(&source);
        assert!(quoted.iter().any(|w| w == "preparing"), "releases.rs's waiting runs are read: {quoted:?}");
        assert!(quoted.len() > 20, "found only {quoted:?}");
        for word in quoted {
            let known = word.parse::<RunStatus>().is_ok()
                || word.parse::<StageStatus>().is_ok()
                || word.parse::<Stage>().is_ok();
            assert!(known, "the SQL names {word:?}, which no core enum knows");
        }
    }

    /// The words in `'…'` within SQL lines that compare a status or a stage name.
    fn regex_lite_words(source: &str) -> Vec<String> {
        let mut words = Vec::new();
        for line in source.lines().filter(|l| l.contains("status") || l.contains("name =")) {
            let mut rest = line;
            while let Some(start) = rest.find('\'') {
                let Some(len) = rest[start + 1..].find('\'') else { break };
                let word = &rest[start + 1..start + 1 + len];
                if !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase()) {
                    words.push(word.to_owned());
                }
                rest = &rest[start + len + 2..];
            }
        }
        words
    }
}
