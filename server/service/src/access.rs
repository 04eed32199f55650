//! Gathers the facts the ownership policy needs (the actor's platform role and role in
//! the team concerned) and asks it. Every use case goes through one of these functions.

use slipway_core::TeamRole;
use slipway_core::policy::{Action, Subject, authorize};

use crate::{Actor, AppState, Result, ServiceError};

/// Asks the policy about an action that concerns no particular team.
pub fn require_platform(actor: &Actor, action: Action) -> Result<()> {
    authorize(Subject::new(actor.role(), None), action).map_err(|d| ServiceError::Forbidden(d.to_string()))
}

/// Asks the policy about an action on something the team owns.
pub async fn require_in_team(state: &AppState, actor: &Actor, team_id: i64, action: Action) -> Result<()> {
    let team_role = team_role(state, actor, team_id).await?;
    authorize(Subject::new(actor.role(), team_role), action).map_err(|d| ServiceError::Forbidden(d.to_string()))
}

async fn team_role(state: &AppState, actor: &Actor, team_id: i64) -> Result<Option<TeamRole>> {
    let role = state.store.member_role(team_id, actor.user_id).await?;
    role.map(|r| r.parse::<TeamRole>().map_err(|e| ServiceError::internal_from("stored team role", e))).transpose()
}
