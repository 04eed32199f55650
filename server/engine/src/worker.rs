//! Workers: claim a queued run (with a lease), run its stages in order, renew the lease
//! while they work, and end the run exactly once. A reaper ends runs whose worker
//! vanished (its lease expired) on any replica.

use std::time::{Duration, Instant};

use slipway_core::run::{RunStatus, Stage, StageStatus};
use slipway_store::runs::{RunRow, StageRow};
use tokio_util::sync::CancellationToken;

use crate::build::{BuildError, BuildRequest, PushRequest};
use crate::context;
use crate::hub::RunEvent;
use crate::logger::RunLog;
use crate::{Engine, now_ms};

/// The workers' shared state.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    /// Wakes the workers when a run is queued.
    pub(crate) wake: tokio::sync::Notify,
    /// The runs executing here, by id: cancelling one stops its run.
    pub(crate) cancels: std::sync::Mutex<std::collections::HashMap<i64, tokio_util::sync::CancellationToken>>,
    /// Cancelled when this replica stops: workers claim no more runs (see [`Engine::drain`]).
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// Cancelled when a stopping replica's grace ran out with runs still executing that
    /// another replica can run: they stop and go back to the queue.
    pub(crate) hand_back: tokio_util::sync::CancellationToken,
}

/// How a stage ended.
enum StageOutcome {
    Succeeded,
    Skipped(String),
    Failed(String),
}

