//! `/api/v1/services/{service}/metrics` and `/api/v1/teams/{team}/metrics`: DORA's four
//! keys over 7, 30 or 90 days.

use axum::extract::State;
use slipway_api::{DoraMetrics, Problem};
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, catalog};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Option<u32>,
}

/// Deployment frequency, lead time, change failure rate and time to restore of a service.
#[utoipa::path(get, path = "/api/v1/services/{service}/metrics", tag = "services", security(("bearer" = [])),
    params(("service" = String, Path), ("days" = Option<u32>, Query, description = "7, 30 (default) or 90")),
    responses((status = 200, body = DoraMetrics), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn service_metrics(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiQuery(window): ApiQuery<Window>,
) -> Result<ApiJson<DoraMetrics>, ServiceError> {
    catalog::service_metrics(&state, &actor, &service, window.days).await.map(ApiJson)
}

/// The same figures over every service a team owns.
#[utoipa::path(get, path = "/api/v1/teams/{team}/metrics", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path), ("days" = Option<u32>, Query, description = "7, 30 (default) or 90")),
    responses((status = 200, body = DoraMetrics), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn team_metrics(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
    ApiQuery(window): ApiQuery<Window>,
) -> Result<ApiJson<DoraMetrics>, ServiceError> {
    catalog::team_metrics(&state, &actor, &team, window.days).await.map(ApiJson)
}
