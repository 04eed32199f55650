//! The local runtime's rollout and upkeep: a deploy starts the new release's replicas of
//! every workload beside the old ones, waits until each web replica answers its health
//! check (and each other workload's replicas keep running), records the release, moves
//! the route to the new web replicas and only then retires the old ones; a release that
//! never gets healthy is removed and the old one keeps serving. The reconcile loop then
//! keeps the replicas running (a killed one is replaced in the background, without the
//! environment's lock while it waits for its health check) and the route pointing at
//! what runs.

use std::time::Duration;

use slipway_core::run::Stage;
use slipway_core::template::{Spec, WEB, cpu_nanos, memory_bytes};
use slipway_core::workloads;
use slipway_store::environments::EnvironmentState;

use crate::deploy::{Step, record_release, release_spec, route_key, still_serving, timed_out};
use crate::logger::RunLog;
use crate::runtime::{Replica, ReplicaSpec, wait_healthy};
use crate::runtimes::{DesiredRelease, Local, Runtime};
use crate::{Engine, EngineError, config_vars, context};

impl Runtime for Local {
    fn status(&self, engine: &Engine, state: &EnvironmentState) -> crate::Workload {
        let key = route_key(&state.service, &state.name);
        let ready = engine.route_table().get(&key).map_or(0, |addrs| addrs.len());
        crate::Workload { ready, desired: usize::try_from(state.replicas).unwrap_or(0), condition: None }
    }

    async fn has_image(&self, engine: &Engine, image: &str) -> bool {
        engine.has_image(image).await
    }

    fn addons_in_release(&self) -> bool {
        false
    }

    async fn apply(
        &self,
        engine: &Engine,
        desired: &DesiredRelease<'_>,
        log: &RunLog,
        deadline: tokio::time::Instant,
    ) -> Result<String, crate::DeployError> {
        deploy_local(engine, desired, log, deadline).await
    }

    async fn reconcile(&self, engine: &Engine, state: &EnvironmentState) -> Result<(), crate::DeployError> {
        reconcile_local(engine, state).await
    }

    async fn tear_down(
        &self,
        engine: &Engine,
        environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        tear_down_local(engine, environment_id, service, environment).await
    }
}

/// How long a replica without a port must keep running to count as started.
const SETTLE: Duration = Duration::from_secs(1);

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
        node: engine.config().node.clone(),
    }
}

/// Waits until a new replica is ready: a web replica answers its health check, any other
/// keeps running for [`SETTLE`].
pub(crate) async fn wait_ready(
    engine: &Engine,
    replica: &Replica,
    spec: &Spec,
) -> Result<Duration, crate::DeployError> {
    let w = &spec.workloads[&replica.workload];
    match (w.port, replica.addr) {
        (Some(_), Some(addr)) => {
            let health = w.health.as_deref().unwrap_or(context::DEFAULT_HEALTH);
            Ok(wait_healthy(addr, health, engine.config().health_timeout).await?)
        }
        (Some(_), None) => Err("it published no port".to_owned().into()),
        (None, _) => Ok(engine.local().wait_running(&replica.id, SETTLE).await.map(|()| SETTLE)?),
    }
}

