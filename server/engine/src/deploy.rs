//! The deploy stage, whatever the runtime: it waits for the environment's lock, checks
//! the team's quota, builds the one [`DesiredRelease`] (spec, config vars, add-on URLs,
//! release command) and hands it to the environment's runtime (`runtime/local.rs`,
//! `kubernetes/runtime.rs`), which rolls it out and records the release with
//! [`record_release`]. Also the release records both runtimes read, and tear-down.

use std::time::Duration;

use slipway_core::template::{Spec, WEB};
use slipway_store::environments::EnvironmentState;
use slipway_store::releases::{NewRelease, ReleaseRow};
use slipway_store::runs::RunRow;

use crate::logger::RunLog;
use crate::runtimes::{DesiredRelease, Runtime as _};
use crate::{Engine, EngineError, config_vars, context, now_ms};
use slipway_core::workloads;

pub fn route_key(service: &str, environment: &str) -> String {
    format!("{service}-{environment}")
}

/// What a deploy is doing, named for the error when it runs out of time.
#[derive(Debug, Default)]
pub(crate) struct Step(std::sync::Mutex<String>);

impl Step {
    pub(crate) fn set(&self, what: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
    }

    pub(crate) fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why a deploy that ran out of time failed.
pub(crate) fn timed_out(within: Duration, step: &Step) -> String {
    format!("the deploy did not finish within {} s (--deploy-timeout) while {}", within.as_secs(), step.get())
}

/// Deploys a built run; answers the line to log. Every wait is bounded: the deploy as a
/// whole by `--deploy-timeout` (the release command by its own limit, not counted), so
/// a hung engine or replica fails the run with the step it was on, and the previous
/// release keeps serving.
pub(crate) async fn deploy(engine: &Engine, run: &RunRow, log: &RunLog) -> Result<String, crate::DeployError> {
    let Some(environment_id) = run.environment_id else {
        return Err("the run has no environment to deploy to".to_owned().into());
    };
    let within = engine.config().deploy_timeout;
    let step = Step::default();
    step.set("waiting for another deploy of this environment to finish");
    let lock = engine.environment_lock(environment_id);
    // The holder is itself bounded (a deploy by its release command's and its own limit,
    // a reconcile by engine call timeouts), so this wait is too; it does not eat into
    // this deploy's own time.
    let holder_bound = within + engine.config().release_timeout + Duration::from_secs(120);
    let Ok(_guard) = tokio::time::timeout(holder_bound, lock.lock()).await else {
        return Err(format!("{}; the previous release, if any, keeps serving", timed_out(holder_bound, &step)).into());
    };
    let deadline = tokio::time::Instant::now() + within;
    let state = engine.store().environment_state(environment_id).await?;
    if let Some(over) = engine.store().quota_violation(state.team_id).await? {
        return Err(format!(
            "the team is over its quota {} (limit {}, in use {}); ask an admin to raise it, or scale down or destroy \
             an environment",
            over.quota, over.limit, over.used
        )
        .into());
    }
    let settings = context::read_settings(&engine.config().contexts_dir, run.id)
        .await
        .map_err(|e| format!("the build settings are missing ({e})"))?;
    let template_spec = state.spec.or_legacy(context::DEFAULT_PORT, context::DEFAULT_HEALTH)?;
    let primary_replicas = u32::try_from(state.replicas).unwrap_or(1).max(1);
    let spec = workloads::effective(&template_spec, &settings, primary_replicas)?;
    // The newest config: a config change queues a deploy of the current image to apply it.
    let config = config_vars::open(engine.store(), &engine.config().secret_key, environment_id, None).await?;
    let vars = with_addons(engine, environment_id, config.vars).await?;
    let release_command = settings.release_command.as_deref().filter(|c| !c.trim().is_empty());
    let desired = DesiredRelease {
        run,
        state: &state,
        spec: &spec,
        vars: &vars,
        config_version: config.version,
        release_command,
    };
    engine.runtime_of(&state.runtime).apply(engine, &desired, log, deadline).await
}

/// The add-ons' URLs (`DATABASE_URL`, …) first, so a config var of the same name wins.
pub(crate) async fn with_addons(
    engine: &Engine,
    environment_id: i64,
    config: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, crate::DeployError> {
    let mut vars: Vec<(String, String)> = engine
        .open_addons(environment_id)
        .await?
        .into_iter()
        .filter(|a| !config.iter().any(|(k, _)| k == a.var))
        .map(|a| (a.var.to_owned(), a.url))
        .collect();
    vars.extend(config);
    Ok(vars)
}

/// What a failed deploy leaves serving, for its error.
pub(crate) fn still_serving(state: &EnvironmentState) -> &'static str {
    if state.current_release.is_some() {
        "the previous release keeps serving"
    } else {
        "nothing was deployed here before, so nothing serves yet; fix it and push again"
    }
}

/// Records a deployed release (what ran, with which config and spec) and makes it current.
pub(crate) async fn record_release(
    engine: &Engine,
    state: &EnvironmentState,
    run: &RunRow,
    image: &str,
    image_id: &str,
    spec: &Spec,
    config_version: i32,
) -> Result<ReleaseRow, crate::DeployError> {
    let web = spec.workloads.get(WEB);
    engine
        .store()
        .create_release(
            &NewRelease {
                environment_id: state.id,
                run_id: Some(run.id),
                image,
                image_id,
                commit_sha: &run.commit_sha,
                port: web.and_then(|w| w.port).map_or(0, i32::from),
                health: web.and_then(|w| w.health.as_deref()).unwrap_or_default(),
                config_version,
                template: &state.template,
                template_version: &state.template_version,
                parameters: &state.parameters,
                spec,
                created_by: &run.actor,
            },
            now_ms(),
        )
        .await
        .map_err(|e| crate::DeployError::Rollout(format!("recording the release: {e}")))
}

/// The spec a release runs (releases made before templates ran one web workload).
pub(crate) fn release_spec(release: &ReleaseRow) -> Result<Spec, crate::DeployError> {
    let port = u16::try_from(release.port).unwrap_or(context::DEFAULT_PORT);
    Ok(release.spec.or_legacy(port, &release.health)?)
}

/// Removes every replica of an environment and its route (the environment is destroyed).
pub(crate) async fn tear_down(
    engine: &Engine,
    environment_id: i64,
    service: &str,
    environment: &str,
) -> Result<(), EngineError> {
    let lock = engine.environment_lock(environment_id);
    let _guard = lock.lock().await;
    // A failed read must not pass for "local": a cluster's namespace would be left behind.
    let runtime = match engine.store().environment_state(environment_id).await {
        Ok(state) => state.runtime,
        // Its records are gone already (a concurrent destroy): whatever is left of it here
        // goes, as before.
        Err(slipway_store::StoreError::NotFound) => crate::LOCAL_RUNTIME.to_owned(),
        Err(source) => {
            return Err(EngineError::Store { action: format!("reading environment {environment}"), source });
        }
    };
    engine.runtime_of(&runtime).tear_down(engine, environment_id, service, environment).await
}
