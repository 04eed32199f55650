//! The push hook bridge, both ends. During a push git runs `slipwayd hook pre-receive`
//! ([`run`]): it sends the ref updates, with git's quarantine variables so the server
//! can read the pushed commit, to the slipwayd that accepted the push, prints the
//! pipeline's lines as they arrive (git shows them as `remote: …`) and exits non-zero to
//! reject the push. That slipwayd answers at `POST /internal/git/pre-receive`
//! ([`hook_router`]) with what its [`OnPush`] (the pipeline) says.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Json, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::archive::OBJECT_VARS;

/// The last line of a hook response: the hook exits 0 on accept, 1 on reject.
pub const ACCEPT: &str = "\u{1}slipway:accept";
pub const REJECT: &str = "\u{1}slipway:reject";

/// The largest hook request read (ref updates of one push and a few variables).
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// What the hook sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRequest {
    /// The one-time secret the git endpoint handed this push (`SLIPWAY_PUSH_GRANT`).
    pub grant: String,
    pub updates: Vec<RefUpdate>,
    /// git's object-directory variables (quarantine), so the pushed commit is readable.
    #[serde(default)]
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// What a push's ref updates set off; implemented by slipway-service's pipeline. The
/// lines are shown to the pusher; the last is [`ACCEPT`] or [`REJECT`].
pub trait OnPush: Clone + Send + Sync + 'static {
    fn on_push(&self, request: HookRequest) -> mpsc::Receiver<String>;
}

/// `POST /internal/git/pre-receive`: the hook's call back. Not part of the public API: the
/// request carries the one-time push grant the [`OnPush`] checks.
pub fn hook_router<P: OnPush>(on_push: P) -> Router {
    Router::new()
        .route("/internal/git/pre-receive", axum::routing::post(pre_receive::<P>))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(on_push)
}

async fn pre_receive<P: OnPush>(State(on_push): State<P>, Json(request): Json<HookRequest>) -> Response {
    let lines = on_push.on_push(request);
    // One chunk per line, so each is sent as soon as it exists.
    let body = futures_util::stream::unfold(lines, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, std::convert::Infallible>(bytes::Bytes::from(format!("{line}\n"))), rx))
    });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], Body::from_stream(body)).into_response()
}

/// The hook program's `main`: `slipwayd hook NAME`.
pub fn run(name: &str) -> ExitCode {
    if name != "pre-receive" {
        // Other hooks are not installed; accept whatever they are asked.
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            println!("!     slipway hook: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pre_receive_hook()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            println!("!     push rejected: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn pre_receive_hook() -> Result<bool, String> {
    let url = std::env::var("SLIPWAY_HOOK_URL").map_err(|_| "SLIPWAY_HOOK_URL is not set (push through slipwayd)")?;
    let grant =
        std::env::var("SLIPWAY_PUSH_GRANT").map_err(|_| "SLIPWAY_PUSH_GRANT is not set (push through slipwayd)")?;
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading the ref updates: {e}"))?;
        let mut parts = line.split_whitespace();
        if let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) {
            updates.push(RefUpdate { old: old.to_owned(), new: new.to_owned(), name: name.to_owned() });
        }
    }
    let env = OBJECT_VARS.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    let request = HookRequest { grant, updates, env };

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
    let response = client
        .post(format!("{url}/internal/git/pre-receive"))
        .json(&request)
        .send()
        .await
        .map_err(|e| format!("cannot reach slipwayd at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("slipwayd answered {}", response.status()));
    }
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    let mut verdict = None;
    let stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the connection to slipwayd broke: {e}"))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            match text.as_str() {
                ACCEPT => verdict = Some(true),
                REJECT => verdict = Some(false),
                _ => {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{text}");
                    // Flush each line so the pusher sees the build as it happens.
                    let _ = out.flush();
                }
            }
        }
    }
    verdict.ok_or_else(|| "slipwayd ended the push without a verdict".to_owned())
}
