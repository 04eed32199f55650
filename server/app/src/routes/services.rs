//! `/api/v1/services`: services and their catalog metadata.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{CreateService, Page, Problem, Service, UpdateService};
use slipway_service::services::{self, ListServices};
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError};

#[utoipa::path(get, path = "/api/v1/services", tag = "services", security(("bearer" = [])),
    params(("team" = Option<String>, Query, description = "only services this team owns"),
        ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Service>), (status = 404, description = "The team does not exist")))]
pub async fn list_services(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(query): ApiQuery<ListServices>,
) -> Result<ApiJson<Page<Service>>, ServiceError> {
    services::list_services(&state, &actor, &query).await.map(ApiJson)
}

/// Creates a service owned by a team the caller belongs to.
#[utoipa::path(post, path = "/api/v1/services", tag = "services", security(("bearer" = [])),
    request_body = CreateService,
    responses((status = 201, body = Service), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn create_service(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateService>,
) -> Result<(StatusCode, ApiJson<Service>), ServiceError> {
    services::create_service(&state, &actor, req).await.map(|s| (StatusCode::CREATED, ApiJson(s)))
}

#[utoipa::path(get, path = "/api/v1/services/{service}", tag = "services", security(("bearer" = [])),
    params(("service" = String, Path)), responses((status = 200, body = Service), (status = 404, body = Problem)))]
pub async fn get_service(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
) -> Result<ApiJson<Service>, ServiceError> {
    services::get_service(&state, &actor, &service).await.map(ApiJson)
}

/// Changes catalog fields; only the fields sent change (owning team and admins).
#[utoipa::path(patch, path = "/api/v1/services/{service}", tag = "services", security(("bearer" = [])),
    params(("service" = String, Path)), request_body = UpdateService,
    responses((status = 200, body = Service), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, description = "The preview template is deprecated")))]
pub async fn update_service(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiJson(update): ApiJson<UpdateService>,
) -> Result<ApiJson<Service>, ServiceError> {
    services::update_service(&state, &actor, &service, update).await.map(ApiJson)
}

/// Deletes a service (owning team and admins).
#[utoipa::path(delete, path = "/api/v1/services/{service}", tag = "services", security(("bearer" = [])),
    params(("service" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_service(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
) -> Result<StatusCode, ServiceError> {
    services::delete_service(&state, &actor, &service).await.map(|()| StatusCode::NO_CONTENT)
}
