//! The append-only audit log of state-changing requests.

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub status: i32,
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub status: u16,
}

impl Store {
    pub async fn append_audit(&self, entry: &NewAuditEntry<'_>) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, outcome, status) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(entry.at).bind(entry.actor).bind(entry.action).bind(entry.target).bind(entry.outcome)
            .bind(i32::from(entry.status))
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Newest first; `before` is the id of the last entry of the previous page. `actor`
    /// and `outcome` filter when not empty.
    pub async fn list_audit(
        &self,
        before: Option<i64>,
        actor: &str,
        outcome: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let before = before.unwrap_or(i64::MAX);
        let rows = on_pool!(self, pool => sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, actor, action, target, outcome, status FROM audit_log WHERE id < $1 \
             AND ($2 = '' OR actor = $2) AND ($3 = '' OR outcome = $3) ORDER BY id DESC LIMIT $4")
            .bind(before).bind(actor).bind(outcome).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }
}
