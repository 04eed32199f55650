//! User accounts.

use crate::{Result, Store, StoreError, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// Sessions issued at or before this moment (Unix ms) have ended.
    pub sessions_after: i64,
}

/// The columns of [`UserRow`], as a macro so queries stay `&'static str` (sqlx refuses
/// run-time-built SQL without an explicit audit).
macro_rules! columns {
    () => {
        "id, username, password_hash, is_admin, created_at, sessions_after"
    };
}

impl Store {
    pub async fn create_user(&self, username: &str, password_hash: &str, is_admin: bool, now: i64) -> Result<UserRow> {
        let sql = concat!(
            "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING ",
            columns!()
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(sql)
            .bind(username).bind(password_hash).bind(is_admin).bind(now)
            .fetch_one(pool).await)?;
        Ok(row)
    }

    /// Creates the first admin only while no user exists. Returns `None` when users
    /// already exist, including when another replica won the race.
    pub async fn create_initial_admin(&self, username: &str, password_hash: &str, now: i64) -> Result<Option<UserRow>> {
        let sql = concat!(
            "INSERT INTO users (username, password_hash, is_admin, created_at) \
             SELECT $1, $2, TRUE, $3 WHERE NOT EXISTS (SELECT 1 FROM users) RETURNING ",
            columns!()
        );
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(sql)
            .bind(username).bind(password_hash).bind(now)
            .fetch_optional(pool).await);
        match row {
            Ok(row) => Ok(row),
            Err(err) => match StoreError::from(err) {
                StoreError::Conflict => Ok(None),
                other => Err(other),
            },
        }
    }

    pub async fn user_by_name(&self, username: &str) -> Result<UserRow> {
        let sql = concat!("SELECT ", columns!(), " FROM users WHERE username = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(sql).bind(username).fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<UserRow> {
        let sql = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
        let row = on_pool!(self, pool => sqlx::query_as::<_, UserRow>(sql).bind(id).fetch_one(pool).await)?;
        Ok(row)
    }

    /// Users ordered by name, after `after` (keyset pagination).
    pub async fn list_users(&self, after: &str, limit: i64) -> Result<Vec<UserRow>> {
        let sql = concat!("SELECT ", columns!(), " FROM users WHERE username > $1 ORDER BY username LIMIT $2");
        let rows =
            on_pool!(self, pool => sqlx::query_as::<_, UserRow>(sql).bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Sets a new password and ends every session issued until `now` (Unix ms).
    pub async fn set_password(&self, user_id: i64, password_hash: &str, now: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query("UPDATE users SET password_hash = $1, sessions_after = $2 WHERE id = $3")
            .bind(password_hash).bind(now).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Revokes a session token by its id until it would have expired (Unix seconds);
    /// revoking twice is fine. Expired revocations are swept at the same time.
    pub async fn revoke_session(&self, jti: &str, expires_at: i64, now_secs: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM revoked_sessions WHERE expires_at < $1")
            .bind(now_secs).execute(pool).await.map(|_| ()))?;
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO revoked_sessions (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti).bind(expires_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn session_revoked(&self, jti: &str) -> Result<bool> {
        let found: Option<i64> = on_pool!(self, pool =>
            sqlx::query_scalar("SELECT expires_at FROM revoked_sessions WHERE jti = $1").bind(jti).fetch_optional(pool).await)?;
        Ok(found.is_some())
    }
}
