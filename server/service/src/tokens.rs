//! A user's own API tokens: create (shown once), list, revoke.

use slipway_api::{CreateToken, CreatedToken, Page, Token};
use slipway_store::StoreError;

use crate::auth::cache::token_notice;
use crate::auth::token;
use crate::clock::{now_ms, rfc3339};
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

pub const MAX_TOKEN_NAME_LEN: usize = 64;
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Token names are labels chosen by their owner (`laptop`, `ci@shop`): printable, short.
pub fn validate_token_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.len() > MAX_TOKEN_NAME_LEN || !name.chars().all(ok_char) {
        return Err(ServiceError::invalid(
            "name",
            format!(
                "token name {name:?} must be 1 to {MAX_TOKEN_NAME_LEN} characters of letters, digits, '-', '_', '.' or '@'"
            ),
        ));
    }
    Ok(())
}

pub async fn create_token(state: &AppState, actor: &Actor, req: CreateToken) -> Result<CreatedToken> {
    validate_token_name(&req.name)?;
    let now = now_ms();
    let expires_at = match req.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => Some(now + i64::from(days) * 86_400_000),
        Some(days) => {
            return Err(ServiceError::invalid(
                "expires_in_days",
                format!("expires_in_days must be between 1 and {MAX_TOKEN_DAYS}, not {days}"),
            ));
        }
    };
    let secret = token::generate();
    match state.store.create_token(actor.user_id, &req.name, &token::digest(&secret), now, expires_at).await {
        Ok(row) => Ok(CreatedToken { name: row.name, token: secret, expires_at: row.expires_at.map(rfc3339) }),
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!(
            "you already have a token named {:?}; revoke it or choose another name",
            req.name
        ))),
        Err(err) => Err(err.into()),
    }
}

pub async fn list_tokens(state: &AppState, actor: &Actor, params: &PageParams) -> Result<Page<Token>> {
    let page = PageRequest::parse(params)?;
    let rows = state.store.list_tokens(actor.user_id, &page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |t| t.name.clone());
    let items = rows
        .into_iter()
        .map(|t| Token {
            name: t.name,
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
        })
        .collect();
    Ok(Page { items, next_cursor })
}

pub async fn revoke_token(state: &AppState, actor: &Actor, name: &str) -> Result<()> {
    match state.store.delete_token(actor.user_id, name).await {
        Ok(digest) => {
            state.auth_cache.apply(&token_notice(&digest));
            state.store.publish_auth_change(&token_notice(&digest)).await?;
            Ok(())
        }
        Err(StoreError::NotFound) => Err(ServiceError::not_found("token", name)),
        Err(err) => Err(err.into()),
    }
}
