//! `/api/v1/tokens`: the caller's own API tokens.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{CreateToken, CreatedToken, Page, Problem, Token};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, tokens};

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Token>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Token>>, ServiceError> {
    tokens::list_tokens(&state, &actor, &page).await.map(ApiJson)
}

/// Creates an API token; the answer is the only time its secret is shown.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])), request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create_token(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, ApiJson<CreatedToken>), ServiceError> {
    tokens::create_token(&state, &actor, req).await.map(|t| (StatusCode::CREATED, ApiJson(t)))
}

/// Revokes one of the caller's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens", security(("bearer" = [])),
    params(("name" = String, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ServiceError> {
    tokens::revoke_token(&state, &actor, &name).await.map(|()| StatusCode::NO_CONTENT)
}
