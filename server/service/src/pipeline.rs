//! A `git push` becoming a pipeline run. The git endpoint grants a push and hands the
//! hook a one-time secret; the `pre-receive` hook (`slipwayd hook pre-receive`) sends
//! the ref updates back here; each update to a branch an environment tracks becomes a
//! stored run whose build log streams back into the pusher's terminal. A failed run
//! rejects the push, so the branch does not move.

use std::time::{Duration, Instant};

use dashmap::DashMap;
use rand::RngCore;

use slipway_git::archive::{self, ObjectEnv};
use slipway_git::repos;
use slipway_store::runs::NewRun;
use tokio::sync::mpsc;

use slipway_core::run::{PUSH_STAGES, RunStatus, StageStatus};

use crate::clock::now_ms;
use crate::enqueue::commit::{PrepareError, export_context, prepare_build};
use crate::runs::FollowEvent;
use crate::{AppState, ServiceError};

/// How long a push grant lives: one push, however slow its build.
const GRANT_TTL: Duration = Duration::from_secs(3600);

pub use slipway_git::hook::{ACCEPT, HookRequest, REJECT, RefUpdate};

/// Who may complete which push.
#[derive(Debug, Clone)]
pub struct PushGrant {
    pub user: String,
    pub service_id: i64,
    pub service: String,
    expires: Instant,
}

/// Secrets handed to hooks, valid for one push on this replica.
#[derive(Debug, Default)]
pub struct PushGrants(DashMap<String, PushGrant>);

impl PushGrants {
    pub fn mint(&self, user: &str, service_id: i64, service: &str) -> String {
        self.0.retain(|_, g| g.expires > Instant::now());
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let grant = PushGrant {
            user: user.to_owned(),
            service_id,
            service: service.to_owned(),
            expires: Instant::now() + GRANT_TTL,
        };
        self.0.insert(secret.clone(), grant);
        secret
    }

    /// Takes a grant (one hook call per push).
    pub fn take(&self, secret: &str) -> Option<PushGrant> {
        self.0.remove(secret).map(|(_, g)| g).filter(|g| g.expires > Instant::now())
    }
}

fn is_zero(sha: &str) -> bool {
    sha.chars().all(|c| c == '0')
}

/// The pipeline as the git hook bridge's [`slipway_git::hook::OnPush`].
#[derive(Debug, Clone)]
pub struct Pipeline(pub AppState);

impl slipway_git::hook::OnPush for Pipeline {
    fn on_push(&self, request: HookRequest) -> mpsc::Receiver<String> {
        receive_push(self.0.clone(), request)
    }
}

/// Handles a hook call: answers the lines to show the pusher, ending with [`ACCEPT`]
/// or [`REJECT`].
pub fn receive_push(state: AppState, request: HookRequest) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        let accepted = match state.push_grants.take(&request.grant) {
            None => {
                let _ =
                    tx.send("!     push refused: this push's grant is unknown or expired; push again".to_owned()).await;
                false
            }
            Some(grant) => {
                let repo = repos::path(&state.settings.repos_dir, &grant.service);
                let env = match ObjectEnv::confined_to(&request.env, &repo) {
                    Ok(env) => env,
                    Err(why) => {
                        tracing::warn!(%why, service = %grant.service, "a hook sent object directories outside its repository");
                        let _ = tx.send(format!("!     push refused: {why}")).await;
                        let _ = tx.send(REJECT.to_owned()).await;
                        return;
                    }
                };
                let mut all_ok = true;
                for update in &request.updates {
                    let ok = match receive_update(&state, &grant, update, &env, &tx).await {
                        Ok(ok) => ok,
                        Err(err) => {
                            tracing::error!(err = %crate::error::chain(&err), service = %grant.service, "handling a push");
                            let _ = tx
                                .send("!     the server failed to handle this push; it has been logged".to_owned())
                                .await;
                            false
                        }
                    };
                    audit_push(&state, &grant, update, ok).await;
                    all_ok &= ok;
                }
                all_ok
            }
        };
        let _ = tx.send(if accepted { ACCEPT } else { REJECT }.to_owned()).await;
    });
    rx
}

