//! Environments: create them from a template (or preview them with a dry run), change
//! their template version or parameters, destroy them; list and show them, their
//! releases, scale, roll back to an earlier release (which pins the environment and
//! restores that release's config and spec), and promote one environment's image to
//! another. Rollback, promote, config changes and upgrades are runs like any other, with
//! only the deploy stage.

use std::collections::BTreeMap;

use serde_json::Value;
use slipway_api::{
    CreateEnvironment, Environment, EnvironmentChange, EnvironmentPlan, Release, Run, UpdateEnvironment,
};
use slipway_core::names::{MAX_NAME_LEN, validate_name};
use slipway_core::policy::Action;
use slipway_core::template::{ParamError, RenderError, Spec, Template, memory_bytes, parse_duration};
use slipway_engine::context::{self, BuildSettings};
use slipway_engine::workloads;
use slipway_store::StoreError;
use slipway_store::environments::{EnvironmentShape, EnvironmentState, NewEnvironment};
use slipway_store::releases::ReleaseRow;
use slipway_store::runs::NewRun;
use slipway_store::services::ServiceRow;

use crate::access::require_in_team;
use crate::clock::{now_ms, rfc3339};
use crate::runs::get_run;
use crate::services::find_service;
use crate::templates::{find_template, parse_stored};
use crate::{Actor, AppState, Result, ServiceError};

/// The most replicas one environment may ask for on the local runtime.
pub const MAX_REPLICAS: u32 = slipway_core::template::MAX_REPLICAS;
/// What a replica without a memory limit counts against the memory quota.
pub const DEFAULT_MEMORY_MB: i64 = 256;

async fn to_api(state: &AppState, env: EnvironmentState) -> Environment {
    let healthy = state.engine.routes().get(&format!("{}-{}", env.service, env.name)).map_or(0, |a| a.len());
    let idle_ttl = env.idle_ttl_ms.map(|ms| format_duration(ms / 1000));
    // On a cluster the environment is served by its Ingress, at the cluster's domain.
    let url = if env.runtime == slipway_engine::LOCAL_RUNTIME {
        state.settings.app_url(&env.service, &env.name)
    } else {
        match state.store.cluster_by_name(&env.runtime).await {
            Ok(cluster) => format!("http://{}", slipway_engine::kubernetes::host_of(&env, &cluster.base_domain)),
            Err(_) => String::new(),
        }
    };
    Environment {
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
        replicas: u32::try_from(env.replicas).unwrap_or(0),
        healthy_replicas: u32::try_from(healthy).unwrap_or(0),
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
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(to_api(state, row).await);
    }
    Ok(out)
}

