//! `tokens create | list | revoke`.

use slipway_api::{CreateToken, CreatedToken, Token};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output::{self, short_time};

pub async fn create(name: String, expires_in_days: Option<u32>, json: bool) -> Result<(), CliError> {
    let created: CreatedToken = signed_in_client()?.post("/tokens", &CreateToken { name, expires_in_days }).await?;
    if json {
        return output::json(&serde_json::json!({"name": created.name, "token": created.token}));
    }
    // The token alone on stdout, so `TOKEN=$(slipway tokens create ci)` works.
    println!("{}", created.token);
    eprintln!("Created token {}; it is shown only this once.", created.name);
    Ok(())
}

pub async fn list(json: bool) -> Result<(), CliError> {
    let tokens: Vec<Token> = signed_in_client()?.list_all("/tokens").await?;
    if json {
        return output::json(&tokens);
    }
    let rows = tokens
        .into_iter()
        .map(|t| {
            vec![
                t.name,
                short_time(&t.created_at),
                t.last_used_at.as_deref().map_or_else(|| "never".to_owned(), short_time),
                t.expires_at.as_deref().map_or_else(|| "never".to_owned(), short_time),
            ]
        })
        .collect();
    output::table(&["name", "created", "last used", "expires"], rows);
    Ok(())
}

pub async fn revoke(name: String) -> Result<(), CliError> {
    signed_in_client()?.delete(&format!("/tokens/{}", encode(&name))).await?;
    println!("Revoked token {name}");
    Ok(())
}
