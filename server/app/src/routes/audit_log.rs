//! `GET /api/v1/audit`: the audit log (admins only).

use axum::extract::{Query, State};
use slipway_api::{AuditEntry, Page, Problem};
use slipway_service::pagination::PageParams;
use slipway_service::{Actor, ApiJson, AppState, ServiceError, audit};

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AuditEntry>), (status = 403, body = Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    actor: Actor,
    Query(page): Query<PageParams>,
) -> Result<ApiJson<Page<AuditEntry>>, ServiceError> {
    audit::list_audit(&state, &actor, &page).await.map(ApiJson)
}
