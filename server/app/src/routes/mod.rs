//! Every HTTP route of slipwayd, listed in one place. API routes are registered through
//! `utoipa_axum::routes!`, so a route cannot exist without appearing in the OpenAPI
//! document at `/api/openapi.json`, which the ownership test walks.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use slipway_service::git_access::ServiceGitAccess;
use slipway_service::json::MAX_JSON_BODY;
use slipway_service::{AppState, ServiceError, audit};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod audit_log;
pub mod catalog;
pub mod clusters;
pub mod config;
pub mod environments;
pub mod metrics;
pub mod quotas;
pub mod runs;
pub mod services;
pub mod session;
pub mod system;
pub mod teams;
pub mod templates;
pub mod tokens;
pub mod users;

use crate::openapi::ApiDoc;

/// Builds the whole application: API, OpenAPI document, health and metrics.
pub fn router(
    state: AppState,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    git: slipway_git::GitConfig,
) -> Router {
    let git = slipway_git::router(git, ServiceGitAccess { state: state.clone() });
    let (api, openapi) = api_router().split_for_parts();
    let api = api
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::authenticate_and_audit))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state.clone());
    let openapi = std::sync::Arc::new(crate::openapi::complete(openapi));
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz).with_state(state.clone()))
        .route("/metrics", get(system::metrics).with_state(metrics))
        .route("/api/openapi.json", get(move || system::openapi_json(openapi.clone())))
        .merge(api)
        .merge(git)
        .merge(slipway_web::router(state.clone()))
        .fallback(not_found)
        .merge(slipway_git::hook::hook_router(slipway_service::pipeline::Pipeline(state.clone())))
        .layer(axum::middleware::from_fn(crate::telemetry::record_http_metrics))
}

/// The REST API under `/api/v1`, with its OpenAPI description.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::login))
        .routes(routes!(session::current_user))
        .routes(routes!(session::logout))
        .routes(routes!(session::change_password))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::get_user))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(teams::get_team, teams::update_team, teams::delete_team))
        .routes(routes!(teams::add_member))
        .routes(routes!(teams::remove_member))
        .routes(routes!(services::list_services, services::create_service))
        .routes(routes!(services::get_service, services::update_service, services::delete_service))
        .routes(routes!(tokens::list_tokens, tokens::create_token))
        .routes(routes!(tokens::revoke_token))
        .routes(routes!(audit_log::list_audit))
        .routes(routes!(runs::list_runs, runs::create_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::run_log))
        .routes(routes!(runs::run_events))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(environments::list_environments, environments::create_environment))
        .routes(routes!(
            environments::get_environment,
            environments::update_environment,
            environments::destroy_environment
        ))
        .routes(routes!(environments::list_releases))
        .routes(routes!(environments::rollback))
        .routes(routes!(environments::scale))
        .routes(routes!(config::get_config, config::change_config))
        .routes(routes!(environments::promote))
        .routes(routes!(templates::list_templates, templates::publish_template))
        .routes(routes!(templates::get_latest_template))
        .routes(routes!(templates::get_template))
        .routes(routes!(templates::deprecate_template))
        .routes(routes!(quotas::get_quota, quotas::set_quota))
        .routes(routes!(clusters::list_clusters, clusters::add_cluster))
        .routes(routes!(clusters::remove_cluster))
        .routes(routes!(environments::app_logs))
        .routes(routes!(metrics::service_metrics))
        .routes(routes!(metrics::team_metrics))
        .routes(routes!(catalog::import))
        .routes(routes!(catalog::list_entities))
        .routes(routes!(catalog::entity_by_name))
}

/// An unknown path: a problem document under `/api/`, a page elsewhere.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        ServiceError::NotFound { kind: "API route", name: uri.path().to_owned() }.into_response()
    } else {
        slipway_web::error::not_found().await
    }
}
