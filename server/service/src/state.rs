//! What every request handler can reach: the store, the signing keys and the settings.

use std::sync::Arc;

use axum::extract::FromRef;
use slipway_store::Store;

use crate::auth::jwt::JwtKeys;
use crate::auth::throttle::LoginThrottle;

/// Settings the use cases need from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The URL users reach this server at, e.g. `http://127.0.0.1:7700`; used to show
    /// git remotes.
    pub public_url: String,
}

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<Settings>,
    pub login_throttle: Arc<LoginThrottle>,
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Store {
        state.store.clone()
    }
}
