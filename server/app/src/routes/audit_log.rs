//! `GET /api/v1/audit`: the audit log (admins only).

use axum::extract::State;
use slipway_api::{AuditEntry, Page, Problem};
use slipway_service::audit::AuditQuery;
use slipway_service::{Actor, ApiJson, ApiQuery, AppState, ServiceError, audit};

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query),
        ("actor" = Option<String>, Query, description = "only this user's entries"),
        ("outcome" = Option<String>, Query, description = "success, denied or failed")),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    actor: Actor,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<ApiJson<Page<AuditEntry>>, ServiceError> {
    audit::list_audit(&state, &actor, &query).await.map(ApiJson)
}
