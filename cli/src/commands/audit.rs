//! `audit`: the audit log (admins).

use slipway_api::{AuditEntry, Page};

use super::signed_in_client;
use crate::error::CliError;
use crate::output::{self, short_time};

pub async fn list(limit: u32, json: bool) -> Result<(), CliError> {
    let page: Page<AuditEntry> = signed_in_client()?.get(&format!("/audit?limit={limit}")).await?;
    if json {
        return output::json(&page.items);
    }
    let rows = page
        .items
        .into_iter()
        .map(|e| vec![short_time(&e.at), e.actor, e.action, e.target, format!("{} ({})", e.outcome, e.status)])
        .collect();
    output::table(&["when", "who", "action", "target", "outcome"], rows);
    Ok(())
}
