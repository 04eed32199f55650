//! A `git push` becoming a pipeline run. The git endpoint grants a push and hands the
//! hook a one-time secret; the `pre-receive` hook (`slipwayd hook pre-receive`) sends
//! the ref updates back here; each update to a branch an environment tracks becomes a
//! stored run whose build log streams back into the pusher's terminal. A failed run
//! rejects the push, so the branch does not move.

use std::path::Path;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use slipway_core::repo_config::RepoConfig;
use slipway_engine::Engine;
use slipway_engine::context::{self, BuildSettings};
use slipway_git::archive::{self, ObjectEnv};
use slipway_git::repos;
use slipway_store::runs::NewRun;
use tokio::sync::mpsc;

use slipway_core::run::{PUSH_STAGES, RunStatus, StageStatus};

use crate::clock::now_ms;
use crate::runs::FollowEvent;
use crate::{AppState, ServiceError};

/// How long a push grant lives: one push, however slow its build.
const GRANT_TTL: Duration = Duration::from_secs(3600);

/// The last line of a hook response: the hook exits 0 on accept, 1 on reject.
pub const ACCEPT: &str = "\u{1}slipway:accept";
pub const REJECT: &str = "\u{1}slipway:reject";

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

/// What the hook sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    pub grant: String,
    pub updates: Vec<RefUpdate>,
    /// git's object-directory variables (quarantine), so the pushed commit is readable.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

fn is_zero(sha: &str) -> bool {
    sha.chars().all(|c| c == '0')
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
                            tracing::error!(%err, service = %grant.service, "handling a push");
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
                Err(ServiceError::Internal(err)) => return Err(ServiceError::Internal(err)),
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
    let engine: &Engine = &state.engine;
    let node = engine.config().node.clone();
    let commit_at = archive::commit_time(&settings.git, &repo, &update.new, env).await.ok().flatten();
    let new_run = |status: RunStatus, reason: String| {
        let git_ref = update.name.clone();
        let commit = update.new.clone();
        let actor = grant.user.clone();
        let node = node.clone();
        async move {
            let run = NewRun {
                service_id: grant.service_id,
                environment_id: Some(environment.id),
                trigger: "push",
                git_ref: &git_ref,
                commit_sha: &commit,
                actor: &actor,
                node: Some(&node),
                status,
                reason: &reason,
                stages: PUSH_STAGES,
                commit_at,
            };
            store.create_run(&run, now_ms()).await
        }
    };

    let prepared = match prepare_build(state, &repo, &update.new, env).await {
        Ok(prepared) => prepared,
        Err(PrepareError::Refused(why)) => {
            return reject(new_run(RunStatus::Failed, why.clone()).await?, &why, tx).await;
        }
        Err(PrepareError::Internal(err)) => return Err(ServiceError::Internal(err)),
    };

    // Store the run before any work, then export the commit, then make it claimable.
    let run_id = new_run(RunStatus::initial(false), String::new()).await?;
    say(format!("-----> Run {run_id}: {} {} @ {short} -> {}", grant.service, branch, environment.name)).await;
    if let Err(err) = export_context(state, &repo, &update.new, env, run_id, prepared).await {
        store.fail_unstarted_run(run_id, &format!("exporting the commit failed: {err}"), now_ms()).await?;
        return Err(ServiceError::Internal(format!("exporting {short}: {err}")));
    }
    // Follow before the run is claimable, so not a line is missed.
    let events = crate::runs::follow(state.clone(), run_id);
    store.mark_queued(run_id).await?;
    engine.wake();
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

/// Why a commit cannot be built.
pub(crate) enum PrepareError {
    /// The commit is wrong (bad slipway.toml, no Containerfile): the pusher must fix it.
    Refused(String),
    Internal(String),
}

/// What a commit says about how to build it.
pub(crate) struct Prepared {
    context_dir: String,
    build: BuildSettings,
}

/// The most of `slipway.toml` or `catalog-info.yaml` that is read: descriptors are small,
/// and a push of a few KiB can carry gigabytes of one compressible file.
pub const MAX_DESCRIPTOR_BYTES: u64 = 1024 * 1024;

/// The most files and directories a build context may hold.
pub const MAX_CONTEXT_ENTRIES: u64 = 100_000;

/// Reads `slipway.toml` (optional) and finds the Containerfile or Dockerfile.
pub(crate) async fn prepare_build(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
) -> Result<Prepared, PrepareError> {
    let git = &state.settings.git;
    let config = match archive::read_file(git, repo, commit, "slipway.toml", MAX_DESCRIPTOR_BYTES, env).await {
        Ok(None) => RepoConfig::default(),
        Ok(Some(bytes)) => {
            RepoConfig::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| PrepareError::Refused(e.to_string()))?
        }
        Err(archive::ArchiveError::TooLarge { size, max, .. }) => {
            return Err(PrepareError::Refused(format!(
                "slipway.toml is {size} bytes; it may be at most {} KiB",
                max / 1024
            )));
        }
        Err(err) => return Err(PrepareError::Internal(format!("reading slipway.toml: {err}"))),
    };
    let context_dir = config.context().to_owned();
    let mut dockerfile = config.build.dockerfile.clone();
    if dockerfile.is_none() {
        for candidate in ["Containerfile", "Dockerfile"] {
            let path = if context_dir == "." { candidate.to_owned() } else { format!("{context_dir}/{candidate}") };
            let kind = archive::object_type(git, repo, commit, &path, env)
                .await
                .map_err(|e| PrepareError::Internal(format!("looking for a Containerfile: {e}")))?;
            if kind.as_deref() == Some("blob") {
                dockerfile = Some(candidate.to_owned());
                break;
            }
        }
    }
    let dockerfile = dockerfile.ok_or_else(|| {
        PrepareError::Refused(
            "no Containerfile or Dockerfile at the root of the repository; add one, or set [build] dockerfile in slipway.toml"
                .to_owned(),
        )
    })?;
    check_build_inputs(state, repo, commit, env, &context_dir, &dockerfile).await?;
    let build = BuildSettings {
        dockerfile,
        args: config.build.args,
        port: config.web.port,
        health: config.web.health,
        processes: config.processes,
        release_command: config.release.command,
    };
    Ok(Prepared { context_dir, build })
}