pub(crate) async fn run_worker(engine: Engine, n: usize) {
    loop {
        if engine.queue().stopping.is_cancelled() {
            // This replica is stopping (`Engine::drain`): claim nothing more, and stay
            // (returning would have the supervisor start the loop again).
            std::future::pending::<()>().await;
        }
        // Register interest before claiming, so a wake between the two is not missed.
        let woken = engine.queue().wake.notified();
        let now = now_ms();
        match engine.store().claim_run(&engine.config().node, now + engine.config().lease.as_millis() as i64, now).await
        {
            Ok(Some(run_id)) => {
                tracing::debug!(worker = n, run_id, "claimed run");
                // Registered as executing here from the claim on, so that a shutdown's
                // drain (`Engine::drain`) sees it however early it comes.
                let cancel = CancellationToken::new();
                crate::locked(&engine.queue().cancels).insert(run_id, cancel.clone());
                // In a task of its own, so that a panic in a stage ends the run as failed
                // here instead of leaving it running (its lease renewer stops with it).
                let running = engine.clone();
                if let Err(err) = tokio::spawn(async move { execute(&running, run_id, cancel).await }).await {
                    tracing::error!(%err, run_id, "a run's execution panicked");
                    abandon(&engine, run_id).await;
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(%err, "claiming a run"),
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
            () = engine.queue().stopping.cancelled() => {}
        }
    }
}

/// Ends a run whose execution panicked: failed, with the reason a user can act on.
async fn abandon(engine: &Engine, run_id: i64) {
    if let Ok(mut cancels) = engine.queue().cancels.lock() {
        cancels.remove(&run_id);
    }
    let reason = "internal error: the run stopped unexpectedly; push again or ask an admin to look at the server's log";
    if let Err(err) =
        engine.store().finish_run(run_id, &engine.config().node, RunStatus::Failed, reason, now_ms()).await
    {
        tracing::error!(%err, run_id, "storing the end of a run");
    }
    context::remove(&engine.config().contexts_dir, run_id).await;
    engine.hub().publish(run_id, RunEvent::Finished { status: RunStatus::Failed, reason: reason.to_owned() });
}

/// How often one run may be taken over by another replica.
const MAX_TAKEOVERS: i32 = 2;

pub(crate) async fn reap_expired_leases(engine: Engine) {
    loop {
        tokio::time::sleep(engine.config().lease).await;
        take_over_expired_runs(&engine).await;
        match engine.store().interrupt_orphaned_runs("-", now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "ended runs whose worker stopped renewing its lease"),
            Err(err) => tracing::error!(%err, "reaping expired leases"),
        }
    }
}

/// Runs whose replica stopped renewing their lease go back to the queue when this
/// replica can run them too (their build context is in the data dir it shares); the rest
/// are ended as interrupted by the caller.
async fn take_over_expired_runs(engine: &Engine) {
    let now = now_ms();
    let Ok(expired) = engine.store().expired_runs(now).await else { return };
    for (run_id, attempts) in expired {
        let has_context = tokio::fs::try_exists(context::settings_path(&engine.config().contexts_dir, run_id)).await;
        if attempts >= MAX_TAKEOVERS || !has_context.unwrap_or(false) {
            continue;
        }
        match engine.store().requeue_expired_run(run_id, now, MAX_TAKEOVERS).await {
            Ok(true) => {
                tracing::warn!(run_id, node = %engine.config().node, "taking over a run whose replica stopped");
                let seq = engine.store().last_log_seq(run_id).await.unwrap_or(0) + 1;
                let line = format!(
                    "-----> The replica running this stopped; {} runs it again from the start",
                    engine.config().node
                );
                let row = slipway_store::runs::LogRow { seq, at: now, stage: Stage::Build.as_str().to_owned(), line };
                let _ = engine.store().append_logs(run_id, &[row]).await;
                engine.wake();
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(%err, run_id, "taking over a run"),
        }
    }
}

async fn execute(engine: &Engine, run_id: i64, cancel: CancellationToken) {
    let (run, stages) = match load(engine, run_id).await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(%err, run_id, "loading a claimed run");
            let _ = engine
                .store()
                .finish_run(run_id, &engine.config().node, RunStatus::Failed, "internal error", now_ms())
                .await;
            crate::locked(&engine.queue().cancels).remove(&run_id);
            return;
        }
    };
    // Aborted when dropped: also when a stage panics, so the lease can expire.
    let renewer =
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(renew_lease(engine.clone(), run_id, cancel.clone())));
    let stored = engine.store().last_log_seq(run_id).await.unwrap_or(0);
    let masker = match run.environment_id {
        Some(id) => engine.masker(id).await,
        None => Default::default(),
    };
    let (log, writer) = RunLog::open(engine, engine.store().clone(), run_id, stored, masker);

    let mut status = RunStatus::Succeeded;
    let mut reason = String::new();
    // Set when a stage was cut short to hand the run to another replica; a run whose
    // stages all ended first is finished here as usual.
    let mut handed_back = false;
    for stage in &stages {
        let started = Instant::now();
        let _ = engine.store().start_stage(run_id, stage.position, now_ms()).await;
        log.hub()
            .publish(run_id, RunEvent::Stage { name: stage.name, status: StageStatus::Running, duration_ms: None });
        let outcome = tokio::select! {
            outcome = run_stage(engine, &run, stage, &log) => outcome,
            () = cancel.cancelled() => StageOutcome::Failed("cancelled".to_owned()),
        };
        let (stage_status, failure) = match outcome {
            StageOutcome::Succeeded => (StageStatus::Succeeded, None),
            StageOutcome::Skipped(why) => {
                log.line(stage.name, &why);
                (StageStatus::Skipped, None)
            }
            StageOutcome::Failed(why) => (StageStatus::Failed, Some(why)),
        };
        if handing_back(engine, &cancel) {
            handed_back = true;
            // This replica is stopping and the run goes to another: its stages start
            // again there, so this one's end is not recorded.
            log.line(
                stage.name,
                &format!("-----> {} is stopping; another replica runs this again from the start", engine.config().node),
            );
            break;
        }
        let _ = engine.store().finish_stage(run_id, stage.position, stage_status, now_ms()).await;
        let duration_ms = Some(started.elapsed().as_millis() as i64);
        log.hub().publish(run_id, RunEvent::Stage { name: stage.name, status: stage_status, duration_ms });
        if let Some(why) = failure {
            if cancel.is_cancelled() {
                status = RunStatus::Cancelled;
                reason = "cancelled while running".to_owned();
            } else {
                status = RunStatus::Failed;
                reason = format!("{} failed: {why}", stage.name);
                log.line(stage.name, &format!("error: {why}"));
            }
            break;
        }
    }

    // Every line is stored before the run is reported finished, so a watcher that
    // re-reads the log after `Finished` sees all of it.
    drop(log);
    writer.close().await;
    renewer.abort();
    if handed_back {
        // After every line is stored, so the replica that takes it over appends after them.
        match engine.store().hand_back_run(run_id, &engine.config().node).await {
            Ok(true) => {
                tracing::warn!(run_id, "stopping: handed a running run back to the queue for another replica");
            }
            Ok(false) => tracing::warn!(run_id, "the run was ended or handed on elsewhere before it was handed back"),
            Err(err) => tracing::error!(%err, run_id, "handing a run back"),
        }
        crate::locked(&engine.queue().cancels).remove(&run_id);
        return;
    }
    match engine.store().finish_run(run_id, &engine.config().node, status, &reason, now_ms()).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(run_id, "the run was ended or handed on elsewhere before it finished here"),
        Err(err) => tracing::error!(%err, run_id, "storing the end of a run"),
    }
    let now = engine.store().run_by_id(run_id).await.map(|r| (r.status, r.reason)).unwrap_or((status, reason));
    // A run handed back to the queue (this replica is stopping) or taken over (its lease
    // ran out) is another replica's now: its build context stays for it.
    if now.0.is_final() {
        context::remove(&engine.config().contexts_dir, run_id).await;
        engine.hub().publish(run_id, RunEvent::Finished { status: now.0, reason: now.1 });
    }
    // Last, so that `Engine::drain` waits for the end to be stored.
    crate::locked(&engine.queue().cancels).remove(&run_id);
}

