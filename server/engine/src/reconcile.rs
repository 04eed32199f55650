//! The reconcile loop: keeps each environment's current release running (a killed
//! replica is replaced, in the background and without the environment's lock while it
//! waits for its health check) and its route pointing at what runs, also after a
//! restart; cluster environments are kept as released (drift repair).

use std::time::{Duration, Instant};

use slipway_store::environments::EnvironmentState;

use crate::Engine;
use crate::runtimes::Runtime as _;

/// The reconcile loop's state.
#[derive(Debug, Default)]
pub(crate) struct Repair {
    /// Wakes the reconcile loop before its next tick.
    pub(crate) wake: tokio::sync::Notify,
    /// Replacement replicas the reconcile loop started that have not passed their health
    /// check yet (`false`: they count as running but get no traffic) or failed it and
    /// could not be removed yet (`true`: they count as dead and are removed again).
    pub(crate) unconfirmed: std::sync::Mutex<std::collections::HashMap<String, bool>>,
    /// Replicas being drained before they stop (see `runtime::local::retire`): the
    /// reconcile loop neither counts nor removes them.
    pub(crate) retiring: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Environments whose last reconcile failed: when to try again, and the pause then.
    pub(crate) backoff: std::sync::Mutex<std::collections::HashMap<i64, (Instant, Duration)>>,
}

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
            () = engine.repair().wake.notified() => {}
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
    let environments = match engine.store().live_environments().await {
        Ok(environments) => environments,
        Err(err) => {
            tracing::error!(%err, "listing live environments");
            return;
        }
    };
    let now = Instant::now();
    let due: Vec<EnvironmentState> = {
        let mut backoff = crate::locked(&engine.repair().backoff);
        // Destroyed environments leave the map.
        backoff.retain(|id, _| environments.iter().any(|e| e.id == *id));
        environments.into_iter().filter(|e| backoff.get(&e.id).is_none_or(|(next, _)| now >= *next)).collect()
    };
    futures_util::stream::iter(due)
        .for_each_concurrent(RECONCILE_AT_ONCE, |environment| async move {
            let outcome = reconcile(engine, &environment).await;
            let mut backoff = crate::locked(&engine.repair().backoff);
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
async fn reconcile(engine: &Engine, environment: &EnvironmentState) -> Result<(), crate::DeployError> {
    // A deploy of this environment is under way: it owns the replicas and the route.
    let lock = engine.environment_lock(environment.id);
    let Ok(_guard) = lock.try_lock() else { return Ok(()) };
    // Read again under the lock: a deploy may have just changed the current release.
    let environment = &engine.store().environment_state(environment.id).await?;
    // On a cluster its controllers keep pods running and Slipway keeps the objects as
    // released; here Slipway keeps the replicas and the route.
    engine.runtime_of(&environment.runtime).reconcile(engine, environment).await
}
