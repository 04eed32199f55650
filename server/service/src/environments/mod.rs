//! Environments: create them from a template (or preview them with a dry run), change
//! their template version or parameters, destroy them; list and show them, their
//! releases, scale, roll back to an earlier release (which pins the environment and
//! restores that release's config and spec), and promote one environment's image to
//! another. Rollback, promote, config changes and upgrades are runs like any other, with
//! only the deploy stage.

use serde_json::Value;
use slipway_api::{Environment, Release, Run};
use slipway_core::policy::Action;
use slipway_core::template::{Spec, memory_bytes};
use slipway_core::workloads;
use slipway_engine::context::{self};
use slipway_store::StoreError;
use slipway_store::environments::{EnvironmentShape, EnvironmentState};
use slipway_store::releases::ReleaseRow;

use crate::access::require_in_team;
use crate::clock::rfc3339;
use crate::lookup::{find_environment, find_service};
use crate::runs::get_run;
use crate::{Actor, AppState, Result, ServiceError};

mod create;
mod traffic;
pub(crate) use create::{OwnedShape, create_preview, first_environment};
pub use create::{create_environment, preview_name, update_environment};

/// The most replicas one environment may ask for on the local runtime.
pub const MAX_REPLICAS: u32 = slipway_core::template::MAX_REPLICAS;
/// What a replica without a memory limit counts against the memory quota.
pub const DEFAULT_MEMORY_MB: i64 = 256;

/// Where an environment is served: the app router's address here, or on a cluster its
/// Ingress at the cluster's domain.
pub(crate) async fn url_of(state: &AppState, env: &EnvironmentState) -> String {
    state.engine.environment_url(env, state.settings.app_url(&env.service, &env.name)).await
}

/// An environment as the API shows it, with its traffic figures.
async fn to_api_with_traffic(state: &AppState, env: EnvironmentState) -> Environment {
    let traffic = traffic::traffic_of(state, &env).await;
    to_api(state, env, traffic).await
}

async fn to_api(state: &AppState, env: EnvironmentState, traffic: Option<slipway_api::Traffic>) -> Environment {
    // Here the router's healthy replicas; on a cluster what the workloads' status says
    // (ready and desired, the autoscaler's count when it has one).
    let slipway_engine::Workload { ready: healthy, desired: replicas, condition } =
        state.engine.environment_status(&env);
    let idle_ttl = env.idle_ttl_ms.map(|ms| format_duration(ms / 1000));
    let url = url_of(state, &env).await;
    Environment {
        traffic,
        url,
        runtime: env.runtime.clone(),
        template: format!("{}@{}", env.template, env.template_version),
        parameters: serde_json::from_str(&env.parameters).unwrap_or(Value::Null),
        preview: env.preview,
        expires_at: env.expires_at.map(rfc3339),
        idle_ttl,
        created_by: env.created_by,
        name: env.name,
        branch: env.branch,
        replicas: u32::try_from(replicas).unwrap_or(0),
        healthy_replicas: u32::try_from(healthy).unwrap_or(0),
        condition,
        release: env.current_version.and_then(|v| u32::try_from(v).ok()),
        pinned: env.pinned,
        created_at: rfc3339(env.created_at),
    }
}

/// `86400` → `1d`, `7200` → `2h`: the largest whole unit.
fn format_duration(secs: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
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

pub async fn list_environments(state: &AppState, _actor: &Actor, service: &str) -> Result<Vec<Environment>> {
    let service = find_service(state, service).await?;
    let rows = state.store.list_environments(service.id).await?;
    let mut traffic = traffic::traffic_of_each(state, service.id, &rows).await;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let figures = traffic.remove(&row.id);
        out.push(to_api(state, row, figures).await);
    }
    Ok(out)
}

/// One page of a service's environments in name order.
pub async fn list_environments_page(
    state: &AppState,
    _actor: &Actor,
    service: &str,
    params: &crate::pagination::PageParams,
) -> Result<slipway_api::Page<Environment>> {
    let service = find_service(state, service).await?;
    let page = crate::pagination::PageRequest::parse(params)?;
    let rows = state.store.list_environments_after(service.id, &page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |e| e.name.clone());
    let mut traffic = traffic::traffic_of_each(state, service.id, &rows).await;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let figures = traffic.remove(&row.id);
        items.push(to_api(state, row, figures).await);
    }
    Ok(slipway_api::Page { items, next_cursor })
}