/// Rolls a release out on the local engine (see the module's doc), within `deadline`.
pub(crate) async fn deploy_local(
    engine: &Engine,
    desired: &DesiredRelease<'_>,
    log: &RunLog,
    mut deadline: tokio::time::Instant,
) -> Result<String, crate::DeployError> {
    let DesiredRelease { run, state, spec, vars, config_version, release_command } = *desired;
    let environment = state.name.clone();
    let within = engine.config().deploy_timeout;
    let step = Step::default();
    let image = engine.local_image(run);
    let total: u32 = spec.total_replicas();
    engine.local_engine()?;
    log.line(Stage::Deploy, &format!("-----> Deploy {environment}: starting {total} replica(s) of {image}"));

    if let Some(command) = release_command {
        log.line(Stage::Deploy, &format!("-----> Release command: {command}"));
        let labels = std::collections::HashMap::from([
            (crate::runtime::LABEL_SERVICE.to_owned(), run.service.clone()),
            (crate::runtime::LABEL_NODE.to_owned(), engine.config().node.clone()),
        ]);
        let began = tokio::time::Instant::now();
        let code = engine
            .local()
            .run_once(&image, command, vars, labels, engine.config().release_timeout, |line| {
                log.line(Stage::Deploy, line)
            })
            .await
            .map_err(|why| format!("the release command failed: {why}; {}", still_serving(state)))?;
        if code != 0 {
            return Err(format!("the release command exited with status {code}; {}", still_serving(state)).into());
        }
        deadline += began.elapsed();
    }
    step.set("listing the running replicas");
    let mut old =
        tokio::time::timeout_at(deadline, engine.local().replicas(&engine.config().node, &run.service, &environment))
            .await
            .map_err(|_| format!("{}; {}", timed_out(within, &step), still_serving(state)))??;
    // Those draining already keep their own drain.
    let retiring = crate::locked(&engine.repair().retiring).clone();
    old.retain(|r| !retiring.contains(&r.id));
    let mut started: Vec<Replica> = Vec::new();
    let rollout = async {
        for name in spec.workloads.keys() {
            let replica = replica_spec(engine, state, run.id, &image, name, spec, vars);
            for _ in 0..spec.workloads[name].replicas {
                step.set(format!("starting replica {} of {total} ({name})", started.len() + 1));
                started.push(engine.local().start_replica(&replica).await?);
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
        Ok::<(), crate::DeployError>(())
    };
    let outcome =
        tokio::time::timeout_at(deadline, rollout).await.unwrap_or_else(|_| Err(timed_out(within, &step).into()));
    if let Err(why) = outcome {
        // Every replica this run started goes, also one whose start was cut short by the
        // deadline (found by its run label).
        let mine = engine.local().containers_of_run(&engine.config().node, &run.service, &environment, run.id).await;
        let ids: std::collections::BTreeSet<String> = started.iter().map(|r| r.id.clone()).chain(mine).collect();
        for id in ids {
            engine.local().remove_replica(&id).await;
        }
        return Err(format!("{why}; {}", still_serving(state)).into());
    }

    let web = spec.workloads.get(WEB);
    let image_id = run.image_id.clone().unwrap_or_default();
    let release = record_release(engine, state, run, &image, &image_id, spec, config_version).await?;
    let key = route_key(&run.service, &environment);
    if web.is_some() {
        let addrs = started.iter().filter(|r| r.workload == WEB).filter_map(|r| r.addr).collect();
        engine.route_table().set(&key, addrs);
    } else {
        engine.route_table().remove(&key);
    }
    retire(engine.clone(), old, engine.drain_of(spec));
    Ok(format!("-----> Deploy {environment} v{}: {total}/{total} replicas healthy", release.version))
}

/// A replica in the reconcile loop's `retiring` set, until this is dropped.
struct RetiringMark(Engine, String);

impl Drop for RetiringMark {
    fn drop(&mut self) {
        crate::locked(&self.0.repair().retiring).remove(&self.1);
    }
}

/// Stops replicas that no route names any more, in the background: each once the
/// requests it was sent are done (the router counts them) or `drain` has passed, then
/// with SIGTERM and the engine's stop timeout; then the images only they used can go.
pub(crate) fn retire(engine: Engine, replicas: Vec<Replica>, drain: Duration) {
    if replicas.is_empty() {
        return;
    }
    // Marked now, before the spawn: the reconcile loop must not count them meanwhile.
    // Each is unmarked when its stop is done, or its task dropped.
    let marks: Vec<RetiringMark> = {
        let mut retiring = crate::locked(&engine.repair().retiring);
        replicas
            .iter()
            .map(|r| {
                retiring.insert(r.id.clone());
                RetiringMark(engine.clone(), r.id.clone())
            })
            .collect()
    };
    tokio::spawn(async move {
        let stops = replicas.into_iter().zip(marks).map(|(replica, mark)| {
            let engine = engine.clone();
            async move {
                let _unmarked_when_done = mark;
                if let Some(addr) = replica.addr {
                    let left = engine.route_table().drain(addr, drain).await;
                    if left > 0 {
                        tracing::warn!(replica = %replica.id, requests = left, drain_s = drain.as_secs(),
                            "a retired replica still had requests in flight at the drain timeout; stopping it");
                    }
                }
                engine.local().remove_replica(&replica.id).await;
            }
        });
        futures_util::future::join_all(stops).await;
        engine.collect_images().await;
    });
}

/// Removes an environment's replicas, route and add-ons from the local engine.
pub(crate) async fn tear_down_local(
    engine: &Engine,
    environment_id: i64,
    service: &str,
    environment: &str,
) -> Result<(), EngineError> {
    engine.route_table().remove(&route_key(service, environment));
    for replica in engine.local().replicas(&engine.config().node, service, environment).await? {
        engine.local().remove_replica(&replica.id).await;
    }
    engine.remove_addons(environment_id, service, environment).await
}

/// Makes an environment's local replicas and route match its current release.
pub(crate) async fn reconcile_local(engine: &Engine, environment: &EnvironmentState) -> Result<(), crate::DeployError> {
    // Without a local engine there is nothing here to keep running (reported at start).
    if engine.local_engine().is_err() {
        return Ok(());
    }
    let Some(release_id) = environment.current_release else { return Ok(()) };
    let release = engine.store().release_by_id(release_id).await?;
    let Some(run_id) = release.run_id else { return Ok(()) };
    let mut spec = release_spec(&release)?;
    if let Some(primary) = workloads::primary(&spec).map(str::to_owned)
        && let Some(w) = spec.workloads.get_mut(&primary)
    {
        w.replicas = u32::try_from(environment.replicas).unwrap_or(1).max(1);
    }
    let mut replicas = engine.local().replicas(&engine.config().node, &environment.service, &environment.name).await?;
    // Replicas being drained are on their way out already.
    let retiring = crate::locked(&engine.repair().retiring).clone();
    replicas.retain(|r| !retiring.contains(&r.id));
    let key = route_key(&environment.service, &environment.name);

    let (current, others): (Vec<Replica>, Vec<Replica>) = replicas.into_iter().partition(|r| r.run_id == run_id);
    let unconfirmed = engine.repair().unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failed = |r: &Replica| unconfirmed.get(&r.id).copied().unwrap_or(false);
    let (alive, dead): (Vec<Replica>, Vec<Replica>) = current.into_iter().partition(|r| r.running && !failed(r));
    for replica in &dead {
        engine.local().remove_replica(&replica.id).await;
        if failed(replica) && !engine.has_container(&replica.id).await {
            engine.repair().unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).remove(&replica.id);
        }
    }
    // Replicas of newer runs belong to a deploy in flight, unless that run has ended
    // (failed, or interrupted by a crash): then nothing will ever use them.
    let mut in_flight = Vec::new();
    for replica in others.iter().filter(|r| r.run_id > run_id) {
        let ended = match engine.store().run_by_id(replica.run_id).await {
            Ok(run) => run.status.is_final(),
            Err(slipway_store::StoreError::NotFound) => true,
            Err(err) => return Err(err.into()),
        };
        if ended {
            engine.local().remove_replica(&replica.id).await;
        } else {
            in_flight.push(replica.run_id);
        }
    }
    let deploying = !in_flight.is_empty();

    if let Err(err) = engine.ensure_addons(environment).await {
        tracing::warn!(%err, environment = %environment.name, "keeping add-ons running");
    }
    let mut config = None;
    let mut web_alive = Vec::new();
    let mut extra = Vec::new();
    for (name, workload) in &spec.workloads {
        let mut mine: Vec<Replica> = alive.iter().filter(|r| &r.workload == name).cloned().collect();
        let desired = workload.replicas as usize;
        if mine.len() < desired {
            // Replacements run with the config the release was deployed with.
            if config.is_none() {
                config = Some(
                    config_vars::open(
                        engine.store(),
                        &engine.config().secret_key,
                        environment.id,
                        Some(release.config_version),
                    )
                    .await?,
                );
            }
            let vars = config.as_ref().map(|c| c.vars.as_slice()).unwrap_or_default();
            let replica_spec = replica_spec(engine, environment, run_id, &release.image, name, &spec, vars);
            for _ in mine.len()..desired {
                let replica = engine.local().start_replica(&replica_spec).await?;
                // Its health check runs without this environment's lock: a deploy must
                // never wait behind a replacement that is slow to get healthy.
                confirm_replacement(engine.clone(), environment.clone(), replica.clone(), spec.clone());
                mine.push(replica);
            }
        }
        // Scaled down: retire the newest extras (the route drops them first), and those
        // still waiting for their health check before any serving one.
        if mine.len() > desired {
            mine.sort_by_key(|r| unconfirmed.contains_key(&r.id));
            extra.extend(mine.split_off(desired));
        }
        if name == WEB {
            web_alive = mine;
        }
    }
    // Replicas of workloads the release no longer has.
    extra.extend(alive.iter().filter(|r| !spec.workloads.contains_key(&r.workload)).cloned());
    if spec.workloads.contains_key(WEB) {
        let unconfirmed = engine.repair().unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let healthy = web_alive.iter().filter(|r| !unconfirmed.contains_key(&r.id)).filter_map(|r| r.addr).collect();
        engine.route_table().set(&key, healthy);
    } else {
        engine.route_table().remove(&key);
    }
    retire(engine.clone(), extra, engine.drain_of(&spec));
    if !deploying {
        // Replicas of older releases (a deploy that was interrupted) serve nothing.
        for replica in others.into_iter().filter(|r| r.run_id < run_id) {
            engine.local().remove_replica(&replica.id).await;
        }
    }
    Ok(())
}

/// Waits (in the background, holding no lock) until a replacement replica is ready; then
/// the next reconcile routes to it. One that never gets ready is removed, and the next
/// reconcile starts another.
fn confirm_replacement(engine: Engine, environment: EnvironmentState, replica: Replica, spec: Spec) {
    engine.repair().unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).insert(replica.id.clone(), false);
    tokio::spawn(async move {
        let outcome = wait_ready(&engine, &replica, &spec).await;
        match &outcome {
            Ok(_) => tracing::info!(service = %environment.service, environment = %environment.name,
                workload = %replica.workload, "replaced a missing replica"),
            Err(why) => {
                tracing::warn!(service = %environment.service, environment = %environment.name,
                    workload = %replica.workload, %why, "a replacement replica did not get ready; removing it");
                engine.local().remove_replica(&replica.id).await;
            }
        }
        let still_there = outcome.is_err() && engine.has_container(&replica.id).await;
        let mut unconfirmed = engine.repair().unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
        if still_there {
            // Never routed: the next reconcile removes it again and forgets it once gone.
            unconfirmed.insert(replica.id.clone(), true);
        } else {
            unconfirmed.remove(&replica.id);
        }
        drop(unconfirmed);
        engine.reconcile_soon();
    });
}
