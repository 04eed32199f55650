//! `/api/v1/services/{service}/environments`: environments, releases, rollback, scale,
//! and promote between environments.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{
    CreateEnvironment, Environment, EnvironmentChange, Page, Problem, PromoteRequest, Release, RollbackRequest, Run,
    ScaleRequest, UpdateEnvironment,
};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, environments};

#[utoipa::path(get, path = "/api/v1/services/{service}/environments", tag = "environments", security(("bearer" = [])),
    params(("service" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Environment>), (status = 404, body = Problem)))]
pub async fn list_environments(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Environment>>, ServiceError> {
    environments::list_environments_page(&state, &actor, &service, &page).await.map(ApiJson)
}

#[utoipa::path(get, path = "/api/v1/services/{service}/environments/{env}", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Environment), (status = 404, body = Problem)))]
pub async fn get_environment(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
) -> Result<ApiJson<Environment>, ServiceError> {
    environments::get_environment(&state, &actor, &service, &env).await.map(ApiJson)
}

#[utoipa::path(get, path = "/api/v1/services/{service}/environments/{env}/releases", tag = "environments",
    security(("bearer" = [])),
    params(("service" = String, Path), ("env" = String, Path), ("limit" = Option<u32>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Release>), (status = 404, body = Problem)))]
pub async fn list_releases(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Release>>, ServiceError> {
    environments::list_releases_page(&state, &actor, &service, &env, &page).await.map(ApiJson)
}

/// Redeploys an earlier release and pins the environment (owning team and admins).
#[utoipa::path(post, path = "/api/v1/services/{service}/environments/{env}/rollback", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)),
    request_body = RollbackRequest,
    responses((status = 201, body = Run), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rollback(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RollbackRequest>,
) -> Result<(StatusCode, ApiJson<Run>), ServiceError> {
    environments::rollback(&state, &actor, &service, &env, req.to).await.map(|r| (StatusCode::CREATED, ApiJson(r)))
}

/// Sets the number of replicas (owning team and admins).
#[utoipa::path(post, path = "/api/v1/services/{service}/environments/{env}/scale", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)), request_body = ScaleRequest,
    responses((status = 200, body = Environment), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, description = "More replicas than the template's max_replicas")))]
pub async fn scale(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<ScaleRequest>,
) -> Result<ApiJson<Environment>, ServiceError> {
    environments::scale(&state, &actor, &service, &env, req.replicas).await.map(ApiJson)
}

/// Runs one environment's current image in another without a rebuild (owning team and admins).
#[utoipa::path(post, path = "/api/v1/services/{service}/promote", tag = "environments", security(("bearer" = [])),
    params(("service" = String, Path)), request_body = PromoteRequest,
    responses((status = 201, body = Run), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn promote(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiJson(req): ApiJson<PromoteRequest>,
) -> Result<(StatusCode, ApiJson<Run>), ServiceError> {
    environments::promote(&state, &actor, &service, &req.from, &req.to).await.map(|r| (StatusCode::CREATED, ApiJson(r)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLogsQuery {
    #[serde(default)]
    pub follow: bool,
    pub tail: Option<u32>,
}

/// The running replicas' output as text lines (`[replica] line`); `follow=true` streams
/// live. Owning team and admins.
#[utoipa::path(get, path = "/api/v1/services/{service}/environments/{env}/logs", tag = "environments",
    security(("bearer" = [])),
    params(("service" = String, Path), ("env" = String, Path), ("follow" = Option<bool>, Query),
        ("tail" = Option<u32>, Query, description = "lines per replica to replay (default 100)")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn app_logs(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<AppLogsQuery>,
) -> Result<axum::response::Response, ServiceError> {
    use axum::response::IntoResponse;
    let rx = environments::app_logs(&state, &actor, &service, &env, query.follow, query.tail.unwrap_or(100)).await?;
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line + "\n")), rx))
    });
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], axum::body::Body::from_stream(body))
        .into_response())
}

/// Creates an environment from a template (owning team and admins); `dry_run` renders
/// and checks only.
#[utoipa::path(post, path = "/api/v1/services/{service}/environments", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path)), request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentChange), (status = 200, description = "dry run", body = EnvironmentChange),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, description = "An add-on could not be provisioned; nothing was created", body = Problem)))]
pub async fn create_environment(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(service): ApiPath<String>,
    ApiJson(req): ApiJson<CreateEnvironment>,
) -> Result<(StatusCode, ApiJson<EnvironmentChange>), ServiceError> {
    let dry_run = req.dry_run;
    let change = environments::create_environment(&state, &actor, &service, req).await?;
    Ok((if dry_run { StatusCode::OK } else { StatusCode::CREATED }, ApiJson(change)))
}

/// Moves an environment to another template version or parameter values; the change
/// rolls out as a new release (owning team and admins).
#[utoipa::path(patch, path = "/api/v1/services/{service}/environments/{env}", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)),
    request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentChange), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem),
        (status = 503, description = "An add-on could not be provisioned", body = Problem)))]
pub async fn update_environment(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<UpdateEnvironment>,
) -> Result<ApiJson<EnvironmentChange>, ServiceError> {
    environments::update_environment(&state, &actor, &service, &env, req).await.map(ApiJson)
}

/// Stops an environment's replicas and removes it (owning team and admins).
#[utoipa::path(delete, path = "/api/v1/services/{service}/environments/{env}", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn destroy_environment(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
) -> Result<StatusCode, ServiceError> {
    environments::destroy_environment(&state, &actor, &service, &env).await.map(|()| StatusCode::NO_CONTENT)
}
