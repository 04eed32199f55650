//! The Kubernetes runtime's rollout and upkeep: a deploy applies the release's objects,
//! waits for the rollout, and on failure re-applies the previous release before failing
//! the run; the reconcile loop re-applies whatever drifted from the current release.

use slipway_core::run::Stage;
use slipway_core::template::Spec;
use slipway_core::workloads;
use slipway_store::environments::EnvironmentState;

use crate::deploy::{record_release, release_spec, still_serving, with_addons};
use crate::logger::RunLog;
use crate::runtimes::{Cluster, DesiredRelease, Runtime};
use crate::{Engine, EngineError, config_vars};

impl Runtime for Cluster<'_> {
    fn status(&self, engine: &Engine, state: &EnvironmentState) -> crate::Workload {
        engine.cluster_workloads(self.0, &state.service, &state.name).unwrap_or(crate::Workload {
            ready: 0,
            desired: usize::try_from(state.replicas).unwrap_or(0),
            condition: None,
        })
    }

    async fn has_image(&self, _engine: &Engine, _image: &str) -> bool {
        true
    }

    fn addons_in_release(&self) -> bool {
        true
    }

    fn routed_here(&self) -> bool {
        false
    }

    async fn url(&self, engine: &Engine, state: &EnvironmentState, _router_url: String) -> String {
        match engine.store().cluster_by_name(self.0).await {
            Ok(cluster) => format!("http://{}", super::host_of(state, &cluster.base_domain)),
            // A cluster removed under its environments: nowhere to reach them.
            Err(_) => String::new(),
        }
    }

    fn name_problem(&self, service: &str, environment: &str) -> Option<String> {
        let namespace = super::namespace_of(service, environment);
        (namespace.len() > 63)
            .then(|| format!("{namespace} is longer than 63 characters, the limit of a namespace name"))
    }

    async fn apply(
        &self,
        engine: &Engine,
        desired: &DesiredRelease<'_>,
        log: &RunLog,
        _deadline: tokio::time::Instant,
    ) -> Result<String, crate::DeployError> {
        deploy_to_cluster(engine, desired, log).await
    }

    async fn reconcile(&self, engine: &Engine, state: &EnvironmentState) -> Result<(), crate::DeployError> {
        reconcile_cluster(engine, state).await
    }

    async fn tear_down(
        &self,
        engine: &Engine,
        _environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        let (client, _) = engine.cluster_client(self.0).await?;
        let ns = crate::kubernetes::namespace_of(service, environment);
        let within = std::time::Duration::from_secs(120);
        Ok(crate::kubernetes::delete_namespace(&client, &ns, service, environment, within).await?)
    }
}

/// Deploys to the environment's cluster: applies the release's objects, waits for the
/// rollout, and on failure re-applies the previous release before failing the run.
pub(crate) async fn deploy_to_cluster(
    engine: &Engine,
    desired: &DesiredRelease<'_>,
    log: &RunLog,
) -> Result<String, crate::DeployError> {
    let DesiredRelease { run, state, spec, vars, config_version, release_command } = *desired;
    // The cluster pulls from the registry, by digest: the push stage must have run.
    let fresh = engine.store().run_by_id(run.id).await?;
    let image = fresh.image.clone().filter(|i| i.contains("@sha256:")).ok_or_else(|| {
        format!("deploying to cluster {} needs the image in a registry: start slipwayd with --registry", state.runtime)
    })?;
    let (client, cluster) = engine.cluster_client(&state.runtime).await?;
    let ns = crate::kubernetes::namespace_of(&state.service, &state.name);
    let quota = cluster_quota(engine, state).await?;
    let secret_keys = secret_keys(engine, state.id, None).await?;
    let addons = engine.cluster_addons(state.id).await?;
    let desired = |image: &str, spec: &Spec, vars: &[(String, String)], config_version: i32, secret_keys: &[String]| {
        cluster_manifests(engine, state, &cluster, quota, image, spec, vars, secret_keys, config_version, &addons)
    };
    log.line(
        Stage::Deploy,
        &format!("-----> Deploy {} to cluster {} (namespace {ns}): {image}", state.name, state.runtime),
    );
    let objects = desired(&image, spec, vars, config_version, &secret_keys);
    if let Some(command) = release_command {
        // The release phase: a Job with the new image and config, before any workload moves.
        let (base, _) = crate::kubernetes::split_base(&objects);
        crate::kubernetes::apply(&client, &base).await?;
        log.line(Stage::Deploy, &format!("-----> Release command (a Job): {command}"));
        let job = crate::kubernetes::release_job(&state.service, &state.name, run.id, &image, command);
        crate::kubernetes::run_job(&client, &job, engine.config().release_timeout)
            .await
            .map_err(|why| format!("{why}; {}", still_serving(state)))?;
    }
    crate::kubernetes::apply(&client, &objects).await?;
    if let Err(why) = crate::kubernetes::wait_rollout(&client, &ns, spec, engine.config().health_timeout, log).await {
        for event in crate::kubernetes::warning_events(&client, &ns, 3).await {
            log.line(Stage::Deploy, &format!("event: {event}"));
        }
        // Auto-rollback: the previous release's objects, as they were.
        if let Some(previous) = state.current_release {
            let release = engine.store().release_by_id(previous).await?;
            let old_spec = release_spec(&release)?;
            let old_config =
                config_vars::open(engine.store(), &engine.config().secret_key, state.id, Some(release.config_version))
                    .await?;
            let old_vars = with_addons(engine, state.id, old_config.vars).await?;
            let old_keys = secret_keys_of(engine, state.id, &old_config.secret_keys).await?;
            let rollback = desired(&release.image, &old_spec, &old_vars, release.config_version, &old_keys);
            match crate::kubernetes::apply(&client, &rollback).await {
                Ok(()) => log.line(Stage::Deploy, &format!("-----> Rolled back to v{}", release.version)),
                Err(err) => {
                    log.line(Stage::Deploy, &format!("-----> Rolling back to v{} failed: {err}", release.version))
                }
            }
        }
        return Err(format!("{why}; {}", still_serving(state)).into());
    }
    let image_id = fresh.image_id.clone().unwrap_or_default();
    let release = record_release(engine, state, run, &image, &image_id, spec, config_version).await?;
    let total = spec.total_replicas();
    Ok(format!(
        "-----> Deploy {} v{}: {total}/{total} replicas ready on cluster {}",
        state.name, release.version, state.runtime
    ))
}

