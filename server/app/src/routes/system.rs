//! Operational endpoints: `/healthz` (the process is up), `/readyz` (it can reach its
//! database; the container engine reported beside it), `/metrics` (Prometheus) and the
//! OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use slipway_service::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database answers: the API, portal and git endpoint need nothing else.
/// The container engine is reported on its own line (builds and local environments need
/// it; an installation whose environments run on clusters may start without one). No
/// error text: only whether each answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let engine = match state.engine.local_engine_answers() {
        Ok(()) => "engine: ok",
        Err(err) => {
            tracing::debug!(%err, "the container engine does not answer");
            "engine: unavailable (builds and local environments fail)"
        }
    };
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, format!("ready\ndatabase: ok\n{engine}\n")).into_response(),
        Err(err) => {
            tracing::warn!(%err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable\ndatabase: unreachable\n{engine}\n"))
                .into_response()
        }
    }
}

pub async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
}

pub async fn openapi_json(doc: Arc<serde_json::Value>) -> Json<Arc<serde_json::Value>> {
    Json(doc)
}
