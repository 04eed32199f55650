//! `POST /api/v1/login` and `GET /api/v1/user`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use slipway_api::{CurrentUser, LoginRequest, LoginResponse, Problem};
use slipway_service::actor::ClientAddress;
use slipway_service::audit::AuditActor;
use slipway_service::{Actor, ApiJson, AppState, ServiceError, users};

/// Signs in with a username and password; answers a session token.
#[utoipa::path(post, path = "/api/v1/login", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Response {
    // The caller is not signed in yet: name in the audit log who tried.
    let who: String = req.username.chars().take(64).collect();
    let mut response = match users::login(&state, req, from).await {
        Ok(session) => ApiJson(session).into_response(),
        Err(err) => err.into_response(),
    };
    response.extensions_mut().insert(AuditActor(who));
    response
}

/// The signed-in user and their teams.
#[utoipa::path(get, path = "/api/v1/user", tag = "session", security(("bearer" = [])),
    responses((status = 200, body = CurrentUser), (status = 401, body = Problem)))]
pub async fn current_user(State(state): State<AppState>, actor: Actor) -> Result<ApiJson<CurrentUser>, ServiceError> {
    users::current_user(&state, &actor).await.map(ApiJson)
}
