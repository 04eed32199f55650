//! Smart-HTTP git hosting: `/git/<name>.git/…` for clone, fetch and push by the real git
//! client, served by running `git http-backend` as a CGI program. This crate knows
//! nothing of services, users or runs: it asks a [`GitAccess`] implementation (provided
//! by slipway-service) whether a request may read or push, and passes what that answers
//! on to git's hooks through the environment.
//!
//! Start with [`router`]; [`repos`] creates and removes the bare repositories.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

pub mod archive;
mod cgi;
pub mod hook;
pub mod repos;

/// What a request wants to do with a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitOp {
    /// clone or fetch (`git-upload-pack`)
    Read,
    /// push (`git-receive-pack`)
    Push,
}

/// Permission to go ahead, with environment variables for git's hooks.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Who is acting, shown to hooks as `REMOTE_USER`.
    pub user: String,
    pub env: Vec<(String, String)>,
}

/// Why a request was refused; the text is shown by git as `remote: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    Unavailable(String),
}

/// Decides who may read or push which repository. Implemented by slipway-service.
pub trait GitAccess: Clone + Send + Sync + 'static {
    fn authorize(
        &self,
        headers: &HeaderMap,
        repo: &str,
        op: GitOp,
    ) -> impl Future<Output = Result<Grant, Denial>> + Send;
}

/// Where repositories live and what git may do with them.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// Directory holding `<name>.git` bare repositories.
    pub root: PathBuf,
    /// Directory for request bodies while git reads them.
    pub spool: PathBuf,
    /// The `git` program.
    pub git: PathBuf,
    /// Largest push (request body) accepted, in bytes.
    pub max_push_bytes: u64,
    /// Largest repository (objects on disk) a push may grow, in bytes.
    pub max_repo_bytes: u64,
    /// Git configuration passed to every git process (`core.hooksPath`, …).
    pub git_config: Vec<(String, String)>,
}

struct Host<A> {
    config: GitConfig,
    access: A,
}

/// The `/git/{repo}/{*rest}` routes.
pub fn router<A: GitAccess>(config: GitConfig, access: A) -> Router {
    let host = Arc::new(Host { config, access });
    Router::new().route("/git/{repo}/{*rest}", any(handle::<A>)).with_state(host)
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        match self {
            Denial::Unauthenticated(message) => {
                let mut response = text(StatusCode::UNAUTHORIZED, &message);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"slipway\""));
                response
            }
            Denial::Forbidden(message) => text(StatusCode::FORBIDDEN, &message),
            Denial::NotFound(message) => text(StatusCode::NOT_FOUND, &message),
            Denial::Unavailable(message) => text(StatusCode::SERVICE_UNAVAILABLE, &message),
        }
    }
}

/// Which git operation a smart-HTTP request is, or `None` for anything else (the dumb
/// protocol and stray paths are not served).
pub fn classify(method: &Method, rest: &str, query: Option<&str>) -> Option<GitOp> {
    match (method.as_str(), rest) {
        ("GET", "info/refs") => match query.unwrap_or_default().split('&').find_map(|kv| kv.strip_prefix("service=")) {
            Some("git-upload-pack") => Some(GitOp::Read),
            Some("git-receive-pack") => Some(GitOp::Push),
            _ => None,
        },
        ("POST", "git-upload-pack") => Some(GitOp::Read),
        ("POST", "git-receive-pack") => Some(GitOp::Push),
        _ => None,
    }
}

async fn handle<A: GitAccess>(
    State(host): State<Arc<Host<A>>>,
    Path((repo, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(name) = repo.strip_suffix(".git").filter(|n| slipway_core::names::validate_name(n).is_ok()) else {
        return text(StatusCode::NOT_FOUND, "no such repository: use /git/<service>.git");
    };
    let Some(op) = classify(&method, &rest, query.as_deref()) else {
        return text(StatusCode::NOT_FOUND, "only git's smart HTTP protocol is served here");
    };
    let grant = match host.access.authorize(&headers, name, op).await {
        Ok(grant) => grant,
        Err(denial) => return denial.into_response(),
    };
    let path = host.config.root.join(format!("{name}.git"));
    if !path.join("HEAD").is_file() {
        tracing::error!(repo = %path.display(), "repository missing on disk");
        return text(StatusCode::NOT_FOUND, &format!("the repository of {name} is missing on the server"));
    }
    let request =
        cgi::CgiRequest { name, rest: &rest, query: query.as_deref(), method: &method, headers: &headers, op };
    match cgi::run(&host.config, request, grant, body).await {
        Ok(response) => response,
        Err(cgi::CgiError::TooLarge { limit, what }) => text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("push refused: the {what} would exceed the limit of {} MiB", limit / (1024 * 1024)),
        ),
        Err(err @ cgi::CgiError::Encoding(_)) => text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("{err}: send the body plain or gzip-compressed, as git does"),
        ),
        Err(err @ cgi::CgiError::Body(_)) => text(StatusCode::BAD_REQUEST, &format!("{err}")),
        Err(err) => {
            tracing::error!(%err, repo = name, "git http-backend failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "the git server failed; try again (the error has been logged)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_smart_http_requests() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(classify(&get, "info/refs", Some("service=git-upload-pack")), Some(GitOp::Read));
        assert_eq!(classify(&get, "info/refs", Some("service=git-receive-pack")), Some(GitOp::Push));
        assert_eq!(classify(&post, "git-upload-pack", None), Some(GitOp::Read));
        assert_eq!(classify(&post, "git-receive-pack", None), Some(GitOp::Push));
        assert_eq!(classify(&get, "info/refs", None), None, "dumb protocol");
        assert_eq!(classify(&get, "HEAD", None), None);
        assert_eq!(classify(&get, "objects/info/packs", None), None);
        assert_eq!(classify(&post, "info/refs", Some("service=git-receive-pack")), None);
    }
}
