//! `/api/v1/clusters`: registered Kubernetes clusters (admins add and remove them).

use axum::extract::State;
use axum::http::StatusCode;
use slipway_api::{AddCluster, Cluster, Page, Problem};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, clusters};

#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<Cluster>)))]
pub async fn list_clusters(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<ApiJson<Page<Cluster>>, ServiceError> {
    clusters::list_clusters_page(&state, &actor, &page).await.map(ApiJson)
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
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ServiceError> {
    clusters::remove_cluster(&state, &actor, &name).await.map(|()| StatusCode::NO_CONTENT)
}
