//! The reconcile loop: keeps each environment's current release running (a killed
//! replica is replaced, in the background and without the environment's lock while it
//! waits for its health check) and its route pointing at what runs, also after a
//! restart; cluster environments are kept as released (drift repair).

use std::time::{Duration, Instant};

use slipway_core::template::{Spec, WEB};
use slipway_store::environments::EnvironmentState;

use crate::deploy::{release_spec, replica_spec, retire, route_key, wait_ready};
use crate::runtime::Replica;
use crate::runtimes::Runtime as _;
use crate::{Engine, config_vars};
use slipway_core::workloads;

/// How often the reconcile loop looks at every live environment.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(3);

/// Every this many reconcile ticks, old build images are collected too (a backstop for
/// the collection after each retirement).
const COLLECT_EVERY_TICKS: u32 = 200;

pub(crate) async fn reconcile_loop(engine: Engine) {
    let mut ticks = 0u32;
    loop {
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(COLLECT_EVERY_TICKS) {
            engine.collect_images().await;
        }
        // A wake-up (a scale, a watched object changing) coalesces with others.
        tokio::select! {
            () = tokio::time::sleep(RECONCILE_EVERY) => {}
            () = engine.inner.reconcile_wake.notified() => {}
        }
        reconcile_all(&engine).await;
    }
}

/// How many environments are reconciled at once: one slow cluster or engine call must not
/// hold up every other environment's repair.
const RECONCILE_AT_ONCE: usize = 4;
/// An environment whose reconcile fails is tried again after a pause that starts at a
/// tick and doubles up to this (as controller-rs's error policy backs off per object), so
/// a broken one does not cost a failing pass every tick.
const LONGEST_BACKOFF: Duration = Duration::from_secs(30);

pub(crate) async fn reconcile_all(engine: &Engine) {
    use futures_util::StreamExt;
    let environments = match engine.inner.store.live_environments().await {
        Ok(environments) => environments,
        Err(err) => {
            tracing::error!(%err, "listing live environments");
            return;
        }
    };
    let now = Instant::now();
    let due: Vec<EnvironmentState> = {
        let mut backoff = crate::locked(&engine.inner.reconcile_backoff);
        // Destroyed environments leave the map.
        backoff.retain(|id, _| environments.iter().any(|e| e.id == *id));
        environments.into_iter().filter(|e| backoff.get(&e.id).is_none_or(|(next, _)| now >= *next)).collect()
    };
    futures_util::stream::iter(due)
        .for_each_concurrent(RECONCILE_AT_ONCE, |environment| async move {
            let outcome = reconcile(engine, &environment).await;
            let mut backoff = crate::locked(&engine.inner.reconcile_backoff);
            match outcome {
                Ok(()) => {
                    backoff.remove(&environment.id);
                }
                Err(err) => {
                    let pause = backoff
                        .get(&environment.id)
                        .map_or(RECONCILE_EVERY, |(_, pause)| (*pause * 2).min(LONGEST_BACKOFF));
                    backoff.insert(environment.id, (Instant::now() + pause, pause));
                    tracing::warn!(%err, service = %environment.service, environment = %environment.name,
                        retry_in_s = pause.as_secs(), "reconciling");
                }
            }
        })
        .await;
}

/// Makes an environment's running replicas match its current release, and its route
/// match its healthy web replicas. Leaves other runs' replicas alone while a deploy of
/// this environment is in flight.
async fn reconcile(engine: &Engine, environment: &EnvironmentState) -> Result<(), String> {
    let inner = &engine.inner;
    // A deploy of this environment is under way: it owns the replicas and the route.
    let lock = engine.environment_lock(environment.id);
    let Ok(_guard) = lock.try_lock() else { return Ok(()) };
    // Read again under the lock: a deploy may have just changed the current release.
    let environment = &inner.store.environment_state(environment.id).await.map_err(|e| e.to_string())?;
    // On a cluster its controllers keep pods running and Slipway keeps the objects as
    // released; here Slipway keeps the replicas and the route.
    engine.runtime_of(&environment.runtime).reconcile(engine, environment).await
}