/// Whether this execution was stopped to hand its run to another replica (the replica is
/// stopping and its grace ran out, see `Engine::drain`), rather than cancelled by a user.
fn handing_back(engine: &Engine, cancel: &CancellationToken) -> bool {
    cancel.is_cancelled() && engine.queue().hand_back.is_cancelled()
}

async fn load(engine: &Engine, run_id: i64) -> Result<(RunRow, Vec<StageRow>), slipway_store::StoreError> {
    let run = engine.store().run_by_id(run_id).await?;
    let stages = engine.store().stages(run_id).await?;
    Ok((run, stages))
}

async fn renew_lease(engine: Engine, run_id: i64, cancel: CancellationToken) {
    loop {
        tokio::time::sleep(engine.config().lease / 3).await;
        match engine
            .store()
            .renew_lease(run_id, &engine.config().node, now_ms() + engine.config().lease.as_millis() as i64)
            .await
        {
            Ok(false) => {}
            Ok(true) => {
                cancel.cancel();
                return;
            }
            Err(slipway_store::StoreError::NotFound) => {
                tracing::warn!(run_id, "lost the lease of a running run; stopping it");
                cancel.cancel();
                return;
            }
            Err(err) => tracing::warn!(%err, run_id, "renewing a lease"),
        }
    }
}

async fn run_stage(engine: &Engine, run: &RunRow, stage: &StageRow, log: &RunLog) -> StageOutcome {
    match stage.name {
        Stage::Build => build(engine, run, log).await,
        Stage::Push => push(engine, run, log).await,
        Stage::Deploy => match crate::deploy::deploy(engine, run, log).await {
            Ok(message) => {
                log.line(Stage::Deploy, &message);
                StageOutcome::Succeeded
            }
            Err(why) => StageOutcome::Failed(why.to_string()),
        },
    }
}

/// How often a build is tried when the engine loses a layer under it.
const BUILD_TRIES: u64 = 3;

/// Whether a build failed because an image was removed under the engine's cache lookup.
fn lost_layer(why: &str) -> bool {
    // Only the engine's own words: a failing step's error quotes the step (`building at
    // STEP "RUN … layer not known"`), and a build must not earn retries by naming them.
    !why.contains("building at STEP") && (why.contains("layer not known") || why.contains("image not known"))
}

