//! Pipeline runs through the API: list, show, read the log, cancel, and deploy without a
//! push. Reading follows the catalog (anyone signed in); cancelling and deploying take
//! the owning team, like a push.

use slipway_api::{CreateRun, LogLine, LogPage, Page, Run};
use slipway_core::policy::Action;
use slipway_core::run::{RunStatus, Stage, StageStatus};
use slipway_store::StoreError;
use slipway_store::runs::{RunRow, StageRow};

use crate::access::require_in_team;
use crate::clock::{now_ms, rfc3339};
use crate::lookup::{find_run, find_service};
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

/// Most lines one log request answers.
pub const MAX_LOG_PAGE: i64 = 5000;

fn stage_to_api(s: StageRow) -> slipway_api::Stage {
    slipway_api::Stage {
        name: s.name.to_string(),
        status: s.status.to_string(),
        started_at: s.started_at.map(rfc3339),
        finished_at: s.finished_at.map(rfc3339),
        duration_ms: s.started_at.zip(s.finished_at).map(|(a, b)| b - a),
    }
}

pub(crate) fn to_api(run: RunRow, stages: Vec<StageRow>) -> Run {
    Run {
        id: run.id,
        service: run.service,
        environment: run.environment,
        trigger: run.trigger,
        git_ref: run.git_ref,
        commit: run.commit_sha,
        actor: run.actor,
        status: run.status.to_string(),
        reason: run.reason,
        image: run.image,
        image_id: run.image_id,
        node: run.node,
        created_at: rfc3339(run.created_at),
        started_at: run.started_at.map(rfc3339),
        finished_at: run.finished_at.map(rfc3339),
        duration_ms: run.started_at.zip(run.finished_at).map(|(a, b)| b - a),
        stages: stages.into_iter().map(stage_to_api).collect(),
    }
}

pub async fn list_runs(state: &AppState, _actor: &Actor, service: &str, params: &PageParams) -> Result<Page<Run>> {
    let service = find_service(state, service).await?;
    let page = PageRequest::parse(params)?;
    let rows = state.store.list_runs(service.id, page.before_id()?, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id.to_string());
    let mut items = Vec::with_capacity(rows.len());
    for run in rows {
        let stages = state.store.stages(run.id).await?;
        items.push(to_api(run, stages));
    }
    Ok(Page { items, next_cursor })
}

/// One environment's runs, newest first (stages left out: a list shows status).
pub async fn list_environment_runs(
    state: &AppState,
    _actor: &Actor,
    service: &str,
    environment: &str,
    params: &PageParams,
) -> Result<Page<Run>> {
    let service = find_service(state, service).await?;
    let environment = match state.store.environment_by_name(service.id, environment).await {
        Ok(env) => env,
        Err(StoreError::NotFound) => return Err(ServiceError::not_found("environment", environment)),
        Err(err) => return Err(err.into()),
    };
    let page = PageRequest::parse(params)?;
    let rows = state.store.list_environment_runs(environment.id, page.before_id()?, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id.to_string());
    Ok(Page { items: rows.into_iter().map(|run| to_api(run, Vec::new())).collect(), next_cursor })
}

/// The newest runs of the caller's teams' services (stages left out: a list shows status).
pub async fn recent_runs_of_mine(state: &AppState, actor: &Actor, limit: u32) -> Result<Vec<Run>> {
    let rows = state.store.recent_runs_of_member(actor.user_id, i64::from(limit.min(100))).await?;
    Ok(rows.into_iter().map(|run| to_api(run, Vec::new())).collect())
}

pub async fn get_run(state: &AppState, _actor: &Actor, id: i64) -> Result<Run> {
    let run = find_run(state, id).await?;
    let stages = state.store.stages(id).await?;
    Ok(to_api(run, stages))
}

pub async fn run_log(state: &AppState, actor: &Actor, id: i64, after: i64) -> Result<LogPage> {
    // Read the status first: if it is final, every line was stored before it was set.
    let run = readable_run(state, actor, id).await?;
    let rows = state.store.logs(id, after.max(0), MAX_LOG_PAGE).await?;
    let next_after = rows.last().map_or(after.max(0), |r| r.seq);
    let full_page = rows.len() as i64 == MAX_LOG_PAGE;
    let finished = run.status.is_final() && !full_page;
    let lines =
        rows.into_iter().map(|r| LogLine { seq: r.seq, at: rfc3339(r.at), stage: r.stage, line: r.line }).collect();
    Ok(LogPage { lines, next_after, status: run.status.to_string(), finished })
}

/// A run whose log `actor` may read: the owning team's members and admins only, as for
/// app logs (a build prints whatever the team's code prints).
async fn readable_run(state: &AppState, actor: &Actor, id: i64) -> Result<RunRow> {
    let run = find_run(state, id).await?;
    let service = state.store.service_by_name(&run.service).await?;
    require_in_team(state, actor, service.team_id, Action::ReadLogs).await?;
    Ok(run)
}

