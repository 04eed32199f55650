//! The deploy stage. A deploy starts the new release's replicas of every workload beside
//! the old ones, waits until each web replica answers its health check (and each other
//! workload's replicas keep running), records the release, moves the route to the new web
//! replicas and only then retires the old ones: a release that never gets healthy is
//! removed and the old one keeps serving. (The reconcile loop, `reconcile.rs`, keeps it
//! running afterwards.)

use slipway_core::run::Stage;
use std::time::Duration;

use slipway_core::template::{Spec, WEB, cpu_nanos, memory_bytes};
use slipway_store::environments::EnvironmentState;
use slipway_store::releases::{NewRelease, ReleaseRow};
use slipway_store::runs::RunRow;

use crate::logger::RunLog;
use crate::runtime::{Replica, ReplicaSpec, wait_healthy};
use crate::runtimes::{DesiredRelease, Runtime as _};
use crate::{Engine, EngineError, config_vars, context, now_ms};
use slipway_core::workloads;

/// How long retired replicas keep serving requests already sent to them.
const DRAIN: Duration = Duration::from_millis(500);

/// How long a replica without a port must keep running to count as started.
const SETTLE: Duration = Duration::from_secs(1);

pub fn route_key(service: &str, environment: &str) -> String {
    format!("{service}-{environment}")
}

/// The replica to start for one workload of a spec.
pub(crate) fn replica_spec(
    engine: &Engine,
    state: &EnvironmentState,
    run_id: i64,
    image: &str,
    name: &str,
    spec: &Spec,
    vars: &[(String, String)],
) -> ReplicaSpec {
    let w = &spec.workloads[name];
    // Template env first, then config vars (they override), then PORT (nothing overrides it).
    let mut env: Vec<(String, String)> = w.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
    env.extend(vars.iter().cloned());
    if let Some(port) = w.port {
        env.push(("PORT".to_owned(), port.to_string()));
    }
    ReplicaSpec {
        service: state.service.clone(),
        environment: state.name.clone(),
        run_id,
        image: image.to_owned(),
        workload: name.to_owned(),
        port: w.port,
        command: w.command.clone(),
        memory: w.memory.as_deref().and_then(memory_bytes),
        nano_cpus: w.cpu.as_deref().and_then(cpu_nanos),
        env,
        node: engine.inner.config.node.clone(),
    }
}

/// Waits until a new replica is ready: a web replica answers its health check, any other
/// keeps running for [`SETTLE`].
pub(crate) async fn wait_ready(engine: &Engine, replica: &Replica, spec: &Spec) -> Result<Duration, String> {
    let w = &spec.workloads[&replica.workload];
    match (w.port, replica.addr) {
        (Some(_), Some(addr)) => {
            let health = w.health.as_deref().unwrap_or(context::DEFAULT_HEALTH);
            Ok(wait_healthy(addr, health, engine.inner.config.health_timeout).await?)
        }
        (Some(_), None) => Err("it published no port".to_owned()),
        (None, _) => Ok(engine.inner.runtime.wait_running(&replica.id, SETTLE).await.map(|()| SETTLE)?),
    }
}

/// What a deploy is doing, named for the error when it runs out of time.
#[derive(Debug, Default)]
struct Step(std::sync::Mutex<String>);

