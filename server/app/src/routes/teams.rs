//! `/api/v1/teams`: teams and their members.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{AddMember, CreateTeam, Page, Problem, Team, UpdateTeam};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, teams};

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Team>)))]
pub async fn list_teams(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Team>>, ServiceError> {
    teams::list_teams(&state, &actor, &page).await.map(ApiJson)
}

/// Creates a team (admins only).
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", security(("bearer" = [])), request_body = CreateTeam,
    responses((status = 201, body = Team), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)))]
pub async fn create_team(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateTeam>,
) -> Result<(StatusCode, ApiJson<Team>), ServiceError> {
    teams::create_team(&state, &actor, req).await.map(|t| (StatusCode::CREATED, ApiJson(t)))
}

#[utoipa::path(get, path = "/api/v1/teams/{team}", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)), responses((status = 200, body = Team), (status = 404, body = Problem)))]
pub async fn get_team(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
) -> Result<ApiJson<Team>, ServiceError> {
    teams::get_team(&state, &actor, &team).await.map(ApiJson)
}

/// Changes a team: its Backstage aliases (team maintainers and admins).
#[utoipa::path(patch, path = "/api/v1/teams/{team}", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)), request_body = UpdateTeam,
    responses((status = 200, body = Team), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn update_team(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateTeam>,
) -> Result<ApiJson<Team>, ServiceError> {
    teams::update_team(&state, &actor, &team, req).await.map(ApiJson)
}

/// Deletes a team that owns no services (admins only).
#[utoipa::path(delete, path = "/api/v1/teams/{team}", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_team(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
) -> Result<StatusCode, ServiceError> {
    teams::delete_team(&state, &actor, &team).await.map(|()| StatusCode::NO_CONTENT)
}

/// Adds a member or changes a member's role (team maintainers and admins).
#[utoipa::path(post, path = "/api/v1/teams/{team}/members", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path)), request_body = AddMember,
    responses((status = 200, body = Team), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn add_member(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(team): ApiPath<String>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<ApiJson<Team>, ServiceError> {
    teams::add_member(&state, &actor, &team, req).await.map(ApiJson)
}

/// Removes a member (team maintainers and admins).
#[utoipa::path(delete, path = "/api/v1/teams/{team}/members/{user}", tag = "teams", security(("bearer" = [])),
    params(("team" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_member(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((team, user)): ApiPath<(String, String)>,
) -> Result<StatusCode, ServiceError> {
    teams::remove_member(&state, &actor, &team, &user).await.map(|()| StatusCode::NO_CONTENT)
}
