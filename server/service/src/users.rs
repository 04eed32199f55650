//! Signing in, the current user, and user accounts (created by admins).

use slipway_api::{ChangePassword, CreateUser, CurrentUser, LoginRequest, LoginResponse, Membership, Page, User};
use slipway_core::Username;
use slipway_core::policy::Action;
use slipway_store::StoreError;
use slipway_store::users::UserRow;

use crate::access::require_platform;
use crate::auth::password::{DUMMY_HASH, hash_password, validate_password, verify_password};
use crate::clock::{now_ms, rfc3339};
use crate::lookup::find_user;
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

pub(crate) fn to_api(row: UserRow) -> User {
    User { username: row.username, admin: row.is_admin, created_at: rfc3339(row.created_at) }
}

/// Checks a username and password; answers a session token.
pub async fn login(state: &AppState, req: LoginRequest, from: std::net::IpAddr) -> Result<LoginResponse> {
    let wrong = || ServiceError::Unauthenticated("wrong username or password".to_owned());
    state.login_throttle.check(&req.username, from)?;
    let user = match state.store.user_by_name(&req.username).await {
        Ok(user) => Some(user),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    // Verify against a dummy hash for unknown users so timing does not reveal who exists.
    let stored = user.as_ref().map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let matches = verify_password(req.password, stored).await?;
    let user = user.filter(|_| matches).ok_or_else(wrong)?;
    new_session(state, user, now_ms())
}

fn new_session(state: &AppState, user: UserRow, at_ms: i64) -> Result<LoginResponse> {
    let (token, exp) =
        state.jwt.issue(user.id, at_ms).map_err(|e| ServiceError::internal_from("signing a session token", e))?;
    Ok(LoginResponse { token, expires_at: rfc3339(exp * 1000), user: to_api(user) })
}

/// Ends the session of `presented` (a session token) on every replica: its id is
/// revoked in the database until the token would have expired anyway.
pub async fn sign_out(state: &AppState, presented: &str) -> Result<()> {
    use crate::auth::cache::session_notice;
    if presented.starts_with(crate::auth::token::PREFIX) {
        return Err(ServiceError::invalid(
            "authorization",
            "signing out ends a session; an API token is revoked with `slipway tokens revoke NAME`",
        ));
    }
    let session = state
        .jwt
        .verify(presented)
        .map_err(|_| ServiceError::Unauthenticated("sign out takes a valid session token".to_owned()))?;
    state.store.revoke_session(&session.jti, session.exp, now_ms() / 1000).await?;
    state.credentials_changed(&session_notice(&session.jti)).await;
    Ok(())
}

/// Changes the caller's own password after checking the current one. Every session of
/// theirs issued before ends (API tokens stay: revoke those with `slipway tokens`);
/// the answer is a new session. The admin's first password file goes once it is stale.
pub async fn change_password(
    state: &AppState,
    actor: &Actor,
    req: ChangePassword,
    from: std::net::IpAddr,
) -> Result<LoginResponse> {
    use crate::auth::cache::user_notice;
    state.login_throttle.check(&actor.username, from)?;
    let user = state.store.user_by_id(actor.user_id).await?;
    if !verify_password(req.current_password, user.password_hash.clone()).await? {
        return Err(ServiceError::invalid("current_password", "the current password is wrong"));
    }
    validate_password(&req.new_password).map_err(|e| match e {
        ServiceError::Invalid { message, .. } => ServiceError::invalid("new_password", message),
        other => other,
    })?;
    let hash = hash_password(req.new_password).await?;
    let changed_at = now_ms();
    state.store.set_password(user.id, &hash, changed_at).await?;
    state.credentials_changed(&user_notice(user.id)).await;
    if user.username == crate::bootstrap::INITIAL_ADMIN {
        let file = state.settings.data_dir.join(crate::bootstrap::INITIAL_PASSWORD_FILE);
        match std::fs::remove_file(&file) {
            Ok(()) => tracing::info!(file = %file.display(), "removed the first admin password, now changed"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(%err, file = %file.display(), "removing the first admin password"),
        }
    }
    // Strictly after the change, even within the same millisecond.
    new_session(state, user, now_ms().max(changed_at + 1))
}

pub async fn current_user(state: &AppState, actor: &Actor) -> Result<CurrentUser> {
    let teams = state.store.memberships(actor.user_id).await?;
    Ok(CurrentUser {
        username: actor.username.clone(),
        admin: actor.is_admin,
        teams: teams.into_iter().map(|m| Membership { team: m.team, role: m.role }).collect(),
    })
}

pub async fn create_user(state: &AppState, actor: &Actor, req: CreateUser) -> Result<User> {
    require_platform(actor, Action::ManageUsers)?;
    let name = Username::parse(&req.username).map_err(|e| ServiceError::invalid_name("username", &req.username, e))?;
    validate_password(&req.password)?;
    let hash = hash_password(req.password).await?;
    match state.store.create_user(name.as_str(), &hash, req.admin, now_ms()).await {
        Ok(row) => Ok(to_api(row)),
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!("user {name:?} already exists"))),
        Err(err) => Err(err.into()),
    }
}

pub async fn list_users(state: &AppState, _actor: &Actor, params: &PageParams) -> Result<Page<User>> {
    let page = PageRequest::parse(params)?;
    let rows = state.store.list_users(&page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |u| u.username.clone());
    Ok(Page { items: rows.into_iter().map(to_api).collect(), next_cursor })
}

pub async fn get_user(state: &AppState, _actor: &Actor, username: &str) -> Result<User> {
    find_user(state, username).await.map(to_api)
}