async fn build(engine: &Engine, run: &RunRow, log: &RunLog) -> StageOutcome {
    if let Err(why) = engine.local_engine() {
        return StageOutcome::Failed(why.to_string());
    }
    let dir = &engine.config().contexts_dir;
    let settings = match context::read_settings(dir, run.id).await {
        Ok(settings) => settings,
        Err(err) => return StageOutcome::Failed(format!("the build context is missing ({err})")),
    };
    let short: String = run.commit_sha.chars().take(12).collect();
    let request = BuildRequest {
        context_tar: context::tar_path(dir, run.id),
        dockerfile: settings.dockerfile.clone(),
        args: settings.args.clone().into_iter().collect(),
        tag: engine.build_tag(&run.service, &run.commit_sha),
    };
    log.line(Stage::Build, &format!("-----> Build ({}) of {} at {short} ...", settings.dockerfile, run.service));
    let deadline = tokio::time::Instant::now() + engine.config().build_timeout;
    let mut tries = 0;
    let result = loop {
        tries += 1;
        let attempt = async {
            // Image collection here waits while builds run (removing images under a
            // build's cache lookup breaks it).
            let _building = engine.images().lock.read().await;
            engine.builder().build(&request, log).await
        };
        let result = tokio::time::timeout_at(deadline, attempt).await;
        // Podman's (buildah 1.28's) cache lookup reads every image on the engine and fails
        // when another process removes one meanwhile: another installation's or replica's
        // image collection, `podman image prune`. The build itself was never wrong, and
        // the removal is over in a moment, so it runs again.
        match &result {
            Ok(Err(BuildError::Failed(why))) if tries < BUILD_TRIES && lost_layer(why) => {
                log.line(
                    Stage::Build,
                    "-----> The engine lost a cached layer while building (another process removed an image); \
                     building again",
                );
                tokio::time::sleep(Duration::from_millis(300 * tries)).await;
            }
            _ => break result,
        }
    };
    match result {
        Err(_) => {
            StageOutcome::Failed(format!("the build took longer than {} s", engine.config().build_timeout.as_secs()))
        }
        Ok(Err(err)) => StageOutcome::Failed(err.to_string()),
        Ok(Ok(image)) => {
            if let Err(err) = engine.store().set_run_image(run.id, &image.tag, &image.id).await {
                return StageOutcome::Failed(format!("recording the image: {err}"));
            }
            let id = image.id.trim_start_matches("sha256:");
            log.line(Stage::Build, &format!("-----> Built {} ({})", image.tag, id.get(..12).unwrap_or(id)));
            StageOutcome::Succeeded
        }
    }
}

async fn push(engine: &Engine, run: &RunRow, log: &RunLog) -> StageOutcome {
    let Some(registry) = &engine.config().registry else {
        return StageOutcome::Skipped("no registry configured (--registry); the image stays on this engine".to_owned());
    };
    // The run row was loaded before the build recorded its image: read it again.
    let local = match engine.store().run_by_id(run.id).await {
        Ok(fresh) => match fresh.image {
            Some(image) => image,
            None => return StageOutcome::Failed("no image was built".to_owned()),
        },
        Err(err) => return StageOutcome::Failed(format!("loading the run: {err}")),
    };
    let tag: String = run.commit_sha.chars().take(12).collect();
    let request = PushRequest {
        local: local.clone(),
        repository: format!("{}/{}", registry.location.trim_end_matches('/'), run.service),
        tag: tag.clone(),
        credentials: registry.credentials.clone(),
    };
    log.line(Stage::Push, &format!("-----> Push {}:{tag} ...", request.repository));
    match tokio::time::timeout(engine.config().build_timeout, engine.builder().push(&request, log)).await {
        Err(_) => {
            StageOutcome::Failed(format!("the push took longer than {} s", engine.config().build_timeout.as_secs()))
        }
        Ok(Err(err)) => StageOutcome::Failed(err.to_string()),
        Ok(Ok(digest)) => {
            let pushed = format!("{}:{tag}@{digest}", request.repository);
            let id = match engine.store().run_by_id(run.id).await {
                Ok(fresh) => fresh.image_id.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if let Err(err) = engine.store().set_run_image(run.id, &pushed, &id).await {
                return StageOutcome::Failed(format!("recording the pushed image: {err}"));
            }
            log.line(Stage::Push, &format!("-----> Pushed {pushed}"));
            StageOutcome::Succeeded
        }
    }
}
