//! The deploy stage and the reconcile loop of the local runtime. A deploy starts the new
//! release's replicas beside the old ones, waits until every one answers its health
//! check, records the release, moves the route to the new replicas and only then retires
//! the old ones: a release that never gets healthy is removed and the old one keeps
//! serving. The reconcile loop keeps each environment's current release running (a
//! killed replica is replaced) and its route pointing at what runs, also after a restart.

use std::time::Duration;

use slipway_store::releases::{EnvironmentState, NewRelease};
use slipway_store::runs::RunRow;

use crate::logger::RunLog;
use crate::runtime::{Replica, ReplicaSpec, wait_healthy};
use crate::{Engine, now_ms};
use crate::{config_vars, context};

/// How often the reconcile loop looks at every live environment.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(3);

/// How long retired replicas keep serving requests already sent to them.
const DRAIN: Duration = Duration::from_millis(500);

pub fn route_key(service: &str, environment: &str) -> String {
    format!("{service}-{environment}")
}

/// The local image a run built (the run row may hold the pushed reference instead).
fn local_image(run: &RunRow) -> String {
    let short: String = run.commit_sha.chars().take(12).collect();
    format!("localhost/slipway/{}:{short}", run.service)
}

/// Deploys a built run; answers the line to log.
pub(crate) async fn deploy(engine: &Engine, run: &RunRow, log: &RunLog) -> Result<String, String> {
    let inner = &engine.inner;
    let (Some(environment_id), Some(environment)) = (run.environment_id, run.environment.clone()) else {
        return Err("the run has no environment to deploy to".to_owned());
    };
    let lock = engine.environment_lock(environment_id);
    let _guard = lock.lock().await;
    let state = inner.store.environment_state(environment_id).await.map_err(|e| e.to_string())?;
    let settings = context::read_settings(&inner.config.contexts_dir, run.id)
        .await
        .map_err(|e| format!("the build settings are missing ({e})"))?;
    let replicas = usize::try_from(state.replicas).unwrap_or(1).max(1);
    let image = local_image(run);
    // The newest config: a config change queues a deploy of the current image to apply it.
    let config = config_vars::open(&inner.store, &inner.config.secret_key, environment_id, None).await?;
    log.line("deploy", &format!("-----> Deploy {environment}: starting {replicas} replica(s) of {image}"));

    let spec = ReplicaSpec {
        service: run.service.clone(),
        environment: environment.clone(),
        run_id: run.id,
        image: image.clone(),
        port: settings.port,
        env: replica_env(settings.port, config.vars),
        node: inner.config.node.clone(),
    };
    if let Some(command) = settings.release_command.as_deref().filter(|c| !c.trim().is_empty()) {
        log.line("deploy", &format!("-----> Release command: {command}"));
        let labels = std::collections::HashMap::from([
            (crate::runtime::LABEL_SERVICE.to_owned(), run.service.clone()),
            (crate::runtime::LABEL_NODE.to_owned(), inner.config.node.clone()),
        ]);
        let code = inner.runtime.run_once(&image, command, &spec.env, labels, |line| log.line("deploy", line)).await?;
        if code != 0 {
            return Err(format!("the release command exited with status {code}; the previous release keeps serving"));
        }
    }
    let old = inner.runtime.replicas(&inner.config.node, &run.service, &environment).await?;
    let mut started: Vec<Replica> = Vec::new();
    let outcome = async {
        for _ in 0..replicas {
            started.push(inner.runtime.start_replica(&spec).await?);
        }
        for (i, replica) in started.iter().enumerate() {
            let addr = replica.addr.ok_or_else(|| format!("replica {} published no port", i + 1))?;
            let took = wait_healthy(addr, &settings.health, inner.config.health_timeout)
                .await
                .map_err(|why| format!("replica {} of {replicas} is not healthy: {why}", i + 1))?;
            log.line("deploy", &format!("replica {}/{replicas} healthy in {:.2} s", i + 1, took.as_secs_f64()));
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(why) = outcome {
        for replica in &started {
            inner.runtime.remove_replica(&replica.id).await;
        }
        return Err(format!("{why}; the previous release keeps serving"));
    }

    let release = inner
        .store
        .create_release(
            &NewRelease {
                environment_id,
                run_id: Some(run.id),
                image: &image,
                image_id: run.image_id.as_deref().unwrap_or_default(),
                commit_sha: &run.commit_sha,
                port: i32::from(settings.port),
                health: &settings.health,
                config_version: config.version,
                created_by: &run.actor,
            },
            now_ms(),
        )
        .await
        .map_err(|e| format!("recording the release: {e}"))?;
    let key = route_key(&run.service, &environment);
    inner.routes.set(&key, started.iter().filter_map(|r| r.addr).collect());
    retire(engine.clone(), old);
    Ok(format!("-----> Deploy {environment} v{}: {replicas}/{replicas} replicas healthy", release.version))
}

/// A replica's environment: the config vars, then `PORT` (config cannot override it).
fn replica_env(port: u16, vars: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut env = vars;
    env.push(("PORT".to_owned(), port.to_string()));
    env
}

/// Removes replicas after the drain period, in the background.
fn retire(engine: Engine, replicas: Vec<Replica>) {
    if replicas.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(DRAIN).await;
        for replica in replicas {
            engine.inner.runtime.remove_replica(&replica.id).await;
        }
    });
}