/// One ref update. Answers whether it may go ahead.
async fn receive_update(
    state: &AppState,
    grant: &PushGrant,
    update: &RefUpdate,
    env: &ObjectEnv,
    tx: &mpsc::Sender<String>,
) -> Result<bool, ServiceError> {
    let say = |line: String| async move {
        let _ = tx.send(line).await;
    };
    let Some(branch) = update.name.strip_prefix("refs/heads/") else {
        return Ok(true); // tags and other refs are stored, nothing runs
    };
    let store = &state.store;
    if is_zero(&update.new) {
        say(format!("-----> Deleting branch {branch}")).await;
        // A deleted branch takes its preview with it.
        if let Some(env) = store.environment_for_branch(grant.service_id, branch).await? {
            let env = store.environment_state(env.id).await?;
            if env.preview {
                crate::environments::destroy(state, &env).await?;
                say(format!("-----> Destroyed preview {}", env.name)).await;
            }
        }
        return Ok(true);
    }
    let short: String = update.new.chars().take(12).collect();
    // The catalog follows the main branch, as Backstage follows the default branch.
    if branch == crate::services::DEFAULT_BRANCH {
        for line in crate::catalog::sync_from_push(state, &grant.service, &update.new, env).await {
            say(line).await;
        }
    }
    let environment = match store.environment_for_branch(grant.service_id, branch).await? {
        Some(environment) => environment,
        None => {
            let service = store.service_by_name(&grant.service).await?;
            let Some(template) = service.catalog.preview_template.clone().filter(|t| !t.is_empty()) else {
                let reason = format!("no environment tracks branch {branch}; nothing deploys");
                let id = record_skipped(state, grant, update, None, &reason).await?;
                say(format!(
                    "-----> Branch {branch} is not tracked by any environment: push accepted, nothing deploys (run {id})"
                ))
                .await;
                return Ok(true);
            };
            // A push to a new branch of a service with a preview template gets its own environment.
            match crate::environments::create_preview(state, &grant.user, &service, &template, branch).await {
                Ok(env) => {
                    say(format!(
                        "-----> Created preview {} from template {}@{}",
                        env.name, env.template, env.template_version
                    ))
                    .await;
                    store.environment_by_name(grant.service_id, &env.name).await?
                }
                Err(err @ ServiceError::Internal { .. }) => return Err(err),
                Err(err) => {
                    let reason = format!("no preview for branch {branch}: {err}");
                    let id = record_skipped(state, grant, update, None, &reason).await?;
                    say(format!("-----> Push accepted, nothing deploys (run {id}): {reason}")).await;
                    return Ok(true);
                }
            }
        }
    };

    if store.environment_state(environment.id).await?.pinned {
        let reason = format!("{} is pinned by a rollback; nothing deploys", environment.name);
        let id = record_skipped(state, grant, update, Some(environment.id), &reason).await?;
        say(format!(
            "-----> {} is pinned by a rollback: push accepted, nothing deploys (run {id}). \
             To deploy it and unpin: slipway deploy {} {}",
            environment.name, grant.service, environment.name
        ))
        .await;
        return Ok(true);
    }
    let settings = &state.settings;
    let repo = repos::path(&settings.repos_dir, &grant.service);
    let commit_at = archive::commit_time(&settings.git, &repo, &update.new, env).await.ok().flatten();
    let git_ref = update.name.clone();
    let run = NewRun {
        service_id: grant.service_id,
        environment_id: Some(environment.id),
        trigger: "push",
        git_ref: &git_ref,
        commit_sha: &update.new,
        actor: &grant.user,
        // Where it runs is `enqueue`'s to decide (`Engine::runs_float`).
        node: None,
        status: RunStatus::Failed,
        reason: "",
        stages: PUSH_STAGES,
        commit_at,
    };

    let prepared = match prepare_build(state, &repo, &update.new, env).await {
        Ok(prepared) => prepared,
        Err(PrepareError::Refused(why)) => {
            // Refused commits get their run too, failed with the reason.
            let node = state.engine.config().node.clone();
            let refused = NewRun { status: RunStatus::Failed, reason: &why, node: Some(&node), ..run.clone() };
            return reject(store.create_run(&refused, now_ms()).await?, &why, tx).await;
        }
        Err(PrepareError::Internal(err)) => return Err(ServiceError::internal(err)),
    };

    // Store the run before any work, then export the commit, then make it claimable.
    let (run_id, events) = crate::enqueue::enqueue(state, &run, "exporting the commit", |run_id| async move {
        say(format!("-----> Run {run_id}: {} {} @ {short} -> {}", grant.service, branch, environment.name)).await;
        export_context(state, &repo, &update.new, env, run_id, prepared).await?;
        // Follow before the run is claimable, so not a line is missed.
        Ok(crate::runs::follow(state.clone(), run_id))
    })
    .await?;
    follow_run(state, run_id, events, tx).await
}

