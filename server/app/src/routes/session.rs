//! `POST /api/v1/login`, `POST /api/v1/logout`, `GET /api/v1/user` and
//! `POST /api/v1/user/password`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use slipway_api::{ChangePassword, CurrentUser, LoginRequest, LoginResponse, Problem};
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

/// Signs out: the presented session token stops working at once, on every replica
/// (API tokens are revoked with `DELETE /api/v1/tokens/{name}` instead).
#[utoipa::path(post, path = "/api/v1/logout", tag = "session", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    // Signed in with a valid, unrevoked credential: what there is to end.
    _actor: Actor,
    headers: HeaderMap,
) -> Result<StatusCode, ServiceError> {
    let presented = slipway_service::actor::bearer(&headers).unwrap_or_default();
    users::sign_out(&state, presented).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password; every earlier session of theirs ends, and the answer
/// is a new session token.
#[utoipa::path(post, path = "/api/v1/user/password", tag = "session", security(("bearer" = [])),
    request_body = ChangePassword,
    responses((status = 200, body = LoginResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
pub async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    ClientAddress(from): ClientAddress,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<ApiJson<LoginResponse>, ServiceError> {
    users::change_password(&state, &actor, req, from).await.map(ApiJson)
}
