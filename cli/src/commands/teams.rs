//! `teams create | list | show | add | remove | delete`.

use slipway_api::{AddMember, CreateTeam, Team, UpdateTeam};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output;

pub async fn create(name: String, json: bool) -> Result<(), CliError> {
    let team: Team = signed_in_client()?.post("/teams", &CreateTeam { name }).await?;
    if json {
        return output::json(&team);
    }
    println!("Created team {}", team.name);
    Ok(())
}

pub async fn list(json: bool) -> Result<(), CliError> {
    let teams: Vec<Team> = signed_in_client()?.list_all("/teams").await?;
    if json {
        return output::json(&teams);
    }
    let rows = teams
        .into_iter()
        .map(|t| {
            let maintainers: Vec<String> =
                t.members.iter().filter(|m| m.role == "maintainer").map(|m| m.username.clone()).collect();
            vec![t.name, t.members.len().to_string(), output::or_dash(&maintainers.join(", "))]
        })
        .collect();
    output::table(&["name", "members", "maintainers"], rows);
    Ok(())
}

pub async fn show(name: String, json: bool) -> Result<(), CliError> {
    let team: Team = signed_in_client()?.get(&format!("/teams/{}", encode(&name))).await?;
    if json {
        return output::json(&team);
    }
    println!("team:    {}", team.name);
    println!("created: {}", output::short_time(&team.created_at));
    if !team.aliases.is_empty() {
        println!("aliases: {}", team.aliases.join(", "));
    }
    if team.members.is_empty() {
        println!("members: none (add one with `slipway teams add {} USER`)", team.name);
        return Ok(());
    }
    println!();
    let rows = team.members.into_iter().map(|m| vec![m.username, m.role]).collect();
    output::table(&["member", "role"], rows);
    Ok(())
}

pub async fn add(team: String, username: String, role: Option<String>, json: bool) -> Result<(), CliError> {
    let updated: Team = signed_in_client()?
        .post(&format!("/teams/{}/members", encode(&team)), &AddMember { username: username.clone(), role })
        .await?;
    if json {
        return output::json(&updated);
    }
    let role = updated.members.iter().find(|m| m.username == username).map_or("member", |m| m.role.as_str());
    println!("Added {username} to team {} as {role}", updated.name);
    Ok(())
}

pub async fn remove(team: String, username: String) -> Result<(), CliError> {
    signed_in_client()?.delete(&format!("/teams/{}/members/{}", encode(&team), encode(&username))).await?;
    println!("Removed {username} from team {team}");
    Ok(())
}

pub async fn delete(team: String) -> Result<(), CliError> {
    signed_in_client()?.delete(&format!("/teams/{}", encode(&team))).await?;
    println!("Deleted team {team}");
    Ok(())
}

pub async fn set(team: String, aliases: Vec<String>, clear: bool, json: bool) -> Result<(), CliError> {
    if aliases.is_empty() && !clear {
        return Err(CliError::usage("nothing to change: pass --alias NAME (repeat for more) or --clear-aliases"));
    }
    let updated: Team =
        signed_in_client()?.patch(&format!("/teams/{}", encode(&team)), &UpdateTeam { aliases: Some(aliases) }).await?;
    if json {
        return output::json(&updated);
    }
    if updated.aliases.is_empty() {
        println!("Team {} has no aliases", updated.name);
    } else {
        println!("Team {} is also {} in Backstage descriptors", updated.name, updated.aliases.join(", "));
    }
    Ok(())
}
