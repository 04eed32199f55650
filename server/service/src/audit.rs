//! The audit log: a middleware records every state-changing API request (who, what,
//! target, when, outcome) after it is answered, and admins read the log back.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use slipway_api::{AuditEntry, Page};
use slipway_core::policy::Action;
use slipway_store::audit::NewAuditEntry;

use crate::access::require_platform;
use crate::actor::{Authentication, authenticate};
use crate::clock::{now_ms, rfc3339};
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result};

/// Set on a response by a handler whose caller is not signed in yet (login), so the
/// audit entry names who tried.
#[derive(Debug, Clone)]
pub struct AuditActor(pub String);

/// The longest target recorded (a path can be as long as the server accepts).
const MAX_TARGET_CHARS: usize = 256;

/// Authenticates every API request once and records the state-changing ones.
pub async fn authenticate_and_audit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let mutating = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut auth = authenticate(&state, req.headers()).await;
    // The portal's session cookie also signs in reads (its pages stream run events from
    // the API), never changes: those need the Authorization header, which no other site
    // can make a browser send.
    if matches!(auth, Authentication::Anonymous)
        && !mutating
        && let Some(token) = crate::actor::cookie(req.headers(), crate::actor::SESSION_COOKIE)
    {
        auth = crate::actor::authenticate_session(&state, &token).await;
    }
    // Only requests to a route: an outsider's requests to made-up paths change nothing
    // and must not grow the log. The target is the path, cut to a bounded length.
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let audit = route.filter(|_| mutating).map(|route| {
        let target: String = req.uri().path().chars().take(MAX_TARGET_CHARS).collect();
        (format!("{} {route}", req.method()), target)
    });
    let actor = auth.actor().map(|a| a.username.clone());
    req.extensions_mut().insert(auth);
    let response = next.run(req).await;

    // Requests turned away before anything was tried (throttled, the server busy, or
    // nobody signed in on a route that needs it) are not entries: an outsider could
    // otherwise write one row per request. Failed logins are (they name who tried).
    let status = response.status().as_u16();
    let named = response.extensions().get::<AuditActor>().map(|a| a.0.clone());
    let turned_away = matches!(status, 429 | 503) || (status == 401 && actor.is_none() && named.is_none());
    if let Some((action, target)) = audit.filter(|_| !turned_away) {
        let actor = named.or(actor).unwrap_or_else(|| "anonymous".to_owned());
        record(&state, &actor, &action, &target, response.status()).await;
    }
    response
}

/// Records one state-changing request: by the API middleware above, and by the portal's
/// forms, which are answered outside it.
pub async fn record(state: &AppState, actor: &str, action: &str, target: &str, status: axum::http::StatusCode) {
    let outcome = match status.as_u16() {
        200..=399 => "success",
        401 | 403 => "denied",
        _ => "failed",
    };
    let entry = NewAuditEntry { at: now_ms(), actor, action, target, outcome, status: status.as_u16() };
    if let Err(err) = state.store.append_audit(&entry).await {
        // The change itself has happened; losing its audit entry is logged loudly.
        tracing::error!(%err, %action, %target, "writing the audit log");
    }
}

/// Which entries to list: paging, and optional filters by who and by outcome.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    #[serde(default)]
    pub actor: String,
    /// `success`, `denied` or `failed`.
    #[serde(default)]
    pub outcome: String,
}

/// Lists the audit log, newest first (admins only).
pub async fn list_audit(state: &AppState, actor: &Actor, query: &AuditQuery) -> Result<Page<AuditEntry>> {
    require_platform(actor, Action::ReadAudit)?;
    let page = PageRequest::parse(&PageParams { limit: query.limit, cursor: query.cursor.clone() })?;
    if !matches!(query.outcome.as_str(), "" | "success" | "denied" | "failed") {
        return Err(crate::ServiceError::invalid(
            "outcome",
            format!("outcome {:?} is not one of success, denied, failed", query.outcome),
        ));
    }
    let rows =
        state.store.list_audit(Some(page.before_id()?), query.actor.trim(), &query.outcome, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |r| r.id.to_string());
    let items = rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.actor,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            status: u16::try_from(r.status).unwrap_or_default(),
        })
        .collect();
    Ok(Page { items, next_cursor })
}
