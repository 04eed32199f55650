//! The catalog's own API: importing descriptors (`/api/v1/catalog/import`), and the
//! Backstage-compatible reads (`/api/catalog/entities…`) scripts written for Backstage
//! call unchanged.

use slipway_api::{CatalogImport, ImportReport, Problem};
use slipway_service::backstage::{self, EntityQuery};
use slipway_service::{Actor, ApiJson, ApiPath, ApiQuery, AppState, ServiceError, catalog_import};

use axum::extract::State;

/// Plans an import of Backstage descriptors, and writes it with `apply` (one transaction).
/// Admins import for any team; maintainers for their teams.
#[utoipa::path(post, path = "/api/v1/catalog/import", tag = "catalog", security(("bearer" = [])),
    request_body = CatalogImport,
    responses((status = 200, body = ImportReport), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn import(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CatalogImport>,
) -> Result<ApiJson<ImportReport>, ServiceError> {
    catalog_import::import(&state, &actor, req).await.map(ApiJson)
}

/// Entities in Backstage's JSON shape. `filter` (repeatable; `key=value` terms joined by
/// `,` must all hold, any `filter` may) on `kind`, `metadata.namespace`, `metadata.name`,
/// `spec.owner`, `spec.lifecycle`, compared case-insensitively; `fields` keeps only the
/// dotted paths listed; `limit` (at most 1000) and `offset` page.
#[utoipa::path(get, path = "/api/catalog/entities", tag = "catalog", security(("bearer" = [])),
    params(("filter" = Option<Vec<String>>, Query), ("fields" = Option<String>, Query),
        ("limit" = Option<u32>, Query), ("offset" = Option<u32>, Query)),
    responses((status = 200, body = Vec<Object>), (status = 400, body = Problem)))]
pub async fn list_entities(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<ApiJson<Vec<Box<serde_json::value::RawValue>>>, ServiceError> {
    let query = EntityQuery::from_pairs(pairs)?;
    backstage::list_entities(&state, &actor, &query).await.map(ApiJson)
}

/// One entity by its reference, in Backstage's JSON shape.
#[utoipa::path(get, path = "/api/catalog/entities/by-name/{kind}/{namespace}/{name}", tag = "catalog",
    security(("bearer" = [])),
    params(("kind" = String, Path), ("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn entity_by_name(
    State(state): State<AppState>,
    actor: Actor,
    ApiPath((kind, namespace, name)): ApiPath<(String, String, String)>,
) -> Result<ApiJson<Box<serde_json::value::RawValue>>, ServiceError> {
    backstage::entity_by_name(&state, &actor, &kind, &namespace, &name).await.map(ApiJson)
}