impl Step {
    fn set(&self, what: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what.into();
    }

    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Why a deploy that ran out of time failed.
fn timed_out(within: Duration, step: &Step) -> String {
    format!("the deploy did not finish within {} s (--deploy-timeout) while {}", within.as_secs(), step.get())
}

/// Deploys a built run; answers the line to log. Every wait is bounded: the deploy as a
/// whole by `--deploy-timeout` (the release command by its own limit, not counted), so
/// a hung engine or replica fails the run with the step it was on, and the previous
/// release keeps serving.
pub(crate) async fn deploy(engine: &Engine, run: &RunRow, log: &RunLog) -> Result<String, String> {
    let inner = &engine.inner;
    let Some(environment_id) = run.environment_id else {
        return Err("the run has no environment to deploy to".to_owned());
    };
    let within = inner.config.deploy_timeout;
    let step = Step::default();
    step.set("waiting for another deploy of this environment to finish");
    let lock = engine.environment_lock(environment_id);
    // The holder is itself bounded (a deploy by its release command's and its own limit,
    // a reconcile by engine call timeouts), so this wait is too; it does not eat into
    // this deploy's own time.
    let holder_bound = within + inner.config.release_timeout + Duration::from_secs(120);
    let Ok(_guard) = tokio::time::timeout(holder_bound, lock.lock()).await else {
        return Err(format!("{}; the previous release, if any, keeps serving", timed_out(holder_bound, &step)));
    };
    let deadline = tokio::time::Instant::now() + within;
    let state = inner.store.environment_state(environment_id).await.map_err(|e| e.to_string())?;
    if let Some(over) = inner.store.quota_violation(state.team_id).await.map_err(|e| e.to_string())? {
        return Err(format!(
            "the team is over its quota {} (limit {}, in use {}); ask an admin to raise it, or scale down or destroy \
             an environment",
            over.quota, over.limit, over.used
        ));
    }
    let settings = context::read_settings(&inner.config.contexts_dir, run.id)
        .await
        .map_err(|e| format!("the build settings are missing ({e})"))?;
    let template_spec = workloads::parse_stored(&state.spec)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| workloads::legacy_spec(context::DEFAULT_PORT, context::DEFAULT_HEALTH));
    let primary_replicas = u32::try_from(state.replicas).unwrap_or(1).max(1);
    let spec = workloads::effective(&template_spec, &settings, primary_replicas).map_err(|e| e.to_string())?;
    // The newest config: a config change queues a deploy of the current image to apply it.
    let config = config_vars::open(&inner.store, &inner.config.secret_key, environment_id, None).await?;
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

/// Rolls a release out on the local engine (see the module's doc), within `deadline`.
pub(crate) async fn deploy_local(
    engine: &Engine,
    desired: &DesiredRelease<'_>,
    log: &RunLog,
    mut deadline: tokio::time::Instant,
) -> Result<String, String> {
    let inner = &engine.inner;
    let DesiredRelease { run, state, spec, vars, config_version, release_command } = *desired;
    let environment = state.name.clone();
    let within = inner.config.deploy_timeout;
    let step = Step::default();
    let image = engine.local_image(run);
    let total: u32 = spec.total_replicas();
    engine.local_engine()?;
    log.line(Stage::Deploy, &format!("-----> Deploy {environment}: starting {total} replica(s) of {image}"));

    if let Some(command) = release_command {
        log.line(Stage::Deploy, &format!("-----> Release command: {command}"));
        let labels = std::collections::HashMap::from([
            (crate::runtime::LABEL_SERVICE.to_owned(), run.service.clone()),
            (crate::runtime::LABEL_NODE.to_owned(), inner.config.node.clone()),
        ]);
        let began = tokio::time::Instant::now();
        let code = inner
            .runtime
            .run_once(&image, command, vars, labels, inner.config.release_timeout, |line| log.line(Stage::Deploy, line))
            .await
            .map_err(|why| format!("the release command failed: {why}; {}", still_serving(state)))?;
        if code != 0 {
            return Err(format!("the release command exited with status {code}; {}", still_serving(state)));
        }
        deadline += began.elapsed();
    }
    step.set("listing the running replicas");
    let old = tokio::time::timeout_at(deadline, inner.runtime.replicas(&inner.config.node, &run.service, &environment))
        .await
        .map_err(|_| format!("{}; {}", timed_out(within, &step), still_serving(state)))??;
    let mut started: Vec<Replica> = Vec::new();
    let rollout = async {
        for name in spec.workloads.keys() {
            let replica = replica_spec(engine, state, run.id, &image, name, spec, vars);
            for _ in 0..spec.workloads[name].replicas {
                step.set(format!("starting replica {} of {total} ({name})", started.len() + 1));
                started.push(inner.runtime.start_replica(&replica).await?);
            }
        }
        for (i, replica) in started.iter().enumerate() {
            step.set(format!("waiting for replica {} of {total} ({}) to get healthy", i + 1, replica.workload));
            let took = wait_ready(engine, replica, spec)
                .await
                .map_err(|why| format!("replica {} of {total} ({}) is not healthy: {why}", i + 1, replica.workload))?;
            log.line(
                Stage::Deploy,
                &format!("replica {}/{total} ({}) healthy in {:.2} s", i + 1, replica.workload, took.as_secs_f64()),
            );
        }
        Ok::<(), String>(())
    };
    let outcome = tokio::time::timeout_at(deadline, rollout).await.unwrap_or_else(|_| Err(timed_out(within, &step)));
    if let Err(why) = outcome {
        // Every replica this run started goes, also one whose start was cut short by the
        // deadline (found by its run label).
        let mine = inner.runtime.containers_of_run(&inner.config.node, &run.service, &environment, run.id).await;
        let ids: std::collections::BTreeSet<String> = started.iter().map(|r| r.id.clone()).chain(mine).collect();
        for id in ids {
            inner.runtime.remove_replica(&id).await;
        }
        return Err(format!("{why}; {}", still_serving(state)));
    }

    let web = spec.workloads.get(WEB);
    let image_id = run.image_id.clone().unwrap_or_default();
    let release = record_release(engine, state, run, &image, &image_id, spec, config_version).await?;
    let key = route_key(&run.service, &environment);
    if web.is_some() {
        let addrs = started.iter().filter(|r| r.workload == WEB).filter_map(|r| r.addr).collect();
        inner.routes.set(&key, addrs);
    } else {
        inner.routes.remove(&key);
    }
    retire(engine.clone(), old);
    Ok(format!("-----> Deploy {environment} v{}: {total}/{total} replicas healthy", release.version))
}

/// Deploys to the environment's cluster: applies the release's objects, waits for the
/// rollout, and on failure re-applies the previous release before failing the run.
pub(crate) async fn deploy_to_cluster(
    engine: &Engine,
    desired: &DesiredRelease<'_>,
    log: &RunLog,
) -> Result<String, String> {
    let DesiredRelease { run, state, spec, vars, config_version, release_command } = *desired;
    let inner = &engine.inner;
    // The cluster pulls from the registry, by digest: the push stage must have run.
    let fresh = inner.store.run_by_id(run.id).await.map_err(|e| e.to_string())?;
    let image = fresh.image.clone().filter(|i| i.contains("@sha256:")).ok_or_else(|| {
        format!("deploying to cluster {} needs the image in a registry: start slipwayd with --registry", state.runtime)
    })?;
    let (client, cluster) = engine.cluster_client(&state.runtime).await.map_err(|e| e.to_string())?;
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
        crate::kubernetes::apply(&client, &base).await.map_err(|e| e.to_string())?;
        log.line(Stage::Deploy, &format!("-----> Release command (a Job): {command}"));
        let job = crate::kubernetes::release_job(&state.service, &state.name, run.id, &image, command);
        crate::kubernetes::run_job(&client, &job, inner.config.release_timeout)
            .await
            .map_err(|why| format!("{why}; {}", still_serving(state)))?;
    }
    crate::kubernetes::apply(&client, &objects).await.map_err(|e| e.to_string())?;
    if let Err(why) = crate::kubernetes::wait_rollout(&client, &ns, spec, inner.config.health_timeout, log).await {
        for event in crate::kubernetes::warning_events(&client, &ns, 3).await {
            log.line(Stage::Deploy, &format!("event: {event}"));
        }
        // Auto-rollback: the previous release's objects, as they were.
        if let Some(previous) = state.current_release {
            let release = inner.store.release_by_id(previous).await.map_err(|e| e.to_string())?;
            let old_spec = release_spec(&release)?;
            let old_config =
                config_vars::open(&inner.store, &inner.config.secret_key, state.id, Some(release.config_version))
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
        return Err(format!("{why}; {}", still_serving(state)));
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
async fn cluster_quota(engine: &Engine, state: &EnvironmentState) -> Result<Option<(i64, i64)>, String> {
    let quota = engine.inner.store.quota(state.team_id).await.map_err(|e| e.to_string())?;
    let limited = quota != slipway_store::environments::Quota::default();
    // Add-on pods count too, at the LimitRange's default memory.
    let addons =
        i64::try_from(engine.inner.store.addons_of(state.id).await.map_err(|e| e.to_string())?.len()).unwrap_or(0);
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
        progress_deadline: engine.inner.config.health_timeout,
        quota,
        addons,
    })
}

/// Keeps a cluster environment's objects as its current release says: anything changed
/// or deleted out of band (drift), or a new replica count from `scale`, is re-applied.
pub(crate) async fn reconcile_cluster(engine: &Engine, state: &EnvironmentState) -> Result<(), String> {
    let inner = &engine.inner;
    let Some(release_id) = state.current_release else { return Ok(()) };
    let release = inner.store.release_by_id(release_id).await.map_err(|e| e.to_string())?;
    let mut spec = release_spec(&release)?;
    if let Some(primary) = workloads::primary(&spec).map(str::to_owned)
        && let Some(w) = spec.workloads.get_mut(&primary)
    {
        w.replicas = u32::try_from(state.replicas).unwrap_or(1).max(1);
    }
    let config =
        config_vars::open(&inner.store, &inner.config.secret_key, state.id, Some(release.config_version)).await?;
    let keys = secret_keys_of(engine, state.id, &config.secret_keys).await?;
    let vars = with_addons(engine, state.id, config.vars).await?;
    let (client, cluster) = engine.cluster_client(&state.runtime).await.map_err(|e| e.to_string())?;
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
        crate::kubernetes::apply(&client, &drift).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The names of the vars that go into the Secret: secret config vars and add-on URLs.
async fn secret_keys_of(
    engine: &Engine,
    environment_id: i64,
    config_secrets: &[String],
) -> Result<Vec<String>, String> {
    let mut keys = config_secrets.to_vec();
    keys.extend(engine.open_addons(environment_id).await?.into_iter().map(|a| a.var.to_owned()));
    Ok(keys)
}

/// The secret var names of a config version (`None`: the newest) and the add-ons.
async fn secret_keys(engine: &Engine, environment_id: i64, version: Option<i32>) -> Result<Vec<String>, String> {
    let inner = &engine.inner;
    let config = config_vars::open(&inner.store, &inner.config.secret_key, environment_id, version).await?;
    secret_keys_of(engine, environment_id, &config.secret_keys).await
}

/// The add-ons' URLs (`DATABASE_URL`, …) first, so a config var of the same name wins.
pub(crate) async fn with_addons(
    engine: &Engine,
    environment_id: i64,
    config: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
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
fn still_serving(state: &EnvironmentState) -> &'static str {
    if state.current_release.is_some() {
        "the previous release keeps serving"
    } else {
        "nothing was deployed here before, so nothing serves yet; fix it and push again"
    }
}

/// Records a deployed release (what ran, with which config and spec) and makes it current.
async fn record_release(
    engine: &Engine,
    state: &EnvironmentState,
    run: &RunRow,
    image: &str,
    image_id: &str,
    spec: &Spec,
    config_version: i32,
) -> Result<ReleaseRow, String> {
    let web = spec.workloads.get(WEB);
    let spec_json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    engine
        .inner
        .store
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
                spec: &spec_json,
                created_by: &run.actor,
            },
            now_ms(),
        )
        .await
        .map_err(|e| format!("recording the release: {e}"))
}

