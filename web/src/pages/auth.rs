//! `/login` and `/logout`: the sign-in form (with a CSRF token bound to a nonce cookie,
//! since there is no session yet) and the session cookie.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use slipway_api::LoginRequest;
use slipway_service::actor::{ClientAddress, SESSION_COOKIE, cookie};
use slipway_service::{AppState, ServiceError, audit, users};

use super::render_with;
use crate::error::PageError;
use crate::form::{Form, Query};
use crate::session::{LOGIN_COOKIE, Viewer, secure, set_cookie};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    username: String,
    error: String,
    notice: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    expired: Option<String>,
}

/// Only a path on this site is a place to return to: `//evil.example` and `https://…`
/// would send the user elsewhere after signing in. Browsers drop tabs and newlines from
/// a URL and read `\\` as `/`, so `/\t/evil.example` or `/\\evil.example` is `//evil.example`
/// to them: no control character or backslash may appear anywhere.
fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/') && !next.starts_with("//") && !next.chars().any(|c| c.is_control() || c == '\\');
    if ok { next.to_owned() } else { "/".to_owned() }
}

fn nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A nonce for the form, reusing the browser's when it has one (several tabs stay valid).
fn form_nonce(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, LOGIN_COOKIE).filter(|n| n.len() == 36 && n.bytes().all(|b| b.is_ascii_hexdigit())) {
        Some(existing) => (existing, false),
        None => (nonce(), true),
    }
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let (nonce, fresh) = form_nonce(&headers);
    let page = LoginPage {
        csrf: state.jwt.csrf_token("login", &nonce),
        next: safe_next(&query.next),
        username: String::new(),
        error: String::new(),
        notice: if query.expired.is_some() { "Your session ended; sign in again.".to_owned() } else { String::new() },
    };
    let mut response = render_with(StatusCode::OK, page)?;
    if fresh {
        let value = set_cookie(LOGIN_COOKIE, nonce, 3600, secure(&state, &headers));
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddress(from): ClientAddress,
    headers: HeaderMap,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let next = safe_next(fields.get("next"));
    let username: String = fields.get("username").trim().chars().take(64).collect();
    let nonce = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if nonce.is_empty() || !state.jwt.verify_csrf("login", &nonce, fields.get("csrf_token")) {
        audit::record(&state, &username, "POST /login", "/login", StatusCode::FORBIDDEN).await;
        return Err(PageError::Csrf);
    }
    let request = LoginRequest { username: username.clone(), password: fields.get("password").to_owned() };
    match users::login(&state, request, from).await {
        Ok(session) => {
            audit::record(&state, &username, "POST /login", "/login", StatusCode::SEE_OTHER).await;
            let secure = secure(&state, &headers);
            let mut response = Redirect::to(&next).into_response();
            let cookies = response.headers_mut();
            cookies.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, session.token, state.jwt.ttl_secs, secure));
            cookies.append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, String::new(), 0, secure));
            Ok(response)
        }
        Err(
            err @ (ServiceError::Unauthenticated(_) | ServiceError::RateLimited { .. } | ServiceError::Busy { .. }),
        ) => {
            audit::record(&state, &username, "POST /login", "/login", err.status()).await;
            let page = LoginPage {
                csrf: state.jwt.csrf_token("login", &nonce),
                next,
                username,
                error: err.to_string(),
                notice: String::new(),
            };
            render_with(err.status(), page)
        }
        Err(err) => Err(err.into()),
    }
}

/// Signs out: the session is revoked on the server (a copied cookie stops working too)
/// and the cookie cleared.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Form(fields): Form,
) -> Result<Response, PageError> {
    viewer.check_csrf(&state, fields.get("csrf_token"))?;
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        users::sign_out(&state, &session).await?;
    }
    audit::record(&state, viewer.username(), "POST /logout", "/logout", StatusCode::SEE_OTHER).await;
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, String::new(), 0, secure(&state, &headers)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_next("/services/shop?days=7"), "/services/shop?days=7");
        for bad in
            ["//evil.example", "https://evil.example", "/\\evil.example", "", "javascript:x", "/a\r\nSet-Cookie: x"]
        {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }
}
