//! Teams and their memberships.

use crate::{Result, Store, StoreError, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TeamRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub username: String,
    pub role: String,
    pub added_at: i64,
}

/// A team a user belongs to, with the user's role there.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MembershipRow {
    pub team: String,
    pub role: String,
}

impl Store {
    pub async fn create_team(&self, name: &str, now: i64) -> Result<TeamRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TeamRow>(
            "INSERT INTO teams (name, created_at) VALUES ($1, $2) RETURNING id, name, created_at")
            .bind(name).bind(now).fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn team_by_name(&self, name: &str) -> Result<TeamRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TeamRow>(
            "SELECT id, name, created_at FROM teams WHERE name = $1").bind(name).fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn list_teams(&self, after: &str, limit: i64) -> Result<Vec<TeamRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, TeamRow>(
            "SELECT id, name, created_at FROM teams WHERE name > $1 ORDER BY name LIMIT $2")
            .bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Deletes a team. A team that still owns services is `InUse`.
    pub async fn delete_team(&self, team_id: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM teams WHERE id = $1").bind(team_id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn list_members(&self, team_id: i64) -> Result<Vec<MemberRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, MemberRow>(
            "SELECT u.username, m.role, m.added_at FROM team_members m JOIN users u ON u.id = m.user_id \
             WHERE m.team_id = $1 ORDER BY u.username")
            .bind(team_id).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Adds a member, or changes the role of an existing one.
    pub async fn put_member(&self, team_id: i64, user_id: i64, role: &str, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO team_members (team_id, user_id, role, added_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role")
            .bind(team_id).bind(user_id).bind(role).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn remove_member(&self, team_id: i64, user_id: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The user's role in the team, if a member.
    pub async fn member_role(&self, team_id: i64, user_id: i64) -> Result<Option<String>> {
        let role = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2")
            .bind(team_id).bind(user_id).fetch_optional(pool).await)?;
        Ok(role)
    }

    pub async fn memberships(&self, user_id: i64) -> Result<Vec<MembershipRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, MembershipRow>(
            "SELECT t.name AS team, m.role FROM team_members m JOIN teams t ON t.id = m.team_id \
             WHERE m.user_id = $1 ORDER BY t.name")
            .bind(user_id).fetch_all(pool).await)?;
        Ok(rows)
    }
}
