//! `/api/v1/clusters`: registered Kubernetes clusters (admins add and remove them).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use slipway_api::{AddCluster, Cluster, Problem};
use slipway_service::{Actor, ApiJson, AppState, ServiceError, clusters};

#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters", security(("bearer" = [])),
    responses((status = 200, body = Vec<Cluster>)))]
pub async fn list_clusters(State(state): State<AppState>, actor: Actor) -> Result<ApiJson<Vec<Cluster>>, ServiceError> {
    clusters::list_clusters(&state, &actor).await.map(ApiJson)
}

/// Registers a cluster; its kubeconfig is checked and stored encrypted (admins).
#[utoipa::path(post, path = "/api/v1/clusters", tag = "clusters", security(("bearer" = [])), request_body = AddCluster,
    responses((status = 201, body = Cluster), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)))]
pub async fn add_cluster(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<AddCluster>,
) -> Result<(StatusCode, ApiJson<Cluster>), ServiceError> {
    clusters::add_cluster(&state, &actor, req).await.map(|c| (StatusCode::CREATED, ApiJson(c)))
}

/// Removes a cluster no environment runs on (admins).
#[utoipa::path(delete, path = "/api/v1/clusters/{name}", tag = "clusters", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn remove_cluster(
    State(state): State<AppState>,
    actor: Actor,
    Path(name): Path<String>,
) -> Result<StatusCode, ServiceError> {
    clusters::remove_cluster(&state, &actor, &name).await.map(|()| StatusCode::NO_CONTENT)
}
