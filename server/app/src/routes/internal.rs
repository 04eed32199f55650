//! `POST /internal/git/pre-receive`: the git hook's call back into slipwayd. Not part of
//! the public API: it is authorised by the one-time push grant the git endpoint minted,
//! and answers the pipeline's output as a stream of text lines.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use slipway_service::pipeline::{self, HookRequest};
use slipway_service::{ApiJson, AppState};

pub async fn pre_receive(State(state): State<AppState>, ApiJson(request): ApiJson<HookRequest>) -> Response {
    let lines = pipeline::receive_push(state, request);
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(lines_body(lines))).into_response()
}

/// Turns a channel of lines into a body stream, one chunk per line, so each is sent as
/// soon as it exists.
fn lines_body(
    rx: tokio::sync::mpsc::Receiver<String>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::convert::Infallible>> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok(axum::body::Bytes::from(format!("{line}\n"))), rx))
    })
}