pub async fn get_environment(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Environment> {
    let service = find_service(state, service).await?;
    Ok(to_api_with_traffic(state, find_environment(state, &service, env).await?).await)
}

pub async fn list_releases(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Vec<Release>> {
    let service = find_service(state, service).await?;
    let env = find_environment(state, &service, env).await?;
    let rows = state.store.list_releases(env.id, 200).await?;
    Ok(rows.into_iter().map(|r| release_to_api(r, env.current_release)).collect())
}

/// One page of an environment's releases, newest first (the cursor is a version).
pub async fn list_releases_page(
    state: &AppState,
    _actor: &Actor,
    service: &str,
    env: &str,
    params: &crate::pagination::PageParams,
) -> Result<slipway_api::Page<Release>> {
    let service = find_service(state, service).await?;
    let env = find_environment(state, &service, env).await?;
    let page = crate::pagination::PageRequest::parse(params)?;
    let rows = state.store.list_releases_before(env.id, page.before_id()?, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.version.to_string());
    Ok(slipway_api::Page {
        items: rows.into_iter().map(|r| release_to_api(r, env.current_release)).collect(),
        next_cursor,
    })
}

/// The spec an environment runs now (environments older than templates ran web's defaults).
fn current_spec(env: &EnvironmentState) -> Result<Spec> {
    env.spec
        .or_legacy(context::DEFAULT_PORT, context::DEFAULT_HEALTH)
        .map_err(|e| ServiceError::internal_from("the stored spec", e))
}

/// How much a spec counts against quotas, with the primary workload at `primary` replicas.
fn totals(spec: &Spec, primary: u32) -> (i32, i64) {
    let primary_name = workloads::primary(spec);
    let mut replicas = 0i64;
    let mut memory_mb = 0i64;
    for (name, w) in &spec.workloads {
        let n = if Some(name.as_str()) == primary_name { primary } else { w.replicas };
        let per = w.memory.as_deref().and_then(memory_bytes).map_or(DEFAULT_MEMORY_MB, |b| b >> 20);
        replicas += i64::from(n);
        memory_mb += per * i64::from(n);
    }
    (i32::try_from(replicas).unwrap_or(i32::MAX), memory_mb)
}

/// What the store records of an environment running `spec` with its primary workload at
/// `replicas`: the quota counts follow from them.
fn sized_shape<'a>(
    template: &'a str,
    template_version: &'a str,
    parameters: &'a str,
    spec: &'a Spec,
    replicas: u32,
) -> EnvironmentShape<'a> {
    let (total_replicas, total_memory_mb) = totals(spec, replicas);
    EnvironmentShape {
        template,
        template_version,
        parameters,
        spec,
        replicas: i32::try_from(replicas).unwrap_or(1),
        total_replicas,
        total_memory_mb,
    }
}

fn primary_replicas(spec: &Spec) -> u32 {
    workloads::primary(spec).map_or(1, |name| spec.workloads[name].replicas)
}

