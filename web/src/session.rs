//! Who is looking at a page: the session cookie (`slipway_session`, holding a session
//! token), the CSRF token bound to it, and the headers every portal response carries.

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use cookie::{Cookie, SameSite};
use slipway_service::actor::{self, Authentication, SESSION_COOKIE};
use slipway_service::{Actor, AppState};

use crate::error::PageError;

/// The sign-in form's nonce cookie: binds the form's CSRF token before there is a session.
pub const LOGIN_COOKIE: &str = "slipway_login";

/// A signed-in viewer of a page, with the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub actor: Actor,
    pub csrf: String,
    /// The session token itself, which the CSRF token is bound to.
    token: String,
}

impl Viewer {
    /// Checks a form's CSRF token against this session.
    pub fn check_csrf(&self, state: &AppState, presented: &str) -> Result<(), PageError> {
        if state.jwt.verify_csrf("session", &self.token, presented) { Ok(()) } else { Err(PageError::Csrf) }
    }

    pub fn username(&self) -> &str {
        &self.actor.username
    }

    pub fn is_admin(&self) -> bool {
        self.actor.is_admin
    }
}

/// Where the sign-in page sends someone back to: the path they asked for.
fn return_path(parts: &Parts) -> String {
    if parts.method == Method::GET {
        parts.uri.path_and_query().map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned())
    } else {
        "/".to_owned()
    }
}

impl<S> FromRequestParts<S> for Viewer
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let next = return_path(parts);
        let Some(token) = actor::cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(PageError::SignIn { next, expired: false });
        };
        match actor::authenticate_session(&state, &token).await {
            Authentication::Authenticated(actor) => {
                let csrf = state.jwt.csrf_token("session", &token);
                Ok(Viewer { actor, csrf, token })
            }
            _ => Err(PageError::SignIn { next, expired: true }),
        }
    }
}

/// Whether cookies must be `Secure`: the server is reached over TLS (directly, or behind
/// a proxy that says so).
pub fn secure(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    state.settings.public_url.starts_with("https://")
        || headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, for the whole site.
pub fn set_cookie(name: &'static str, value: String, max_age_secs: i64, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Headers on every portal response: no framing (clickjacking), no sniffing, a strict
/// content security policy (the portal's own script and styles only), and no caching of
/// pages that show private data.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/static/");
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    if !is_asset && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
