//! The config a release's replicas run with: a stored config version opened into
//! environment variables, and the [`Masker`] that hides an environment's secrets in the
//! run log and in `app-logs`.

use slipway_core::config::{ConfigSnapshot, seal_context};
use slipway_core::secrets::SecretKey;
use slipway_store::{Store, StoreError};

/// A config version, opened.
#[derive(Debug, Default)]
pub struct OpenedConfig {
    /// 0 when the environment was never configured.
    pub version: i32,
    pub vars: Vec<(String, String)>,
    pub secrets: Vec<String>,
    /// The names of the secret vars.
    pub secret_keys: Vec<String>,
}

/// Why an environment's config could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConfigOpenError {
    #[error("config v{0} of the environment is missing")]
    Missing(i32),
    #[error("loading the config: {0}")]
    Load(#[source] StoreError),
    #[error("config v{version} is unreadable: {source}")]
    Unreadable { version: i32, source: serde_json::Error },
    #[error("the secret {name}: {source}")]
    Secret { name: String, source: slipway_core::secrets::SecretError },
}

/// Opens `version` of an environment's config (`None`: the newest).
pub async fn open(
    store: &Store,
    key: &SecretKey,
    environment_id: i64,
    version: Option<i32>,
) -> Result<OpenedConfig, ConfigOpenError> {
    let row = match version {
        Some(0) => None,
        Some(v) => match store.config_version(environment_id, v).await {
            Ok(row) => Some(row),
            Err(StoreError::NotFound) => return Err(ConfigOpenError::Missing(v)),
            Err(err) => return Err(ConfigOpenError::Load(err)),
        },
        None => store.latest_config(environment_id).await.map_err(ConfigOpenError::Load)?,
    };
    let Some(row) = row else { return Ok(OpenedConfig::default()) };
    let snapshot: ConfigSnapshot = serde_json::from_str(&row.vars)
        .map_err(|source| ConfigOpenError::Unreadable { version: row.version, source })?;
    let mut opened = OpenedConfig { version: row.version, ..OpenedConfig::default() };
    for (name, var) in snapshot.vars {
        let value = if var.secret {
            let value = key
                .open(&var.value, &seal_context(environment_id, &name))
                .map_err(|source| ConfigOpenError::Secret { name: name.clone(), source })?;
            opened.secrets.push(value.clone());
            opened.secret_keys.push(name.clone());
            value
        } else {
            var.value
        };
        opened.vars.push((name, value));
    }
    Ok(opened)
}

/// The secrets of an environment's newest config and of the config its current release
/// runs with (replicas started before a change still hold the old values).
pub async fn secret_values(store: &Store, key: &SecretKey, environment_id: i64) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Ok(latest) = open(store, key, environment_id, None).await {
        secrets.extend(latest.secrets);
    }
    let running = match store.environment_state(environment_id).await {
        Ok(state) => match state.current_release {
            Some(id) => store.release_by_id(id).await.ok().map(|r| r.config_version),
            None => None,
        },
        Err(_) => None,
    };
    if let Some(version) = running
        && let Ok(config) = open(store, key, environment_id, Some(version)).await
    {
        secrets.extend(config.secrets);
    }
    secrets
}
