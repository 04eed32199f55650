//! Teams and their members.

use slipway_api::{AddMember, CreateTeam, Page, Team, TeamMember, UpdateTeam};
use slipway_core::policy::Action;
use slipway_core::{TeamName, TeamRole};
use slipway_store::StoreError;
use slipway_store::teams::TeamRow;

use crate::access::{require_in_team, require_platform};
use crate::clock::{now_ms, rfc3339};
use crate::lookup::find_team;
use crate::lookup::find_user;
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

async fn with_members(state: &AppState, team: TeamRow) -> Result<Team> {
    let members = state.store.list_members(team.id).await?;
    let aliases = state.store.team_aliases(team.id).await?;
    Ok(Team {
        name: team.name,
        created_at: rfc3339(team.created_at),
        members: members.into_iter().map(|m| TeamMember { username: m.username, role: m.role }).collect(),
        aliases,
    })
}

/// The most aliases a team has.
pub const MAX_ALIASES: usize = 20;

/// Changes a team: its Backstage aliases (admins only: an alias decides who owns what
/// descriptors name, so a team may not claim names for itself). An alias is a Backstage
/// group name, stored in lower case (refs compare case-insensitively); it may not be
/// another team's name or alias.
pub async fn update_team(state: &AppState, actor: &Actor, name: &str, req: UpdateTeam) -> Result<Team> {
    let team = find_team(state, name).await?;
    require_platform(actor, Action::ManageTeams)?;
    if let Some(aliases) = req.aliases {
        if aliases.len() > MAX_ALIASES {
            return Err(ServiceError::invalid(
                "aliases",
                format!("at most {MAX_ALIASES} aliases, not {}", aliases.len()),
            ));
        }
        let mut clean: Vec<String> = Vec::new();
        for alias in &aliases {
            if !slipway_core::catalog_info::valid_entity_name(alias) {
                return Err(ServiceError::invalid(
                    "aliases",
                    format!(
                        "alias {alias:?} is not a Backstage name: 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                    ),
                ));
            }
            let alias = alias.to_ascii_lowercase();
            if !clean.contains(&alias) {
                clean.push(alias);
            }
        }
        for (known, team_id, team_name) in state.store.owner_directory().await? {
            if team_id != team.id && clean.contains(&known) {
                return Err(ServiceError::Conflict(format!(
                    "alias {known:?} already names team {team_name:?}; remove it there first"
                )));
            }
        }
        match state.store.set_team_aliases(team.id, &clean).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(ServiceError::Conflict(
                    "another team took one of these aliases meanwhile; try again".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    with_members(state, team).await
}

pub async fn create_team(state: &AppState, actor: &Actor, req: CreateTeam) -> Result<Team> {
    require_platform(actor, Action::ManageTeams)?;
    let name = TeamName::parse(&req.name).map_err(|e| ServiceError::invalid_name("name", &req.name, e))?;
    // A team's name and another team's alias would make one owner name two teams.
    if let Some((_, _, holder)) =
        state.store.owner_directory().await?.into_iter().find(|(known, _, _)| known == name.as_str())
    {
        return Err(ServiceError::Conflict(format!("{name:?} is an alias of team {holder:?}; remove it there first")));
    }
    match state.store.create_team(name.as_str(), now_ms()).await {
        Ok(team) => with_members(state, team).await,
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!("team {name:?} already exists"))),
        Err(err) => Err(err.into()),
    }
}

pub async fn list_teams(state: &AppState, _actor: &Actor, params: &PageParams) -> Result<Page<Team>> {
    let page = PageRequest::parse(params)?;
    let rows = state.store.list_teams(&page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |t| t.name.clone());
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(with_members(state, row).await?);
    }
    Ok(Page { items, next_cursor })
}

pub async fn get_team(state: &AppState, _actor: &Actor, name: &str) -> Result<Team> {
    let team = find_team(state, name).await?;
    with_members(state, team).await
}

pub async fn delete_team(state: &AppState, actor: &Actor, name: &str) -> Result<()> {
    let team = find_team(state, name).await?;
    require_platform(actor, Action::ManageTeams)?;
    match state.store.delete_team(team.id).await {
        Ok(()) => Ok(()),
        Err(StoreError::InUse) => Err(ServiceError::Conflict(format!(
            "team {name:?} still owns services; delete them or give them to another team first"
        ))),
        Err(StoreError::NotFound) => Err(ServiceError::not_found("team", name)),
        Err(err) => Err(err.into()),
    }
}

/// Adds a member, or changes an existing member's role.
pub async fn add_member(state: &AppState, actor: &Actor, team: &str, req: AddMember) -> Result<Team> {
    let team = find_team(state, team).await?;
    require_in_team(state, actor, team.id, Action::ManageTeamMembers).await?;
    let role = match req.role.as_deref() {
        None => TeamRole::Member,
        Some(text) => text.parse::<TeamRole>().map_err(|e| ServiceError::invalid("role", e.to_string()))?,
    };
    let user = find_user(state, &req.username).await?;
    state.store.put_member(team.id, user.id, role.as_str(), now_ms()).await?;
    with_members(state, team).await
}

pub async fn remove_member(state: &AppState, actor: &Actor, team: &str, username: &str) -> Result<()> {
    let team = find_team(state, team).await?;
    require_in_team(state, actor, team.id, Action::ManageTeamMembers).await?;
    let user = find_user(state, username).await?;
    match state.store.remove_member(team.id, user.id).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => {
            Err(ServiceError::Absent(format!("user {username:?} is not a member of team {:?}", team.name)))
        }
        Err(err) => Err(err.into()),
    }
}
