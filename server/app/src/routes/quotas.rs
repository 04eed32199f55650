//! `/api/v1/teams/{team}/quota`: a team's limits and usage (members and admins read,
//! admins set).

use axum::extract::State;
use slipway_api::{Problem, SetQuota, TeamQuota};
use slipway_service::{Actor, ApiJson, ApiPath, AppState, ServiceError, quotas};

#[utoipa::path(get, path = "/api/v1/teams/{team}/quota", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)),
    responses((status = 200, body = TeamQuota), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_quota(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
) -> Result<ApiJson<TeamQuota>, ServiceError> {
    quotas::get_quota(&state, &actor, &team).await.map(ApiJson)
}

/// Sets the team's limits; a missing field is unlimited (admins).
#[utoipa::path(put, path = "/api/v1/teams/{team}/quota", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)), request_body = SetQuota,
    responses((status = 200, body = TeamQuota), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn set_quota(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
    ApiJson(req): ApiJson<SetQuota>,
) -> Result<ApiJson<TeamQuota>, ServiceError> {
    quotas::set_quota(&state, &actor, &team, req).await.map(ApiJson)
}