/// Records an accepted push that runs nothing, so every push has its run.
async fn record_skipped(
    state: &AppState,
    grant: &PushGrant,
    update: &RefUpdate,
    environment_id: Option<i64>,
    reason: &str,
) -> Result<i64, ServiceError> {
    let run = NewRun {
        service_id: grant.service_id,
        environment_id,
        trigger: "push",
        git_ref: &update.name,
        commit_sha: &update.new,
        actor: &grant.user,
        node: None,
        status: RunStatus::Skipped,
        reason,
        stages: PUSH_STAGES,
        commit_at: None,
    };
    Ok(state.store.create_run(&run, now_ms()).await?)
}

/// Records a ref update in the audit log, like every other change.
async fn audit_push(state: &AppState, grant: &PushGrant, update: &RefUpdate, accepted: bool) {
    let target = format!("/git/{}.git {} {}", grant.service, update.name, update.new.get(..12).unwrap_or(&update.new));
    let entry = slipway_store::audit::NewAuditEntry {
        at: now_ms(),
        actor: &grant.user,
        action: "git push",
        target: &target,
        outcome: if accepted { "success" } else { "failed" },
        status: if accepted { 200 } else { 409 },
    };
    if let Err(err) = state.store.append_audit(&entry).await {
        tracing::error!(%err, "writing the audit log");
    }
}

async fn reject(run_id: i64, why: &str, tx: &mpsc::Sender<String>) -> Result<bool, ServiceError> {
    let _ = tx.send(format!("!     Push rejected (run {run_id}): {why}")).await;
    Ok(false)
}

/// Relays a run's log (stored lines, then live, see `runs::follow`) to the pusher until
/// it ends, then prints the stage timings.
/// Answers whether the run succeeded.
async fn follow_run(
    state: &AppState,
    run_id: i64,
    mut events: mpsc::Receiver<FollowEvent>,
    tx: &mpsc::Sender<String>,
) -> Result<bool, ServiceError> {
    let started = Instant::now();
    while let Some(event) = events.recv().await {
        match event {
            FollowEvent::Log { line, .. } => {
                let _ = tx.send(format_log_line(&line)).await;
            }
            FollowEvent::Stage { .. } => {}
            FollowEvent::Finished { .. } => break,
        }
    }
    let run = state.store.run_by_id(run_id).await?;
    let stages = state.store.stages(run_id).await?;
    let timings: Vec<String> = stages
        .iter()
        .map(|s| match (s.status, s.started_at, s.finished_at) {
            (StageStatus::Skipped, _, _) => format!("{} skipped", s.name),
            (_, Some(a), Some(b)) => format!("{} {:.2} s", s.name, (b - a) as f64 / 1000.0),
            (status, _, _) => format!("{} {status}", s.name),
        })
        .collect();
    let total = started.elapsed().as_secs_f64();
    if run.status == RunStatus::Succeeded {
        let _ = tx.send(format!("-----> Run {run_id} succeeded: {}", timings.join(", "))).await;
        if let Some(environment_id) = run.environment_id
            && let Ok(env) = state.store.environment_state(environment_id).await
        {
            let url = crate::environments::url_of(state, &env).await;
            let _ = tx.send(format!("-----> {url} is live (push to live: {total:.2} s)")).await;
        }
        Ok(true)
    } else {
        let _ = tx.send(format!("!     Run {run_id} {}: {}", run.status, run.reason)).await;
        let _ = tx
            .send(format!(
                "!     {} (total {total:.2} s); the push is rejected and the branch is unchanged",
                timings.join(", ")
            ))
            .await;
        Ok(false)
    }
}

/// Heroku's layout: headings start with `----->`, everything else is indented under them.
pub fn format_log_line(line: &str) -> String {
    if line.starts_with("----->") || line.starts_with('!') { line.to_owned() } else { format!("       {line}") }
}