pub async fn get_environment(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Environment> {
    let service = find_service(state, service).await?;
    Ok(to_api(state, find_environment(state, &service, env).await?).await)
}

pub async fn list_releases(state: &AppState, _actor: &Actor, service: &str, env: &str) -> Result<Vec<Release>> {
    let service = find_service(state, service).await?;
    let env = find_environment(state, &service, env).await?;
    let rows = state.store.list_releases(env.id, 200).await?;
    Ok(rows.into_iter().map(|r| release_to_api(r, env.current_release)).collect())
}

/// The spec an environment runs now (environments older than templates ran web's defaults).
fn current_spec(env: &EnvironmentState) -> Result<Spec> {
    Ok(workloads::parse_stored(&env.spec)
        .map_err(ServiceError::Internal)?
        .unwrap_or_else(|| workloads::legacy_spec(context::DEFAULT_PORT, context::DEFAULT_HEALTH)))
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
        return Err(ServiceError::invalid(
            "replicas",
            format!("replicas must be between 1 and {max} (the template's max_replicas), not {replicas}"),
        ));
    }
    let (total_replicas, total_memory_mb) = totals(&spec, replicas);
    let shape = EnvironmentShape {
        template: &env.template,
        template_version: &env.template_version,
        parameters: &env.parameters,
        spec: &env.spec,
        replicas: i32::try_from(replicas).unwrap_or(1),
        total_replicas,
        total_memory_mb,
    };
    state.store.reshape_environment(env.id, service.team_id, &shape).await?;
    state.engine.reconcile_soon();
    Ok(to_api(state, state.store.environment_state(env.id).await?).await)
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
    let processes = workloads::parse_stored(&release.spec)
        .ok()
        .flatten()
        .map(|spec| workloads::processes_of(&spec))
        .unwrap_or_default();
    let settings = BuildSettings {
        dockerfile: String::new(),
        args: Default::default(),
        // What the release's build said (a release without web has port 0).
        port: u16::try_from(release.port).ok().filter(|p| *p > 0),
        health: Some(release.health.clone()).filter(|h| !h.is_empty()),
        processes,
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
    if env.runtime == slipway_engine::LOCAL_RUNTIME && !state.engine.has_image(&release.image).await {
        let short: String = release.commit_sha.chars().take(12).collect();
        return Err(ServiceError::Conflict(format!(
            "the image of v{version} was removed (only the newest releases keep theirs, see --image-retention); \
             build its commit again with `slipway deploy {} {} --ref {short}`",
            service.name, env.name
        )));
    }
    // A rollback restores what the release ran with: its spec (template, parameters)
    // and its config, as Heroku's restores config.
    if !release.spec.is_empty() {
        let spec = workloads::parse_stored(&release.spec).map_err(ServiceError::Internal)?;
        if let Some(spec) = spec {
            let replicas = primary_replicas(&spec);
            let (total_replicas, total_memory_mb) = totals(&spec, replicas);
            let shape = EnvironmentShape {
                template: &release.template,
                template_version: &release.template_version,
                parameters: &release.parameters,
                spec: &release.spec,
                replicas: i32::try_from(replicas).unwrap_or(1),
                total_replicas,
                total_memory_mb,
            };
            state.store.reshape_environment(env.id, service.team_id, &shape).await?;
        }
    }
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

/// A branch name git would accept for `refs/heads/<branch>` (the common rules of
/// `git check-ref-format`).
pub(crate) fn validate_branch(branch: &str) -> Result<()> {
    let bad = branch.is_empty()
        || branch.len() > 200
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(ServiceError::invalid("branch", format!("{branch:?} is not a valid git branch name")));
    }
    Ok(())
}

/// Maps a rendering failure: bad parameter values and the specs they make are 422.
fn render_error(err: RenderError) -> ServiceError {
    let field = match &err {
        RenderError::Parameter(ParamError::Unknown { name, .. })
        | RenderError::Parameter(ParamError::Missing { name }) => {
            format!("parameters.{name}")
        }
        RenderError::Parameter(p) => format!("parameters.{}", p.parameter()),
        RenderError::Spec(_) => "parameters".to_owned(),
    };
    ServiceError::InvalidParameters { field, message: err.to_string() }
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ServiceError::Internal(e.to_string()))
}

