//! `/api/v1/users`: accounts (created by admins, readable by everyone signed in).

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{CreateUser, Page, Problem, User};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, users};

#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<User>), (status = 401, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<User>>, ServiceError> {
    users::list_users(&state, &actor, &page).await.map(ApiJson)
}

/// Creates a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = User), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 503, description = "Too many passwords are being hashed at once; retry after Retry-After seconds", body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateUser>,
) -> Result<(StatusCode, ApiJson<User>), ServiceError> {
    users::create_user(&state, &actor, req).await.map(|u| (StatusCode::CREATED, ApiJson(u)))
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users", security(("bearer" = [])),
    params(("user" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
pub async fn get_user(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(user): ApiPath<String>,
) -> Result<ApiJson<User>, ServiceError> {
    users::get_user(&state, &actor, &user).await.map(ApiJson)
}