pub(crate) async fn reconcile_loop(engine: Engine) {
    loop {
        tokio::time::sleep(RECONCILE_EVERY).await;
        reconcile_all(&engine).await;
    }
}

pub(crate) async fn reconcile_all(engine: &Engine) {
    let environments = match engine.inner.store.live_environments().await {
        Ok(environments) => environments,
        Err(err) => {
            tracing::error!(%err, "listing live environments");
            return;
        }
    };
    for environment in environments {
        if let Err(err) = reconcile(engine, &environment).await {
            tracing::warn!(%err, service = %environment.service, environment = %environment.name, "reconciling");
        }
    }
}

/// Makes an environment's running replicas match its current release, and its route
/// match its healthy replicas. Leaves other runs' replicas alone while a deploy of this
/// environment is in flight.
async fn reconcile(engine: &Engine, environment: &EnvironmentState) -> Result<(), String> {
    let inner = &engine.inner;
    // A deploy of this environment is under way: it owns the replicas and the route.
    let lock = engine.environment_lock(environment.id);
    let Ok(_guard) = lock.try_lock() else { return Ok(()) };
    // Read again under the lock: a deploy may have just changed the current release.
    let environment = &inner.store.environment_state(environment.id).await.map_err(|e| e.to_string())?;
    let Some(release_id) = environment.current_release else { return Ok(()) };
    let release = inner.store.release_by_id(release_id).await.map_err(|e| e.to_string())?;
    let Some(run_id) = release.run_id else { return Ok(()) };
    let replicas = inner.runtime.replicas(&inner.config.node, &environment.service, &environment.name).await?;
    let key = route_key(&environment.service, &environment.name);

    let (current, others): (Vec<Replica>, Vec<Replica>) = replicas.into_iter().partition(|r| r.run_id == run_id);
    let (mut alive, dead): (Vec<Replica>, Vec<Replica>) = current.into_iter().partition(|r| r.running);
    for replica in &dead {
        inner.runtime.remove_replica(&replica.id).await;
    }
    let desired = usize::try_from(environment.replicas).unwrap_or(1).max(1);
    // Replicas of newer runs belong to a deploy in flight, unless that run has ended
    // (failed, or interrupted by a crash): then nothing will ever use them.
    let mut in_flight = Vec::new();
    for replica in others.iter().filter(|r| r.run_id > run_id) {
        let ended = match inner.store.run_by_id(replica.run_id).await {
            Ok(run) => slipway_store::runs::FINAL_STATUSES.contains(&run.status.as_str()),
            Err(slipway_store::StoreError::NotFound) => true,
            Err(err) => return Err(err.to_string()),
        };
        if ended {
            inner.runtime.remove_replica(&replica.id).await;
        } else {
            in_flight.push(replica.run_id);
        }
    }
    let deploying = !in_flight.is_empty();
    if alive.len() < desired {
        let port = u16::try_from(release.port).unwrap_or(context::DEFAULT_PORT);
        // Replacements run with the config the release was deployed with.
        let config =
            config_vars::open(&inner.store, &inner.config.secret_key, environment.id, Some(release.config_version))
                .await?;
        let spec = ReplicaSpec {
            service: environment.service.clone(),
            environment: environment.name.clone(),
            run_id,
            image: release.image.clone(),
            port,
            env: replica_env(port, config.vars),
            node: inner.config.node.clone(),
        };
        for _ in alive.len()..desired {
            let replica = inner.runtime.start_replica(&spec).await?;
            if let Some(addr) = replica.addr {
                wait_healthy(addr, &release.health, inner.config.health_timeout).await?;
            }
            tracing::info!(service = %environment.service, environment = %environment.name, "replaced a missing replica");
            alive.push(replica);
        }
    }
    // Scaled down: retire the newest extras (the route drops them first).
    let extra: Vec<Replica> = if alive.len() > desired { alive.split_off(desired) } else { Vec::new() };
    inner.routes.set(&key, alive.iter().filter_map(|r| r.addr).collect());
    retire(engine.clone(), extra);
    if !deploying {
        // Replicas of older releases (a deploy that was interrupted) serve nothing.
        for replica in others.into_iter().filter(|r| r.run_id < run_id) {
            inner.runtime.remove_replica(&replica.id).await;
        }
    }
    Ok(())
}