/// A unified diff of two specs, as pretty JSON; `None` when they are the same.
fn spec_diff(running: &Spec, planned: &Spec) -> Result<Option<String>> {
    let pretty = |s: &Spec| serde_json::to_string_pretty(s).map(|t| t + "\n");
    let (old, new) = (
        pretty(running).map_err(|e| ServiceError::Internal(e.to_string()))?,
        pretty(planned).map_err(|e| ServiceError::Internal(e.to_string()))?,
    );
    if old == new {
        return Ok(None);
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    Ok(Some(diff.unified_diff().context_radius(3).header("running", "planned").to_string()))
}

fn plan(
    env: &str,
    template: &Template,
    values: &BTreeMap<String, Value>,
    spec: &Spec,
    diff: Option<String>,
) -> Result<EnvironmentPlan> {
    Ok(EnvironmentPlan {
        environment: env.to_owned(),
        template: format!("{}@{}", template.name, template.version),
        parameters: serde_json::to_value(values).map_err(|e| ServiceError::Internal(e.to_string()))?,
        spec: serde_json::to_value(spec).map_err(|e| ServiceError::Internal(e.to_string()))?,
        diff,
    })
}

/// What to provision, checked: the template rendered with the values, the runtime and
/// the lifetime allowed by its policy.
struct Provision {
    runtime: String,
    template: Template,
    values: BTreeMap<String, Value>,
    spec: Spec,
    expires_at: Option<i64>,
    idle_ttl_ms: Option<i64>,
}

fn check_provision(
    template: Template,
    parameters: &BTreeMap<String, Value>,
    ttl: Option<&str>,
    runtime: Option<&str>,
) -> Result<Provision> {
    let (values, spec) = template.render(parameters).map_err(render_error)?;
    let runtime = runtime.unwrap_or(slipway_engine::LOCAL_RUNTIME);
    if !spec.policy.runtimes.is_empty() && !spec.policy.runtimes.iter().any(|r| r == runtime) {
        return Err(ServiceError::invalid(
            "runtime",
            format!(
                "template {} allows the runtimes {}, not {runtime}",
                template.name,
                spec.policy.runtimes.join(", ")
            ),
        ));
    }
    let policy_ttl = spec.ttl();
    let ttl = match ttl {
        Some(text) => {
            let asked = parse_duration(text)
                .ok_or_else(|| ServiceError::invalid("ttl", format!("{text:?} is not a duration like 48h or 7d")))?;
            if let Some(limit) = policy_ttl
                && asked > limit
            {
                return Err(ServiceError::invalid(
                    "ttl",
                    format!(
                        "{text} is longer than template {}'s ttl of {}",
                        template.name,
                        spec.policy.ttl.clone().unwrap_or_default()
                    ),
                ));
            }
            Some(asked)
        }
        None => policy_ttl,
    };
    let now = now_ms();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Ok(Provision {
        runtime: runtime.to_owned(),
        expires_at: ttl.map(|d| now.saturating_add(ms(d))),
        idle_ttl_ms: spec.idle_ttl().map(ms),
        template,
        values,
        spec,
    })
}

fn validate_environment_name(service: &str, name: &str) -> Result<()> {
    validate_name(name).map_err(|e| ServiceError::invalid_name("name", name, e))?;
    // `<service>-<env>` is a DNS label of the app router's host name.
    if service.len() + 1 + name.len() > 63 {
        return Err(ServiceError::invalid(
            "name",
            format!("{service}-{name} is longer than 63 characters, the limit of a host name label"),
        ));
    }
    debug_assert!(name.len() <= MAX_NAME_LEN);
    Ok(())
}

/// Stores a checked environment (quotas enforced in the same transaction) and, when the
/// branch already has commits, queues its first build and deploy. Either all of it
/// happens or nothing is left behind.
async fn provision(
    state: &AppState,
    actor: &Actor,
    service: &ServiceRow,
    name: &str,
    branch: &str,
    p: &Provision,
    preview: bool,
) -> Result<(EnvironmentState, Option<i64>)> {
    let shape = OwnedShape::new(&p.template, &p.values, &p.spec)?;
    let new = NewEnvironment {
        name,
        branch,
        shape: shape.borrow(),
        preview,
        expires_at: p.expires_at,
        idle_ttl_ms: p.idle_ttl_ms,
        runtime: &p.runtime,
        created_by: &actor.username,
    };
    let id = match state.store.create_environment(service.id, service.team_id, &new, now_ms()).await {
        Ok(id) => id,
        Err(StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!("{} already has an environment {name}", service.name)));
        }
        Err(err) => return Err(err.into()),
    };
    let env = state.store.environment_state(id).await?;
    let provisioned = async {
        provision_addons(state, &env, &p.spec).await?;
        crate::runs::queue_build(state, actor, service, id, branch, "deploy").await
    }
    .await;
    match provisioned {
        Ok(run) => Ok((state.store.environment_state(id).await?, run)),
        Err(err) => {
            // Never half-provisioned: the environment and its add-ons go with the failed step.
            if let Err(undo) = destroy(state, &env).await {
                tracing::error!(%undo, environment = %name, "removing an environment whose creation failed");
            }
            Err(err)
        }
    }
}