/// What an environment may use in its namespace, when its team has a quota: memory and
/// pods, doubled for the extra pods of a rolling update.
async fn cluster_quota(engine: &Engine, state: &EnvironmentState) -> Result<Option<(i64, i64)>, crate::DeployError> {
    let quota = engine.store().quota(state.team_id).await?;
    let limited = quota != slipway_store::environments::Quota::default();
    // Add-on pods count too, at the LimitRange's default memory.
    let addons = i64::try_from(engine.store().addons_of(state.id).await?.len()).unwrap_or(0);
    Ok(limited.then_some((state.total_memory_mb * 2 + addons * 256, i64::from(state.total_replicas) * 2 + addons)))
}

/// The objects of one release of an environment on its cluster.
#[allow(clippy::too_many_arguments)]
fn cluster_manifests(
    engine: &Engine,
    state: &EnvironmentState,
    cluster: &slipway_store::clusters::ClusterRow,
    quota: Option<(i64, i64)>,
    image: &str,
    spec: &Spec,
    vars: &[(String, String)],
    secret_keys: &[String],
    config_version: i32,
    addons: &[crate::kubernetes::ClusterAddon],
) -> Vec<serde_json::Value> {
    let (secrets, config): (Vec<_>, Vec<_>) = vars.iter().cloned().partition(|(k, _)| secret_keys.contains(k));
    crate::kubernetes::manifests(&crate::kubernetes::Desired {
        service: &state.service,
        environment: &state.name,
        team: &state.team,
        image,
        spec,
        config: &config,
        secrets: &secrets,
        config_version,
        host: crate::kubernetes::host_of(state, &cluster.base_domain),
        ingress_class: &cluster.ingress_class,
        progress_deadline: engine.config().health_timeout,
        drain: engine.drain_of(spec),
        quota,
        addons,
    })
}

/// Keeps a cluster environment's objects as its current release says: anything changed
/// or deleted out of band (drift), or a new replica count from `scale`, is re-applied.
pub(crate) async fn reconcile_cluster(engine: &Engine, state: &EnvironmentState) -> Result<(), crate::DeployError> {
    let Some(release_id) = state.current_release else { return Ok(()) };
    let release = engine.store().release_by_id(release_id).await?;
    let mut spec = release_spec(&release)?;
    if let Some(primary) = workloads::primary(&spec).map(str::to_owned)
        && let Some(w) = spec.workloads.get_mut(&primary)
    {
        w.replicas = u32::try_from(state.replicas).unwrap_or(1).max(1);
    }
    let config =
        config_vars::open(engine.store(), &engine.config().secret_key, state.id, Some(release.config_version)).await?;
    let keys = secret_keys_of(engine, state.id, &config.secret_keys).await?;
    let vars = with_addons(engine, state.id, config.vars).await?;
    let (client, cluster) = engine.cluster_client(&state.runtime).await?;
    let quota = cluster_quota(engine, state).await?;
    let addons = engine.cluster_addons(state.id).await?;
    let objects = cluster_manifests(
        engine,
        state,
        &cluster,
        quota,
        &release.image,
        &spec,
        &vars,
        &keys,
        release.config_version,
        &addons,
    );
    let drift = engine.drifted(&state.runtime, &client, &objects).await;
    if !drift.is_empty() {
        let names: Vec<String> = drift.iter().map(crate::kubernetes::describe).collect();
        tracing::warn!(service = %state.service, environment = %state.name, cluster = %state.runtime,
            objects = %names.join(", "), "re-applying objects that differ from the release (drift repaired)");
        crate::kubernetes::apply(&client, &drift).await?;
    }
    Ok(())
}

/// The names of the vars that go into the Secret: secret config vars and add-on URLs.
async fn secret_keys_of(
    engine: &Engine,
    environment_id: i64,
    config_secrets: &[String],
) -> Result<Vec<String>, crate::DeployError> {
    let mut keys = config_secrets.to_vec();
    keys.extend(engine.open_addons(environment_id).await?.into_iter().map(|a| a.var.to_owned()));
    Ok(keys)
}

/// The secret var names of a config version (`None`: the newest) and the add-ons.
async fn secret_keys(
    engine: &Engine,
    environment_id: i64,
    version: Option<i32>,
) -> Result<Vec<String>, crate::DeployError> {
    let config = config_vars::open(engine.store(), &engine.config().secret_key, environment_id, version).await?;
    secret_keys_of(engine, environment_id, &config.secret_keys).await
}