/// Removes replicas after the drain period, in the background; then the images only
/// they used can go.
pub(crate) fn retire(engine: Engine, replicas: Vec<Replica>) {
    if replicas.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        for replica in replicas {
            engine.inner.runtime.remove_replica(&replica.id).await;
        }
        engine.collect_images().await;
    });
}

/// The spec a release runs (releases made before templates ran one web workload).
pub(crate) fn release_spec(release: &ReleaseRow) -> Result<Spec, String> {
    Ok(workloads::parse_stored(&release.spec).map_err(|e| e.to_string())?.unwrap_or_else(|| {
        workloads::legacy_spec(u16::try_from(release.port).unwrap_or(context::DEFAULT_PORT), &release.health)
    }))
}

/// Removes every replica of an environment and its route (the environment is destroyed).
pub(crate) async fn tear_down(
    engine: &Engine,
    environment_id: i64,
    service: &str,
    environment: &str,
) -> Result<(), EngineError> {
    let inner = &engine.inner;
    let lock = engine.environment_lock(environment_id);
    let _guard = lock.lock().await;
    // A failed read must not pass for "local": a cluster's namespace would be left behind.
    let runtime = match inner.store.environment_state(environment_id).await {
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

/// Removes an environment's replicas, route and add-ons from the local engine.
pub(crate) async fn tear_down_local(
    engine: &Engine,
    environment_id: i64,
    service: &str,
    environment: &str,
) -> Result<(), EngineError> {
    let inner = &engine.inner;
    inner.routes.remove(&route_key(service, environment));
    for replica in inner.runtime.replicas(&inner.config.node, service, environment).await? {
        inner.runtime.remove_replica(&replica.id).await;
    }
    engine.remove_addons(environment_id, service, environment).await
}