pub async fn create_environment(
    state: &AppState,
    actor: &Actor,
    service: &str,
    req: CreateEnvironment,
) -> Result<EnvironmentChange> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    validate_environment_name(&service.name, &req.name)?;
    let branch = req.branch.clone().unwrap_or_else(|| req.name.clone());
    validate_branch(&branch)?;
    let (_, template) = find_template(state, &req.template, true).await?;
    let runtime = req.runtime.clone().unwrap_or_else(|| state.settings.default_runtime.clone());
    crate::clusters::check_runtime(state, &runtime).await?;
    if runtime != slipway_engine::LOCAL_RUNTIME
        && slipway_engine::kubernetes::namespace_of(&service.name, &req.name).len() > 63
    {
        return Err(ServiceError::invalid(
            "name",
            format!(
                "slipway-{}-{} is longer than 63 characters, the limit of a namespace name",
                service.name, req.name
            ),
        ));
    }
    let p = check_provision(template, &req.parameters, req.ttl.as_deref(), Some(&runtime))?;
    let existing = match state.store.environment_by_name(service.id, &req.name).await {
        Ok(row) => Some(state.store.environment_state(row.id).await?),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    let diff = match &existing {
        Some(env) => spec_diff(&current_spec(env)?, &p.spec)?,
        None => None,
    };
    let plan = plan(&req.name, &p.template, &p.values, &p.spec, diff)?;
    if req.dry_run {
        return Ok(EnvironmentChange { plan, environment: None, run: None });
    }
    if existing.is_some() {
        return Err(ServiceError::Conflict(format!(
            "{} already has an environment {}; change it with `slipway envs update`",
            service.name, req.name
        )));
    }
    if let Some(other) = state.store.environment_for_branch(service.id, &branch).await? {
        return Err(ServiceError::Conflict(format!(
            "branch {branch} already deploys to {}; give another --branch",
            other.name
        )));
    }
    let (env, run_id) = provision(state, actor, &service, &req.name, &branch, &p, false).await?;
    let run = match run_id {
        Some(id) => Some(get_run(state, actor, id).await?),
        None => None,
    };
    Ok(EnvironmentChange { plan, environment: Some(to_api(state, env).await), run })
}

/// Moves an environment to another template version and/or parameter values; the
/// change is a new release of the current image (or applies at the first deploy).
pub async fn update_environment(
    state: &AppState,
    actor: &Actor,
    service: &str,
    env: &str,
    req: UpdateEnvironment,
) -> Result<EnvironmentChange> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    let reference = req.template.clone().unwrap_or_else(|| format!("{}@{}", env.template, env.template_version));
    let same_version = req.template.is_none();
    let (_, template) = find_template(state, &reference, !same_version).await?;
    // Current values carry over when the new version still declares them.
    let mut values: BTreeMap<String, Value> = serde_json::from_str::<BTreeMap<String, Value>>(&env.parameters)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| template.parameters.contains_key(k) && !v.is_null())
        .collect();
    values.extend(req.parameters.clone());
    let (values, spec) = template.render(&values).map_err(render_error)?;
    let running = current_spec(&env)?;
    if let Some(gone) = running.addons.iter().find(|a| !spec.addons.contains(a)) {
        return Err(ServiceError::InvalidParameters {
            field: "template".to_owned(),
            message: format!(
                "this change removes the {} add-on, which would delete its data; destroy the environment instead",
                gone.kind.as_str()
            ),
        });
    }
    let diff = spec_diff(&running, &spec)?;
    let plan = plan(&env.name, &template, &values, &spec, diff.clone())?;
    if req.dry_run {
        return Ok(EnvironmentChange { plan, environment: Some(to_api(state, env).await), run: None });
    }
    let shape = OwnedShape::new(&template, &values, &spec)?;
    state.store.reshape_environment(env.id, service.team_id, &shape.borrow()).await?;
    provision_addons(state, &env, &spec).await?;
    let run = match (env.current_release, diff.is_some()) {
        (Some(release_id), true) => {
            let release = state.store.release_by_id(release_id).await?;
            let run_id = queue_redeploy(state, actor, &service, &env, &release, "upgrade").await?;
            Some(get_run(state, actor, run_id).await?)
        }
        _ => None,
    };
    let env = state.store.environment_state(env.id).await?;
    Ok(EnvironmentChange { plan, environment: Some(to_api(state, env).await), run })
}

