//! `quotas show|set`: a team's limits and usage.

use slipway_api::{SetQuota, TeamQuota};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output;

fn limit(n: Option<impl ToString>) -> String {
    n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

fn print(team: &str, q: &TeamQuota) {
    let usage = q.usage.clone().unwrap_or_default();
    let rows = vec![
        vec!["environments".to_owned(), usage.environments.to_string(), limit(q.max_environments)],
        vec!["previews".to_owned(), usage.previews.to_string(), limit(q.max_previews)],
        vec!["replicas".to_owned(), usage.replicas.to_string(), limit(q.max_replicas)],
        vec!["memory (MiB)".to_owned(), usage.memory_mb.to_string(), limit(q.max_memory_mb)],
    ];
    println!("team {team}");
    output::table(&["quota", "used", "limit"], rows);
}

pub async fn show(team: String, json: bool) -> Result<(), CliError> {
    let q: TeamQuota = signed_in_client()?.get(&format!("/teams/{}/quota", encode(&team))).await?;
    if json {
        return output::json(&q);
    }
    print(&team, &q);
    Ok(())
}

pub async fn set(team: String, req: SetQuota, json: bool) -> Result<(), CliError> {
    let q: TeamQuota = signed_in_client()?.put(&format!("/teams/{}/quota", encode(&team)), &req).await?;
    if json {
        return output::json(&q);
    }
    print(&team, &q);
    Ok(())
}
