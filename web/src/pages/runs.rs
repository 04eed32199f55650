//! `/runs/{id}`: a run's stages as a timeline and its log, streamed live by
//! `portal.js` over the API's server-sent events; the cancel button.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_service::{AppState, ServiceError, runs, services};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::{Form, change};
use crate::session::Viewer;
use crate::view::{RunRow, optional_duration, status_class};

struct StageView {
    name: String,
    status: String,
    class: &'static str,
    duration: String,
    /// Share of the run's time, for the timeline bar (percent).
    share: u32,
}

struct LineView {
    seq: i64,
    stage: String,
    html: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    nav: Nav,
    run: RunRow,
    stages: Vec<StageView>,
    lines: Vec<LineView>,
    last_seq: i64,
    finished: bool,
    can_cancel: bool,
    truncated: bool,
    /// Whether the viewer may read the log (the owning team and admins).
    log_readable: bool,
}

/// A run id from the path; anything else names no run.
fn run_id(text: &str) -> Result<i64, PageError> {
    text.parse::<i64>().map_err(|_| PageError::Service(ServiceError::not_found("run", text)))
}

pub async fn run(State(state): State<AppState>, viewer: Viewer, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = run_id(&id)?;
    let actor = &viewer.actor;
    let run = runs::get_run(&state, actor, id).await?;
    // Everyone sees a run's stages; its log only the owning team and admins.
    let log = match runs::run_log(&state, actor, id, 0).await {
        Ok(log) => Some(log),
        Err(ServiceError::Forbidden(_)) => None,
        Err(err) => return Err(err.into()),
    };
    let log_readable = log.is_some();
    let log = log.unwrap_or_default();
    let service = services::get_service(&state, actor, &run.service).await?;
    let finished = run.status.parse::<slipway_core::run::RunStatus>().is_ok_and(|s| s.is_final());
    let can_cancel = !finished && services::may_change(&state, actor, &service).await?;
    let total: i64 = run.stages.iter().filter_map(|s| s.duration_ms).sum::<i64>().max(1);
    let stages = run
        .stages
        .iter()
        .map(|s| StageView {
            name: s.name.clone(),
            status: s.status.clone(),
            class: status_class(&s.status),
            duration: optional_duration(s.duration_ms),
            share: s.duration_ms.map_or(0, |d| ((d * 100) / total).clamp(2, 100) as u32),
        })
        .collect();
    let truncated = log.lines.len() as i64 >= runs::MAX_LOG_PAGE;
    let lines: Vec<LineView> = log
        .lines
        .iter()
        .map(|l| LineView { seq: l.seq, stage: l.stage.clone(), html: crate::ansi::to_html(&l.line) })
        .collect();
    render(RunPage {
        nav: Nav::new(&viewer, "dashboard"),
        run: RunRow::from(&run),
        stages,
        last_seq: log.next_after,
        lines,
        finished,
        can_cancel,
        truncated,
        log_readable,
    })
}

pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let id = run_id(&id)?;
    let target = format!("/runs/{id}");
    let work = async { runs::cancel_run(&state, &viewer.actor, id).await.map(|_| None) };
    change(&state, &viewer, &fields, "POST /runs/{id}/cancel", &target, target.clone(), work).await
}
