//! Who is asking: resolves the `Authorization` header (a session JWT, or an API token as
//! a Bearer token or as the HTTP Basic password, which is how git sends it) to an
//! [`Actor`], and the extractor that makes a handler require one.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use slipway_core::PlatformRole;
use slipway_store::StoreError;

use crate::auth::cache::{CacheKey, Cached, TokenFacts};
use crate::auth::token;
use crate::clock::{now_ms, rfc3339};
use crate::{AppState, ServiceError};

/// How often an API token's `last_used_at` is written: at most once a minute, so busy
/// clients do not turn every read into a database write.
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// A signed-in user making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub is_admin: bool,
}

impl Actor {
    pub fn role(&self) -> PlatformRole {
        if self.is_admin { PlatformRole::Admin } else { PlatformRole::Developer }
    }
}

/// The outcome of reading a request's credentials; stored in the request's extensions
/// by the API middleware so it is resolved once per request.
#[derive(Debug, Clone)]
pub enum Authentication {
    Anonymous,
    Authenticated(Actor),
    /// Credentials were sent but do not verify; the text says why.
    Invalid(String),
}

impl Authentication {
    pub fn actor(&self) -> Option<&Actor> {
        match self {
            Authentication::Authenticated(actor) => Some(actor),
            _ => None,
        }
    }

    pub fn into_actor(self) -> Result<Actor, ServiceError> {
        match self {
            Authentication::Authenticated(actor) => Ok(actor),
            Authentication::Anonymous => Err(ServiceError::Unauthenticated(
                "sign in first: send `Authorization: Bearer <token>` (see `slipway login`)".to_owned(),
            )),
            Authentication::Invalid(why) => Err(ServiceError::Unauthenticated(why)),
        }
    }
}

/// The portal's session cookie: it holds a session token, as `Authorization: Bearer` does.
pub const SESSION_COOKIE: &str = "slipway_session";

/// The value of a cookie sent with a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(|c| c.ok())
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Verifies a session token taken from the portal's cookie.
pub async fn authenticate_session(state: &AppState, token: &str) -> Authentication {
    authenticate_jwt(state, token).await
}

/// The credentials of a `Bearer` Authorization header (scheme in any case), if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let (scheme, credentials) = headers.get(AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
}

/// Reads and verifies the credentials of a request.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Authentication {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Authentication::Anonymous;
    };
    let Ok(value) = value.to_str() else {
        return Authentication::Invalid("the Authorization header is not valid text".to_owned());
    };
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if credentials.starts_with(token::PREFIX) {
            authenticate_api_token(state, credentials).await
        } else {
            authenticate_jwt(state, credentials).await
        }
    } else if scheme.eq_ignore_ascii_case("basic") {
        // git sends `Basic base64(user:password)`; the password is an API token and the
        // user name is ignored, as on GitHub.
        let decoded = STANDARD.decode(credentials).ok().and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|text| text.split_once(':')) {
            Some((_, password)) if password.starts_with(token::PREFIX) => authenticate_api_token(state, password).await,
            _ => Authentication::Invalid(
                "HTTP Basic authentication takes an API token as the password (see `slipway tokens create`)".to_owned(),
            ),
        }
    } else {
        Authentication::Invalid(format!("unsupported authorization scheme {scheme:?}; use Bearer"))
    }
}

async fn authenticate_api_token(state: &AppState, presented: &str) -> Authentication {
    if !token::looks_like_token(presented) {
        return Authentication::Invalid("the API token is malformed".to_owned());
    }
    let digest = token::digest(presented);
    let key = CacheKey::Token(digest.clone());
    let (actor, facts) = match state.auth_cache.get(&key) {
        Some(Cached { actor, token: Some(facts), .. }) => (actor, facts),
        _ => {
            let owner = match state.store.token_owner(&digest).await {
                Ok(owner) => owner,
                Err(StoreError::NotFound) => {
                    return Authentication::Invalid("the API token is not valid (revoked or never issued)".to_owned());
                }
                Err(err) => {
                    tracing::error!(%err, "looking up an API token");
                    return Authentication::Invalid("credentials could not be checked; try again".to_owned());
                }
            };
            let actor = Actor { user_id: owner.user_id, username: owner.username, is_admin: owner.is_admin };
            let facts =
                TokenFacts { id: owner.token_id, expires_at: owner.expires_at, last_used_at: owner.last_used_at };
            state.auth_cache.insert(key.clone(), actor.clone(), Some(facts));
            (actor, facts)
        }
    };
    let now = now_ms();
    if let Some(expires_at) = facts.expires_at.filter(|at| *at <= now) {
        return Authentication::Invalid(format!("the API token expired at {}", rfc3339(expires_at)));
    }
    if facts.last_used_at.is_none_or(|at| now - at >= TOUCH_INTERVAL_MS) {
        state.auth_cache.mark_used(&key, now);
        let store = state.store.clone();
        // Recording use must not slow the request down.
        tokio::spawn(async move {
            if let Err(err) = store.touch_token(facts.id, now).await {
                tracing::warn!(%err, "recording API token use");
            }
        });
    }
    Authentication::Authenticated(actor)
}

async fn authenticate_jwt(state: &AppState, presented: &str) -> Authentication {
    let session = match state.jwt.verify(presented) {
        Ok(session) => session,
        Err(err) => {
            use jsonwebtoken::errors::ErrorKind;
            let why = match err.kind() {
                ErrorKind::ExpiredSignature => "the session token expired; sign in again",
                ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => "the session token was not issued for Slipway",
                ErrorKind::InvalidSignature => "the session token's signature does not verify",
                ErrorKind::InvalidAlgorithm => "the session token uses an algorithm Slipway does not accept",
                _ => "the session token is malformed",
            };
            return Authentication::Invalid(why.to_owned());
        }
    };
    let key = CacheKey::Session(session.jti.clone());
    if let Some(hit) = state.auth_cache.get(&key) {
        return Authentication::Authenticated(hit.actor);
    }
    // The token names the user; their current role, and whether the session still
    // stands (not signed out, not from before a password change), come from the
    // database (or the short-lived cache that such changes evict on every replica).
    let user = match state.store.user_by_id(session.user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => {
            return Authentication::Invalid("the session token's user no longer exists".to_owned());
        }
        Err(err) => {
            tracing::error!(%err, "loading the user of a session token");
            return Authentication::Invalid("credentials could not be checked; try again".to_owned());
        }
    };
    if session.issued_ms <= user.sessions_after {
        return Authentication::Invalid("the session ended when the password changed; sign in again".to_owned());
    }
    match state.store.session_revoked(&session.jti).await {
        Ok(false) => {}
        Ok(true) => return Authentication::Invalid("the session was signed out; sign in again".to_owned()),
        Err(err) => {
            tracing::error!(%err, "checking a session's revocation");
            return Authentication::Invalid("credentials could not be checked; try again".to_owned());
        }
    }
    let actor = Actor { user_id: user.id, username: user.username, is_admin: user.is_admin };
    state.auth_cache.insert(key, actor.clone(), None);
    Authentication::Authenticated(actor)
}

impl<S> FromRequestParts<S> for Actor
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.extensions.get::<Authentication>() {
            return auth.clone().into_actor();
        }
        let state = AppState::from_ref(state);
        authenticate(&state, &parts.headers).await.into_actor()
    }
}

/// The address a request came from (the TCP peer; `0.0.0.0` when the server was not
/// given connection info, as in in-process tests). What login throttles by.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddress(peer.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))))
    }
}
