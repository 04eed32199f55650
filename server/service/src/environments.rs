//! Environments and their releases: list and show them, scale, roll back to an earlier
//! release (which pins the environment), and promote one environment's image to another.
//! Rollback and promote are runs like any other, with only the deploy stage.

use slipway_api::{Environment, Release, Run};
use slipway_core::policy::Action;
use slipway_engine::context::{self, BuildSettings};
use slipway_store::StoreError;
use slipway_store::releases::{EnvironmentState, ReleaseRow};
use slipway_store::runs::NewRun;
use slipway_store::services::ServiceRow;

use crate::access::require_in_team;
use crate::clock::{now_ms, rfc3339};
use crate::runs::get_run;
use crate::services::find_service;
use crate::{Actor, AppState, Result, ServiceError};

/// The most replicas one environment may ask for on the local runtime.
pub const MAX_REPLICAS: u32 = 20;

fn to_api(state: &AppState, env: EnvironmentState) -> Environment {
    let healthy = state.engine.routes().get(&format!("{}-{}", env.service, env.name)).map_or(0, |a| a.len());
    Environment {
        url: state.settings.app_url(&env.service, &env.name),
        name: env.name,
        branch: env.branch,
        replicas: u32::try_from(env.replicas).unwrap_or(0),
        healthy_replicas: u32::try_from(healthy).unwrap_or(0),
        release: env.current_version.and_then(|v| u32::try_from(v).ok()),
        pinned: env.pinned,
        created_at: rfc3339(env.created_at),
    }
}

fn release_to_api(row: ReleaseRow, current: Option<i64>) -> Release {
    Release {
        version: u32::try_from(row.version).unwrap_or(0),
        image: row.image,
        commit: row.commit_sha,
        run: row.run_id,
        config_version: u32::try_from(row.config_version).unwrap_or(0),
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        current: current == Some(row.id),
    }
}

pub(crate) async fn find_environment(state: &AppState, service: &ServiceRow, name: &str) -> Result<EnvironmentState> {
    let row = match state.store.environment_by_name(service.id, name).await {
        Ok(row) => row,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::NotFound {
                kind: "environment",
                name: format!("{name} of service {}", service.name),
            });
        }
        Err(err) => return Err(err.into()),
    };
    Ok(state.store.environment_state(row.id).await?)
}

pub async fn list_environments(state: &AppState, _actor: &Actor, service: &str) -> Result<Vec<Environment>> {
    let service = find_service(state, service).await?;
    let rows = state.store.list_environments(service.id).await?;
    Ok(rows.into_iter().map(|e| to_api(state, e)).collect())
}

pub async fn get_environment(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Environment> {
    let service = find_service(state, service).await?;
    Ok(to_api(state, find_environment(state, &service, env).await?))
}

pub async fn list_releases(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Vec<Release>> {
    let service = find_service(state, service).await?;
    let env = find_environment(state, &service, env).await?;
    let rows = state.store.list_releases(env.id, 200).await?;
    Ok(rows.into_iter().map(|r| release_to_api(r, env.current_release)).collect())
}

pub async fn scale(state: &AppState, actor: &Actor, service: &str, env: &str, replicas: u32) -> Result<Environment> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(ServiceError::invalid(
            "replicas",
            format!("replicas must be between 1 and {MAX_REPLICAS}, not {replicas}"),
        ));
    }
    state.store.set_replicas(env.id, i32::try_from(replicas).unwrap_or(1)).await?;
    state.engine.reconcile_soon();
    Ok(to_api(state, state.store.environment_state(env.id).await?))
}