pub async fn scale(state: &AppState, actor: &Actor, service: &str, env: &str, replicas: u32) -> Result<Environment> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    let spec = current_spec(&env)?;
    let max = spec.policy.max_replicas.unwrap_or(MAX_REPLICAS).min(MAX_REPLICAS);
    if !(1..=max).contains(&replicas) {
        let message = format!("replicas must be between 1 and {max} (the template's max_replicas), not {replicas}");
        // Outside 1..=MAX_REPLICAS breaks the API's own rule (400); above the
        // template's bound, the template's (422), which the document cannot state.
        return Err(if replicas == 0 || replicas > MAX_REPLICAS {
            ServiceError::invalid("replicas", message)
        } else {
            ServiceError::InvalidParameters { field: "replicas".to_owned(), message }
        });
    }
    let shape = sized_shape(&env.template, &env.template_version, &env.parameters, &spec, replicas);
    state.store.reshape_environment(env.id, service.team_id, &shape).await?;
    state.engine.reconcile_soon();
    Ok(to_api_with_traffic(state, state.store.environment_state(env.id).await?).await)
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
        // A release that does not exist is absent (404), whatever its number.
        Some(v) => i32::try_from(v).map_err(|_| ServiceError::Absent(format!("{} has no release v{v}", env.name)))?,
        None if current > 1 => current - 1,
        None => return Err(ServiceError::Conflict(format!("{} has only v1; there is no earlier release", env.name))),
    };
    let release = match state.store.release_by_version(env.id, version).await {
        Ok(release) => release,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::Absent(format!("{} has no release v{version}", env.name)));
        }
        Err(err) => return Err(err.into()),
    };
    if !state.engine.release_image_available(&env, &release.image).await {
        let short: String = release.commit_sha.chars().take(12).collect();
        return Err(ServiceError::Conflict(format!(
            "the image of v{version} was removed (only the newest releases keep theirs, see --image-retention); \
             build its commit again with `slipway deploy {} {} --ref {short}`",
            service.name, env.name
        )));
    }
    // A rollback restores what the release ran with: its spec (template, parameters)
    // and its config, as Heroku's restores config.
    if let Some(spec) = release.spec.get().map_err(|e| ServiceError::internal_from("the stored spec", e))? {
        let shape = sized_shape(
            &release.template,
            &release.template_version,
            &release.parameters,
            spec,
            primary_replicas(spec),
        );
        state.store.reshape_environment(env.id, service.team_id, &shape).await?;
    }
    crate::config::restore_config(state, actor, env.id, release.config_version).await?;
    let run_id = crate::enqueue::queue_redeploy(state, actor, &service, &env, &release, "rollback").await?;
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
    let run_id = crate::enqueue::queue_redeploy(state, actor, &service, &target, &release, "promote").await?;
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
    require_in_team(state, actor, service.team_id, Action::ReadLogs).await?;
    let env = find_environment(state, &service, env).await?;
    if tail > MAX_LOG_TAIL {
        return Err(ServiceError::invalid("tail", format!("tail must be at most {MAX_LOG_TAIL}, not {tail}")));
    }
    state
        .engine
        .app_logs(&service.name, &env.name, env.id, follow, tail)
        .await
        .map_err(|e| ServiceError::internal_from("reading replica logs", e))
}

/// Stops an environment's replicas and removes it with its releases and config.
pub async fn destroy_environment(state: &AppState, actor: &Actor, service: &str, env: &str) -> Result<()> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    destroy(state, &env).await
}

/// Tears an environment down: its replicas first, then its records.
pub(crate) async fn destroy(state: &AppState, env: &EnvironmentState) -> Result<()> {
    state
        .engine
        .destroy_environment(env.id, &env.service, &env.name)
        .await
        .map_err(|e| ServiceError::internal_from(format!("stopping the replicas of {}", env.name), e))?;
    match state.store.delete_environment(env.id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::create::validate_branch;
    use super::*;
    use slipway_core::names::{MAX_NAME_LEN, validate_name};

    #[test]
    fn preview_names_are_dns_labels_that_fit() {
        assert_eq!(preview_name("shop", "feature/Login_fix").as_deref(), Some("pr-feature-login-fix"));
        assert_eq!(preview_name("shop", "--x--").as_deref(), Some("pr-x"));
        assert_eq!(preview_name("shop", "///"), None);
        let long = preview_name("shop", &"a".repeat(100)).unwrap();
        assert!(long.len() <= MAX_NAME_LEN, "{long}");
        assert!(validate_name(&long).is_ok());
    }

    #[test]
    fn branch_names_follow_git_rules() {
        for ok in ["main", "feature/login", "release-1.2", "a_b"] {
            assert!(validate_branch(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a~1", "x.lock", "a//b", "/a", "a/", "a@{1}", "a:b"] {
            assert!(validate_branch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_print_in_their_largest_unit() {
        assert_eq!(format_duration(86_400), "1d");
        assert_eq!(format_duration(7200), "2h");
        assert_eq!(format_duration(90), "90s");
    }
}
