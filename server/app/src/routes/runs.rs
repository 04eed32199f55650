//! Pipeline runs: `/api/v1/services/{service}/runs` and `/api/v1/runs/{id}` with its log,
//! live events (server-sent events) and cancel.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use slipway_api::{CreateRun, LogPage, Page, Problem, Run};
use slipway_service::pagination::PageParams;
use slipway_service::runs::{self, FollowEvent};
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError};

#[utoipa::path(get, path = "/api/v1/services/{service}/runs", tag = "runs", security(("bearer" = [])),
    params(("service" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Run>), (status = 404, body = Problem)))]
pub async fn list_runs(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Run>>, ServiceError> {
    runs::list_runs(&state, &actor, &service, &page).await.map(ApiJson)
}

/// Builds and runs the pipeline for an environment without a push (`slipway deploy`).
#[utoipa::path(post, path = "/api/v1/services/{service}/runs", tag = "runs", security(("bearer" = [])),
    params(("service" = String, Path)), request_body = CreateRun,
    responses((status = 201, body = Run), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn create_run(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiJson(req): ApiJson<CreateRun>,
) -> Result<(StatusCode, ApiJson<Run>), ServiceError> {
    runs::deploy(&state, &actor, &service, req).await.map(|r| (StatusCode::CREATED, ApiJson(r)))
}

#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = Run), (status = 404, body = Problem)))]
pub async fn get_run(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Run>, ServiceError> {
    runs::get_run(&state, &actor, id).await.map(ApiJson)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub after: Option<i64>,
}

/// Log lines after a sequence number (all of them by default); the owning team and
/// admins only.
#[utoipa::path(get, path = "/api/v1/runs/{id}/log", tag = "runs", security(("bearer" = [])),
    params(("id" = i64, Path), ("after" = Option<i64>, Query)),
    responses((status = 200, body = LogPage), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn run_log(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<ApiJson<LogPage>, ServiceError> {
    runs::run_log(&state, &actor, id, query.after.unwrap_or(0)).await.map(ApiJson)
}

/// The run's log and stage changes as server-sent events (`log`, `stage`, `finished`),
/// from the first line, live until the run ends; the owning team and admins only.
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn run_events(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<i64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ServiceError> {
    let rx = runs::follow_as(state, &actor, id).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let name = match &event {
            FollowEvent::Log { .. } => "log",
            FollowEvent::Stage { .. } => "stage",
            FollowEvent::Finished { .. } => "finished",
        };
        let data = serde_json::to_string(&event).unwrap_or_default();
        Some((Ok(Event::default().event(name).data(data)), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Cancels a queued or running run (owning team and admins).
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = Run), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn cancel_run(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiJson<Run>, ServiceError> {
    runs::cancel_run(&state, &actor, id).await.map(ApiJson)
}
