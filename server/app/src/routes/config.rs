//! `/api/v1/services/{service}/environments/{env}/config`: an environment's config vars
//! and secrets (owning team and admins).

use axum::extract::State;
use slipway_api::{Config, ConfigChange, ConfigChanged, Problem};
use slipway_service::{Actor, ApiJson, ApiPath, AppState, ServiceError, config};

/// The newest config; secret values are `null`.
#[utoipa::path(get, path = "/api/v1/services/{service}/environments/{env}/config", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)),
    responses((status = 200, body = Config), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_config(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
) -> Result<ApiJson<Config>, ServiceError> {
    config::get_config(&state, &actor, &service, &env).await.map(ApiJson)
}

/// Sets and removes vars as one new config version, and rolls it out when a release runs.
#[utoipa::path(patch, path = "/api/v1/services/{service}/environments/{env}/config", tag = "environments",
    security(("bearer" = [])), params(("service" = String, Path), ("env" = String, Path)), request_body = ConfigChange,
    responses((status = 200, body = ConfigChanged), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn change_config(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((service, env)): ApiPath<(String, String)>,
    ApiJson(change): ApiJson<ConfigChange>,
) -> Result<ApiJson<ConfigChanged>, ServiceError> {
    config::change_config(&state, &actor, &service, &env, change).await.map(ApiJson)
}
