//! What every request handler can reach: the store, the signing keys and the settings.

use std::sync::Arc;

use axum::extract::FromRef;
use slipway_store::Store;

use crate::auth::cache::AuthCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::throttle::LoginThrottle;

/// Settings the use cases need from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The URL users reach this server at, e.g. `http://127.0.0.1:7700`; used to show
    /// git remotes.
    pub public_url: String,
    /// The data directory (keys, the first admin's password file).
    pub data_dir: std::path::PathBuf,
    /// Where the services' bare git repositories live.
    pub repos_dir: std::path::PathBuf,
    /// The `git` program.
    pub git: std::path::PathBuf,
    /// This replica's own address, which git hooks call back (`http://127.0.0.1:PORT`).
    pub hook_url: String,
    /// The app router's domain (`localhost`) and port, for environment URLs.
    pub apps_domain: String,
    pub apps_port: u16,
    /// Where environments run when none is named: `local` or a registered cluster.
    pub default_runtime: String,
    /// Largest build context, in bytes of committed files (`--max-context-mb`).
    pub max_context_bytes: u64,
}

impl Settings {
    /// Where an environment is served: `http://<service>-<env>.<domain>:<port>`.
    pub fn app_url(&self, service: &str, environment: &str) -> String {
        if self.apps_port == 80 {
            format!("http://{service}-{environment}.{}", self.apps_domain)
        } else {
            format!("http://{service}-{environment}.{}:{}", self.apps_domain, self.apps_port)
        }
    }
}

/// Shared state: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<Settings>,
    pub login_throttle: Arc<LoginThrottle>,
    pub auth_cache: Arc<AuthCache>,
    pub engine: slipway_engine::Engine,
    pub push_grants: Arc<crate::pipeline::PushGrants>,
    /// Serializes the create and delete of one service name's repository.
    pub service_names: Arc<crate::locks::NameLocks>,
}

impl FromRef<AppState> for Store {
    fn from_ref(state: &AppState) -> Store {
        state.store.clone()
    }
}

impl AppState {
    /// Builds the state with empty caches.
    pub fn new(store: Store, jwt: JwtKeys, settings: Settings, engine: slipway_engine::Engine) -> AppState {
        AppState {
            store,
            jwt: Arc::new(jwt),
            settings: Arc::new(settings),
            login_throttle: Arc::new(LoginThrottle::default()),
            auth_cache: Arc::new(AuthCache::default()),
            engine,
            push_grants: Arc::default(),
            service_names: Arc::default(),
        }
    }

    /// A credential changed (a notice of `auth::cache`): forgotten here at once, and on
    /// the other replicas through the store's notifications.
    pub async fn credentials_changed(&self, notice: &str) {
        self.auth_cache.apply(notice);
        if let Err(err) = self.store.publish_auth_change(notice).await {
            tracing::warn!(%err, %notice, "telling other replicas of a credential change");
        }
    }

    /// Keeps the credential cache in step with other replicas until the process ends,
    /// from a subscription made before the server answers its first request (made inside
    /// this task, a revocation published meanwhile was missed and the revoked credential
    /// stayed cached for the cache's lifetime). Spawned once at start; returns at once on
    /// SQLite.
    pub async fn follow_auth_changes(
        self,
        subscription: slipway_store::Result<Option<slipway_store::notify::Subscription>>,
    ) {
        use slipway_store::notify::Notice;
        let mut subscription = match subscription {
            Ok(Some(subscription)) => subscription,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(%err, "cannot subscribe to credential changes; caching credentials is off");
                self.auth_cache.disable();
                return;
            }
        };
        while let Some(notice) = subscription.next().await {
            match notice {
                Notice::Message(message) => self.auth_cache.apply(&message),
                Notice::Lost => self.auth_cache.clear(),
            }
        }
        self.auth_cache.disable();
    }
}