/// Makes an environment's local replicas and route match its current release.
pub(crate) async fn reconcile_local(engine: &Engine, environment: &EnvironmentState) -> Result<(), String> {
    let inner = &engine.inner;
    // Without a local engine there is nothing here to keep running (reported at start).
    if engine.local_engine().is_err() {
        return Ok(());
    }
    let Some(release_id) = environment.current_release else { return Ok(()) };
    let release = inner.store.release_by_id(release_id).await.map_err(|e| e.to_string())?;
    let Some(run_id) = release.run_id else { return Ok(()) };
    let mut spec = release_spec(&release)?;
    if let Some(primary) = workloads::primary(&spec).map(str::to_owned)
        && let Some(w) = spec.workloads.get_mut(&primary)
    {
        w.replicas = u32::try_from(environment.replicas).unwrap_or(1).max(1);
    }
    let replicas = inner.runtime.replicas(&inner.config.node, &environment.service, &environment.name).await?;
    let key = route_key(&environment.service, &environment.name);

    let (current, others): (Vec<Replica>, Vec<Replica>) = replicas.into_iter().partition(|r| r.run_id == run_id);
    let unconfirmed = inner.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failed = |r: &Replica| unconfirmed.get(&r.id).copied().unwrap_or(false);
    let (alive, dead): (Vec<Replica>, Vec<Replica>) = current.into_iter().partition(|r| r.running && !failed(r));
    for replica in &dead {
        inner.runtime.remove_replica(&replica.id).await;
        if failed(replica) && !engine.has_container(&replica.id).await {
            inner.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).remove(&replica.id);
        }
    }
    // Replicas of newer runs belong to a deploy in flight, unless that run has ended
    // (failed, or interrupted by a crash): then nothing will ever use them.
    let mut in_flight = Vec::new();
    for replica in others.iter().filter(|r| r.run_id > run_id) {
        let ended = match inner.store.run_by_id(replica.run_id).await {
            Ok(run) => run.status.is_final(),
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
                        &inner.store,
                        &inner.config.secret_key,
                        environment.id,
                        Some(release.config_version),
                    )
                    .await?,
                );
            }
            let vars = config.as_ref().map(|c| c.vars.as_slice()).unwrap_or_default();
            let replica_spec = replica_spec(engine, environment, run_id, &release.image, name, &spec, vars);
            for _ in mine.len()..desired {
                let replica = inner.runtime.start_replica(&replica_spec).await?;
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
        let unconfirmed = inner.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let healthy = web_alive.iter().filter(|r| !unconfirmed.contains_key(&r.id)).filter_map(|r| r.addr).collect();
        inner.routes.set(&key, healthy);
    } else {
        inner.routes.remove(&key);
    }
    retire(engine.clone(), extra);
    if !deploying {
        // Replicas of older releases (a deploy that was interrupted) serve nothing.
        for replica in others.into_iter().filter(|r| r.run_id < run_id) {
            inner.runtime.remove_replica(&replica.id).await;
        }
    }
    Ok(())
}

/// Waits (in the background, holding no lock) until a replacement replica is ready; then
/// the next reconcile routes to it. One that never gets ready is removed, and the next
/// reconcile starts another.
fn confirm_replacement(engine: Engine, environment: EnvironmentState, replica: Replica, spec: Spec) {
    engine.inner.unconfirmed.lock().unwrap_or_else(|e| e.into_inner()).insert(replica.id.clone(), false);
    tokio::spawn(async move {
        let outcome = wait_ready(&engine, &replica, &spec).await;
        match &outcome {
            Ok(_) => tracing::info!(service = %environment.service, environment = %environment.name,
                workload = %replica.workload, "replaced a missing replica"),
            Err(why) => {
                tracing::warn!(service = %environment.service, environment = %environment.name,
                    workload = %replica.workload, %why, "a replacement replica did not get ready; removing it");
                engine.inner.runtime.remove_replica(&replica.id).await;
            }
        }
        let still_there = outcome.is_err() && engine.has_container(&replica.id).await;
        let mut unconfirmed = engine.inner.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
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