/// The gate for what the commit hands the builder (see `slipway_core::build_inputs`):
/// the context is a committed directory, the Containerfile a regular file without
/// `--mount`, and every symbolic link in the context points inside it without passing
/// through another link.
async fn check_build_inputs(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
    context_dir: &str,
    dockerfile: &str,
) -> Result<(), PrepareError> {
    use slipway_core::build_inputs::{self as gate, MAX_CONTAINERFILE_BYTES, MODE_SYMLINK};
    let git = &state.settings.git;
    let refused = |e: gate::BuildInputError| PrepareError::Refused(e.to_string());
    let internal = |e: archive::ArchiveError| PrepareError::Internal(format!("reading the build inputs: {e}"));
    if context_dir != "." {
        let entry = archive::tree_entry(git, repo, commit, context_dir, env).await.map_err(internal)?;
        gate::context_entry(context_dir, entry.map(|e| e.mode)).map_err(refused)?;
    }
    let path = if context_dir == "." { dockerfile.to_owned() } else { format!("{context_dir}/{dockerfile}") };
    gate::containerfile_name(&path).map_err(refused)?;
    let entry = archive::tree_entry(git, repo, commit, &path, env).await.map_err(internal)?;
    gate::containerfile_entry(&path, entry.as_ref().map(|e| e.mode)).map_err(refused)?;
    let text = match archive::read_file(git, repo, commit, &path, MAX_CONTAINERFILE_BYTES, env).await {
        Ok(text) => text.unwrap_or_default(),
        Err(archive::ArchiveError::TooLarge { .. }) => {
            return Err(refused(gate::BuildInputError::TooLarge { path, limit: MAX_CONTAINERFILE_BYTES }));
        }
        Err(err) => return Err(internal(err)),
    };
    gate::containerfile_text(&path, &String::from_utf8_lossy(&text)).map_err(refused)?;

    // Measured from the object headers before anything is archived or sent, counting
    // every entry's share of the archive, so neither a huge file nor millions of tiny
    // ones get through.
    let max = state.settings.max_context_bytes;
    let cost =
        archive::tree_cost(git, repo, commit, context_dir, env, MAX_CONTEXT_ENTRIES, max).await.map_err(internal)?;
    if cost.over && cost.entries > MAX_CONTEXT_ENTRIES {
        return Err(PrepareError::Refused(format!(
            "the build context {context_dir} holds more than {MAX_CONTEXT_ENTRIES} files and directories; \
             leave them out of the context (set [build] context in slipway.toml)"
        )));
    }
    if cost.over {
        return Err(PrepareError::Refused(format!(
            "the build context {context_dir} holds more than {} MiB of files; at most {} MiB is built \
             (--max-context-mb); leave large files out of the context (set [build] context in slipway.toml)",
            max / (1024 * 1024),
            max / (1024 * 1024)
        )));
    }
    let links: Vec<archive::TreeEntry> = archive::tree_entries(git, repo, commit, context_dir, env)
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|e| e.mode == MODE_SYMLINK)
        .collect();
    let objects: Vec<String> = links.iter().map(|l| l.object.clone()).collect();
    // A link target longer than PATH_MAX is no path the build could use.
    let targets = archive::small_blobs(git, repo, &objects, 4096, env).await.map_err(internal)?;
    let link_paths: std::collections::HashSet<&str> = links.iter().map(|l| l.path.as_str()).collect();
    for (link, target) in links.iter().zip(targets) {
        let target = target.map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_else(|| "/".repeat(4097));
        let shown = if context_dir == "." { link.path.clone() } else { format!("{context_dir}/{}", link.path) };
        gate::link_inside(&link.path, &target, |p| link_paths.contains(p)).map_err(|_| {
            refused(gate::BuildInputError::LinkOutside { path: shown, target: target.chars().take(200).collect() })
        })?;
    }
    Ok(())
}

/// Exports the commit's context directory for the run that will build it.
pub(crate) async fn export_context(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
    run_id: i64,
    prepared: Prepared,
) -> Result<(), String> {
    let contexts = &state.engine.config().contexts_dir;
    let result = async {
        tokio::fs::create_dir_all(contexts).await.map_err(|e| e.to_string())?;
        let tar = context::tar_path(contexts, run_id);
        archive::export_tar(&state.settings.git, repo, commit, &prepared.context_dir, env, &tar)
            .await
            .map_err(|e| e.to_string())?;
        context::write_settings(contexts, run_id, &prepared.build).await.map_err(|e| e.to_string())
    }
    .await;
    if result.is_err() {
        context::remove(contexts, run_id).await;
    }
    result
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