/// [`follow`] for a caller, once they may read the run's log.
pub async fn follow_as(state: AppState, actor: &Actor, id: i64) -> Result<tokio::sync::mpsc::Receiver<FollowEvent>> {
    readable_run(&state, actor, id).await?;
    Ok(follow(state, id))
}

pub async fn cancel_run(state: &AppState, actor: &Actor, id: i64) -> Result<Run> {
    let run = find_run(state, id).await?;
    let service = state.store.service_by_name(&run.service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    if run.status.is_final() {
        return Err(ServiceError::Conflict(format!("run {id} already ended ({})", run.status)));
    }
    state.store.request_cancel(id, now_ms()).await?;
    state.engine.cancel_local(id);
    get_run(state, actor, id).await
}

/// Builds a ref of the service's repository for an environment, without a push.
pub async fn deploy(state: &AppState, actor: &Actor, service: &str, req: CreateRun) -> Result<Run> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let environment = match state.store.environment_by_name(service.id, &req.environment).await {
        Ok(env) => env,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::Absent(format!(
                "environment {:?} of service {:?} does not exist",
                req.environment,
                service.name.as_str()
            )));
        }
        Err(err) => return Err(err.into()),
    };
    let git_ref = req.git_ref.clone().unwrap_or_else(|| environment.branch.clone());
    if git_ref.is_empty()
        || git_ref.chars().count() > 255
        || git_ref.starts_with('-')
        || git_ref.chars().any(|c| c.is_control())
    {
        return Err(ServiceError::invalid("git_ref", format!("git_ref {git_ref:?} is not a branch, tag or commit")));
    }
    let run_id = crate::enqueue::queue_build(state, actor, &service, environment.id, &git_ref, "deploy")
        .await?
        .ok_or_else(|| {
            ServiceError::invalid("git_ref", format!("{git_ref:?} names no commit in {}; push it first", service.name))
        })?;
    // A deliberate deploy ends a rollback's pin.
    state.store.set_pinned(environment.id, false).await?;
    get_run(state, actor, run_id).await
}

/// Something a follower of a run receives.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowEvent {
    Log { seq: i64, stage: String, line: String },
    Stage { name: Stage, status: StageStatus, duration_ms: Option<i64> },
    Finished { status: RunStatus, reason: String },
}

/// A run's log from the start, then live until it ends: stored lines first (nothing is
/// lost by joining late), then events as they happen, then `Finished`.
pub fn follow(state: AppState, run_id: i64) -> tokio::sync::mpsc::Receiver<FollowEvent> {
    use slipway_engine::RunEvent;
    use tokio::sync::broadcast::error::RecvError;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        // Subscribe before reading the stored lines so nothing falls between the two.
        let mut events = state.engine.hub().subscribe(run_id);
        let mut last = 0;
        let replay = |after: i64| {
            let state = state.clone();
            let tx = tx.clone();
            async move {
                let mut last = after;
                let Ok(rows) = state.store.logs(run_id, after, i64::MAX).await else { return last };
                for row in rows {
                    last = row.seq;
                    if tx.send(FollowEvent::Log { seq: row.seq, stage: row.stage, line: row.line }).await.is_err() {
                        break;
                    }
                }
                last
            }
        };
        let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(RunEvent::Log { seq, stage, line }) if seq > last => {
                        // Lines published before this follower subscribed are read from
                        // the database; they may need a moment to be flushed there.
                        let mut tries = 0;
                        while seq > last + 1 && tries < 100 {
                            last = replay(last).await;
                            if seq > last + 1 {
                                tries += 1;
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            }
                        }
                        if seq <= last {
                            continue;
                        }
                        last = seq;
                        if tx.send(FollowEvent::Log { seq, stage: stage.to_string(), line }).await.is_err() { return; }
                    }
                    Ok(RunEvent::Log { .. }) => {}
                    Ok(RunEvent::Stage { name, status, duration_ms }) => {
                        if tx.send(FollowEvent::Stage { name, status, duration_ms }).await.is_err() { return; }
                    }
                    Ok(RunEvent::Finished { .. }) | Err(RecvError::Closed) => break,
                    Err(RecvError::Lagged(_)) => last = replay(last).await,
                },
                () = tx.closed() => return,
                _ = check.tick() => {
                    // Lines stored by another replica (one that claimed the run) never
                    // reach this replica's hub: when runs float between replicas, read
                    // them from the database each tick.
                    if last == 0 || state.engine.runs_float() {
                        last = replay(last).await;
                    }
                    match state.store.run_by_id(run_id).await {
                        Ok(run) if run.status.is_final() => break,
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
        }
        replay(last).await;
        if let Ok(run) = state.store.run_by_id(run_id).await {
            let _ = tx.send(FollowEvent::Finished { status: run.status, reason: run.reason }).await;
        }
    });
    rx
}
