//! `/api/v1/templates`: environment templates; publishing and deprecating take an admin.

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{Page, Problem, PublishTemplate, TemplateDetail, TemplateSummary};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, templates};

/// Every version of every template.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<TemplateSummary>)))]
pub async fn list_templates(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<TemplateSummary>>, ServiceError> {
    templates::list_templates_page(&state, &actor, &page).await.map(ApiJson)
}

/// Publishes a new template version (admins).
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    request_body = PublishTemplate,
    responses((status = 201, body = TemplateDetail), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)))]
pub async fn publish_template(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<PublishTemplate>,
) -> Result<(StatusCode, ApiJson<TemplateDetail>), ServiceError> {
    templates::publish_template(&state, &actor, &req.source).await.map(|t| (StatusCode::CREATED, ApiJson(t)))
}

/// A template's newest version that is not deprecated.
#[utoipa::path(get, path = "/api/v1/templates/{name}", tag = "templates", security(("bearer" = [])),
    params(("name" = String, Path)), responses((status = 200, body = TemplateDetail), (status = 404, body = Problem)))]
pub async fn get_latest_template(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath(name): ApiPath<String>,
) -> Result<ApiJson<TemplateDetail>, ServiceError> {
    templates::get_template(&state, &actor, &name).await.map(ApiJson)
}

#[utoipa::path(get, path = "/api/v1/templates/{name}/{version}", tag = "templates", security(("bearer" = [])),
    params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = TemplateDetail), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_template(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<ApiJson<TemplateDetail>, ServiceError> {
    templates::get_template(&state, &actor, &format!("{name}@{version}")).await.map(ApiJson)
}

/// Deprecates a version: no new environment may use it (admins).
#[utoipa::path(post, path = "/api/v1/templates/{name}/{version}/deprecate", tag = "templates",
    security(("bearer" = [])), params(("name" = String, Path), ("version" = String, Path)),
    responses((status = 200, body = TemplateSummary), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn deprecate_template(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> Result<ApiJson<TemplateSummary>, ServiceError> {
    templates::deprecate_template(&state, &actor, &name, &version).await.map(ApiJson)
}