/// Provisions the add-ons a spec asks for that the environment lacks.
async fn provision_addons(state: &AppState, env: &EnvironmentState, spec: &Spec) -> Result<()> {
    if spec.addons.is_empty() {
        return Ok(());
    }
    let kinds: Vec<_> = spec.addons.iter().map(|a| a.kind).collect();
    state.engine.provision_addons(env, &kinds).await.map_err(|why| {
        tracing::error!(%why, service = %env.service, environment = %env.name, "provisioning add-ons");
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        ServiceError::Unavailable(format!(
            "provisioning the {} add-on(s) of {} failed, so nothing was created; slipwayd's log says why \
             (check its --postgres-image/--redis-image and the container engine)",
            names.join(", "),
            env.name
        ))
    })
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
        .map_err(|e| ServiceError::Internal(format!("stopping the replicas of {}: {e}", env.name)))?;
    match state.store.delete_environment(env.id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// `feature/Login_fix` → `pr-feature-login-fix`, cut to fit the host name label.
pub fn preview_name(service: &str, branch: &str) -> Option<String> {
    let mut slug = String::new();
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let room = 63usize.saturating_sub(service.len() + 1 + 3).min(MAX_NAME_LEN - 3);
    let slug: String = slug.chars().take(room).collect();
    let slug = slug.trim_end_matches('-');
    (!slug.is_empty()).then(|| format!("pr-{slug}"))
}

/// Creates the preview environment of a branch from the service's preview template
/// (no first run: the push that caused it runs next).
pub(crate) async fn create_preview(
    state: &AppState,
    created_by: &str,
    service: &ServiceRow,
    template: &str,
    branch: &str,
) -> Result<EnvironmentState> {
    let name = preview_name(&service.name, branch)
        .ok_or_else(|| ServiceError::invalid("branch", format!("branch {branch:?} gives no preview name")))?;
    let (_, template) = find_template(state, template, true).await?;
    let runtime = state.settings.default_runtime.clone();
    let p = check_provision(template, &BTreeMap::new(), None, Some(&runtime))?;
    let shape = OwnedShape::new(&p.template, &p.values, &p.spec)?;
    let new = NewEnvironment {
        name: &name,
        branch,
        shape: shape.borrow(),
        preview: true,
        expires_at: p.expires_at,
        idle_ttl_ms: p.idle_ttl_ms,
        runtime: &p.runtime,
        created_by,
    };
    let id = match state.store.create_environment(service.id, service.team_id, &new, now_ms()).await {
        Ok(id) => id,
        Err(StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!(
                "{} already has an environment {name} on another branch",
                service.name
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let env = state.store.environment_state(id).await?;
    if let Err(err) = provision_addons(state, &env, &p.spec).await {
        if let Err(undo) = destroy(state, &env).await {
            tracing::error!(%undo, environment = %env.name, "removing a preview whose add-ons failed");
        }
        return Err(err);
    }
    Ok(env)
}

/// The environment of a new service: `production` from the default template, tracking `main`.
pub(crate) async fn first_environment(state: &AppState) -> Result<(Template, BTreeMap<String, Value>, Spec)> {
    let row = state.store.latest_template(crate::templates::DEFAULT_TEMPLATE).await?;
    let template = parse_stored(&row)?;
    let (values, spec) = template.render(&BTreeMap::new()).map_err(render_error)?;
    Ok((template, values, spec))
}

/// Builds the shape of a rendered template, for the store.
pub(crate) struct OwnedShape {
    pub template: String,
    pub version: String,
    pub parameters: String,
    pub spec: String,
    pub replicas: i32,
    pub total_replicas: i32,
    pub total_memory_mb: i64,
}

impl OwnedShape {
    pub fn new(template: &Template, values: &BTreeMap<String, Value>, spec: &Spec) -> Result<OwnedShape> {
        let replicas = primary_replicas(spec);
        let (total_replicas, total_memory_mb) = totals(spec, replicas);
        Ok(OwnedShape {
            template: template.name.clone(),
            version: template.version.to_string(),
            parameters: to_json(values)?,
            spec: to_json(spec)?,
            replicas: i32::try_from(replicas).unwrap_or(1),
            total_replicas,
            total_memory_mb,
        })
    }

    pub fn borrow(&self) -> EnvironmentShape<'_> {
        EnvironmentShape {
            template: &self.template,
            template_version: &self.version,
            parameters: &self.parameters,
            spec: &self.spec,
            replicas: self.replicas,
            total_replicas: self.total_replicas,
            total_memory_mb: self.total_memory_mb,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