/// Queues a deploy-only run of an existing release's image into `target`.
pub(crate) async fn queue_redeploy(
    state: &AppState,
    actor: &Actor,
    service: &ServiceRow,
    target: &EnvironmentState,
    release: &ReleaseRow,
    trigger: &'static str,
) -> Result<i64> {
    let node = state.engine.config().node.clone();
    let git_ref = format!("release v{}", release.version);
    let run = NewRun {
        service_id: service.id,
        environment_id: Some(target.id),
        trigger,
        git_ref: &git_ref,
        commit_sha: &release.commit_sha,
        actor: &actor.username,
        node: Some(&node),
        status: "preparing",
        reason: "",
        stages: &["deploy"],
    };
    let run_id = state.store.create_run(&run, now_ms()).await?;
    let contexts = &state.engine.config().contexts_dir;
    let settings = BuildSettings {
        dockerfile: String::new(),
        args: Default::default(),
        port: u16::try_from(release.port).unwrap_or(context::DEFAULT_PORT),
        health: release.health.clone(),
        // The release phase ran when this release was first deployed.
        release_command: None,
    };
    let written = async {
        tokio::fs::create_dir_all(contexts).await?;
        context::write_settings(contexts, run_id, &settings).await
    }
    .await;
    if let Err(err) = written {
        state.store.fail_unstarted_run(run_id, &format!("preparing the deploy failed: {err}"), now_ms()).await?;
        return Err(ServiceError::Internal(format!("writing deploy settings: {err}")));
    }
    state.store.set_run_image(run_id, &release.image, &release.image_id).await?;
    state.store.mark_queued(run_id).await?;
    state.engine.wake();
    Ok(run_id)
}

/// Redeploys an earlier release (the one before the current by default) and pins the
/// environment, so the next push does not silently undo the rollback.
pub async fn rollback(state: &AppState, actor: &Actor, service: &str, env: &str, to: Option<u32>) -> Result<Run> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    let current = env.current_version.ok_or_else(|| {
        ServiceError::Conflict(format!("{} has no release yet; there is nothing to roll back", env.name))
    })?;
    let version = match to {
        Some(v) => i32::try_from(v).map_err(|_| ServiceError::invalid("to", "no such release"))?,
        None if current > 1 => current - 1,
        None => return Err(ServiceError::Conflict(format!("{} has only v1; there is no earlier release", env.name))),
    };
    let release = match state.store.release_by_version(env.id, version).await {
        Ok(release) => release,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::invalid("to", format!("{} has no release v{version}", env.name)));
        }
        Err(err) => return Err(err.into()),
    };
    // A rollback restores the config the release ran with, as Heroku's does.
    crate::config::restore_config(state, actor, env.id, release.config_version).await?;
    let run_id = queue_redeploy(state, actor, &service, &env, &release, "rollback").await?;
    state.store.set_pinned(env.id, true).await?;
    get_run(state, actor, run_id).await
}

/// Runs `from`'s current image in `to`, without a rebuild.
pub async fn promote(state: &AppState, actor: &Actor, service: &str, from: &str, to: &str) -> Result<Run> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let source = find_environment(state, &service, from).await?;
    let target = find_environment(state, &service, to).await?;
    if source.id == target.id {
        return Err(ServiceError::invalid("to", "promote needs two different environments"));
    }
    let release_id =
        source.current_release.ok_or_else(|| ServiceError::Conflict(format!("{from} has no release to promote")))?;
    let release = state.store.release_by_id(release_id).await?;
    let run_id = queue_redeploy(state, actor, &service, &target, &release, "promote").await?;
    get_run(state, actor, run_id).await
}

/// The most lines `app-logs` replays per replica before following.
pub const MAX_LOG_TAIL: u32 = 10_000;

/// The running replicas' output. Reading it takes the owning team (or an admin): apps
/// print things the rest of the company need not see.
pub async fn app_logs(
    state: &AppState,
    actor: &Actor,
    service: &str,
    env: &str,
    follow: bool,
    tail: u32,
) -> Result<tokio::sync::mpsc::Receiver<String>> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    if tail > MAX_LOG_TAIL {
        return Err(ServiceError::invalid("tail", format!("tail must be at most {MAX_LOG_TAIL}, not {tail}")));
    }
    state
        .engine
        .app_logs(&service.name, &env.name, env.id, follow, tail)
        .await
        .map_err(|e| ServiceError::Internal(format!("reading replica logs: {e}")))
}
