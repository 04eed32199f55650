//! API tokens: stored as SHA-256 hashes, looked up by hash on every request.

use crate::{Result, Store, StoreError, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A token found by its hash, with the user it belongs to.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
}

impl Store {
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &str,
        token_hash: &str,
        now: i64,
        expires_at: Option<i64>,
    ) -> Result<TokenRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TokenRow>(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, user_id, name, created_at, last_used_at, expires_at")
            .bind(user_id).bind(name).bind(token_hash).bind(now).bind(expires_at)
            .fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn token_owner(&self, token_hash: &str) -> Result<TokenOwner> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TokenOwner>(
            "SELECT t.id AS token_id, t.last_used_at, t.expires_at, u.id AS user_id, u.username, u.is_admin \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1")
            .bind(token_hash).fetch_one(pool).await)?;
        Ok(row)
    }

    pub async fn touch_token(&self, token_id: i64, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now).bind(token_id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn list_tokens(&self, user_id: i64, after: &str, limit: i64) -> Result<Vec<TokenRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, TokenRow>(
            "SELECT id, user_id, name, created_at, last_used_at, expires_at FROM api_tokens \
             WHERE user_id = $1 AND name > $2 ORDER BY name LIMIT $3")
            .bind(user_id).bind(after).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Deletes a token; answers its digest so caches can forget it.
    pub async fn delete_token(&self, user_id: i64, name: &str) -> Result<String> {
        let digest = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "DELETE FROM api_tokens WHERE user_id = $1 AND name = $2 RETURNING token_hash")
            .bind(user_id).bind(name).fetch_optional(pool).await)?;
        digest.ok_or(StoreError::NotFound)
    }
}
