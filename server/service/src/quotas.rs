//! Team quotas: admins set limits (environments, previews, replicas, memory); the team's
//! members and admins read them with the current usage. Enforcement happens where an
//! environment grows, in the store's transactions (see slipway-store's environments).

use slipway_api::{QuotaUsage, SetQuota, TeamQuota};
use slipway_core::policy::Action;
use slipway_store::environments::Quota;

use crate::access::{require_in_team, require_platform};
use crate::clock::now_ms;
use crate::lookup::find_team;
use crate::{Actor, AppState, Result, ServiceError};

fn to_api(quota: Quota, usage: slipway_store::environments::Usage) -> TeamQuota {
    let u = |n: i64| u64::try_from(n).unwrap_or(0);
    TeamQuota {
        max_environments: quota.max_environments.and_then(|n| u32::try_from(n).ok()),
        max_previews: quota.max_previews.and_then(|n| u32::try_from(n).ok()),
        max_replicas: quota.max_replicas.and_then(|n| u32::try_from(n).ok()),
        max_memory_mb: quota.max_memory_mb.and_then(|n| u64::try_from(n).ok()),
        usage: Some(QuotaUsage {
            environments: u(usage.environments),
            previews: u(usage.previews),
            replicas: u(usage.replicas),
            memory_mb: u(usage.memory_mb),
        }),
    }
}

pub async fn get_quota(state: &AppState, actor: &Actor, team: &str) -> Result<TeamQuota> {
    let team = find_team(state, team).await?;
    require_in_team(state, actor, team.id, Action::ChangeService).await?;
    Ok(to_api(state.store.quota(team.id).await?, state.store.usage(team.id).await?))
}

/// Sets a team's limits (admins). A limit below the current usage is accepted: nothing
/// is stopped, but nothing may grow until the team is back under it.
pub async fn set_quota(state: &AppState, actor: &Actor, team: &str, req: SetQuota) -> Result<TeamQuota> {
    require_platform(actor, Action::AdministerPlatform)?;
    let team = find_team(state, team).await?;
    let to_i32 = |field: &str, n: Option<u32>| {
        n.map(|n| i32::try_from(n).map_err(|_| ServiceError::invalid(field, format!("{field} is too large"))))
            .transpose()
    };
    let quota = Quota {
        max_environments: to_i32("max_environments", req.max_environments)?,
        max_previews: to_i32("max_previews", req.max_previews)?,
        max_replicas: to_i32("max_replicas", req.max_replicas)?,
        max_memory_mb: req
            .max_memory_mb
            .map(|n| i64::try_from(n).map_err(|_| ServiceError::invalid("max_memory_mb", "max_memory_mb is too large")))
            .transpose()?,
    };
    state.store.set_quota(team.id, &quota, &actor.username, now_ms()).await?;
    Ok(to_api(quota, state.store.usage(team.id).await?))
}
