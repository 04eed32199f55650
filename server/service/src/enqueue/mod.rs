//! The one path from a request to a claimable run: the run is stored first (`preparing`,
//! so every accepted push or deploy has its run even if what follows fails), then the
//! caller readies its work (exports a commit, writes deploy settings), then the run is
//! made claimable and the workers are woken. A failure in between ends the run failed
//! with the reason, so no run is left preparing.

pub(crate) mod commit;

use std::future::Future;

use slipway_core::run::{DEPLOY_STAGES, PUSH_STAGES, RunStatus};
use slipway_core::workloads;
use slipway_engine::context::{self, BuildSettings};
use slipway_git::archive::{self, ObjectEnv};
use slipway_git::repos;
use slipway_store::environments::EnvironmentState;
use slipway_store::releases::ReleaseRow;
use slipway_store::runs::NewRun;
use slipway_store::services::ServiceRow;

use crate::clock::now_ms;
use crate::enqueue::commit::{PrepareError, export_context, prepare_build};
use crate::{Actor, AppState, Result, ServiceError};

/// Stores `run` (pinned to this replica), runs `prepare` with its id, then queues it
/// (for any replica when they share the data dir, see `Engine::runs_float`). `what` names the
/// preparation in the run's reason when it fails ("exporting the commit").
/// `prepare`'s answer is handed back with the id: it runs before the run is claimable,
/// so it can, for instance, start following the run's log without missing a line.
pub(crate) async fn enqueue<T, Fut>(
    state: &AppState,
    run: &NewRun<'_>,
    what: &str,
    prepare: impl FnOnce(i64) -> Fut,
) -> Result<(i64, T)>
where
    Fut: Future<Output = std::result::Result<T, String>>,
{
    // Pinned to this replica while it is prepared here, so a replica that dies meanwhile
    // ends it at its next start; released to every replica once queued when they share
    // the data dir.
    let node = state.engine.config().node.clone();
    let run = NewRun { status: RunStatus::initial(false), reason: "", node: Some(&node), ..run.clone() };
    let run_id = state.store.create_run(&run, now_ms()).await?;
    let ready = match prepare(run_id).await {
        Ok(ready) => ready,
        Err(err) => {
            state.store.fail_unstarted_run(run_id, &format!("{what} failed: {err}"), now_ms()).await?;
            return Err(ServiceError::internal(format!("{what} for run {run_id}: {err}")));
        }
    };
    state.store.mark_queued(run_id, state.engine.runs_float()).await?;
    state.engine.wake();
    Ok((run_id, ready))
}

/// Queues a build and deploy of `git_ref` into an environment; `None` when the ref
/// names no commit (nothing was pushed there yet).
pub(crate) async fn queue_build(
    state: &AppState,
    actor: &Actor,
    service: &ServiceRow,
    environment_id: i64,
    git_ref: &str,
    trigger: &'static str,
) -> Result<Option<i64>> {
    let settings = &state.settings;
    let repo = repos::path(&settings.repos_dir, &service.name);
    let none = ObjectEnv::default();
    let Some(commit) = archive::resolve(&settings.git, &repo, git_ref, &none)
        .await
        .map_err(|e| ServiceError::internal_from(format!("resolving {git_ref}"), e))?
    else {
        return Ok(None);
    };
    let prepared = match prepare_build(state, &repo, &commit, &none).await {
        Ok(prepared) => prepared,
        Err(PrepareError::Refused(why)) => {
            return Err(ServiceError::invalid("git_ref", format!("at {git_ref}: {why}")));
        }
        Err(PrepareError::Internal(err)) => return Err(ServiceError::internal(err)),
    };

    let full_ref = if git_ref.starts_with("refs/") { git_ref.to_owned() } else { format!("refs/heads/{git_ref}") };
    let commit_at = archive::commit_time(&state.settings.git, &repo, &commit, &none).await.ok().flatten();
    let run = NewRun {
        service_id: service.id,
        environment_id: Some(environment_id),
        trigger,
        git_ref: &full_ref,
        commit_sha: &commit,
        actor: &actor.username,
        // Where it runs is `enqueue`'s to decide (`Engine::runs_float`).
        node: None,
        status: RunStatus::initial(false),
        reason: "",
        stages: PUSH_STAGES,
        commit_at,
    };
    let (run_id, ()) = enqueue(state, &run, "exporting the commit", |run_id| {
        export_context(state, &repo, &commit, &none, run_id, prepared)
    })
    .await?;
    Ok(Some(run_id))
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
    let git_ref = format!("release v{}", release.version);
    let run = NewRun {
        service_id: service.id,
        environment_id: Some(target.id),
        trigger,
        git_ref: &git_ref,
        commit_sha: &release.commit_sha,
        actor: &actor.username,
        // Where it runs is `enqueue`'s to decide (`Engine::runs_float`).
        node: None,
        status: RunStatus::initial(false),
        reason: "",
        stages: DEPLOY_STAGES,
        // Lead time counts from the commit to its first release; a redeploy is not a change.
        commit_at: None,
    };
    let contexts = &state.engine.config().contexts_dir;
    let processes = release.spec.get().ok().flatten().map(workloads::processes_of).unwrap_or_default();
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
    let (run_id, ()) = enqueue(state, &run, "preparing the deploy", |run_id| async move {
        tokio::fs::create_dir_all(contexts).await.map_err(|e| e.to_string())?;
        context::write_settings(contexts, run_id, &settings).await.map_err(|e| e.to_string())?;
        state.store.set_run_image(run_id, &release.image, &release.image_id).await.map_err(|err| {
            // The run's reason is read by the team: the database's words stay in the log.
            tracing::error!(%err, run_id, "recording a redeploy's image");
            "the release's image could not be recorded".to_owned()
        })
    })
    .await?;
    Ok(run_id)
}
