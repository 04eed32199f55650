//! Config vars and secrets of an environment: read them (a secret's value never leaves
//! once set), change them as one new config version, and roll each change out as a new
//! release of the current image. Reading takes the owning team too: config holds
//! internal URLs and settings the rest of the company need not see.

use slipway_api::{Config, ConfigChange, ConfigChanged, ConfigVar};
use slipway_core::config::{ConfigError, ConfigSnapshot, StoredVar, seal_context, validate_key, validate_value};
use slipway_core::policy::Action;
use slipway_store::StoreError;
use slipway_store::config::ConfigVersionRow;

use crate::access::require_in_team;
use crate::clock::{now_ms, rfc3339};
use crate::enqueue::queue_redeploy;
use crate::lookup::find_environment;
use crate::lookup::find_service;
use crate::runs::get_run;
use crate::{Actor, AppState, Result, ServiceError};

/// How often a change is recomputed when another change took its version first.
const ATTEMPTS: usize = 5;

fn parse(row: Option<&ConfigVersionRow>) -> Result<ConfigSnapshot> {
    match row {
        None => Ok(ConfigSnapshot::default()),
        Some(row) => serde_json::from_str(&row.vars)
            .map_err(|e| ServiceError::internal_from(format!("config v{} is unreadable", row.version), e)),
    }
}

fn to_api(row: Option<&ConfigVersionRow>, snapshot: ConfigSnapshot) -> Config {
    Config {
        version: row.map_or(0, |r| u32::try_from(r.version).unwrap_or(0)),
        vars: snapshot
            .vars
            .into_iter()
            .map(|(key, var)| ConfigVar { key, value: (!var.secret).then_some(var.value), secret: var.secret })
            .collect(),
        updated_by: row.map(|r| r.created_by.clone()),
        updated_at: row.map(|r| rfc3339(r.created_at)),
    }
}

fn invalid(err: ConfigError) -> ServiceError {
    let field = match &err {
        ConfigError::BadKey { key }
        | ConfigError::ReservedKey { key }
        | ConfigError::ValueTooLong { key }
        | ConfigError::ValueHasNul { key }
        | ConfigError::SecretTooShort { key }
        | ConfigError::Duplicate { key } => format!("set.{key}"),
        // Nothing by that name to unset: the request names something absent.
        ConfigError::NotSet { .. } => return ServiceError::Absent(err.to_string()),
        ConfigError::TooMany { .. } | ConfigError::Empty => "set".to_owned(),
    };
    ServiceError::invalid(field, err.to_string())
}

pub async fn get_config(state: &AppState, actor: &Actor, service: &str, env: &str) -> Result<Config> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    let row = state.store.latest_config(env.id).await?;
    let snapshot = parse(row.as_ref())?;
    Ok(to_api(row.as_ref(), snapshot))
}

/// Applies one change as a new config version and, when the environment runs a release,
/// queues a deploy of that release's image with the new config.
pub async fn change_config(
    state: &AppState,
    actor: &Actor,
    service: &str,
    env: &str,
    change: ConfigChange,
) -> Result<ConfigChanged> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    for key in change.set.keys().chain(&change.unset) {
        validate_key(key).map_err(invalid)?;
    }
    let key = &state.engine.config().secret_key;
    let mut set = Vec::with_capacity(change.set.len());
    for (name, value) in &change.set {
        validate_value(name, value, change.secret).map_err(invalid)?;
        let stored = if change.secret { key.seal(value, &seal_context(env.id, name)) } else { value.clone() };
        set.push((name.clone(), StoredVar { value: stored, secret: change.secret }));
    }

    let mut attempt = 0;
    let (row, snapshot) = loop {
        attempt += 1;
        let latest = state.store.latest_config(env.id).await?;
        let next = parse(latest.as_ref())?.apply(set.clone(), &change.unset).map_err(invalid)?;
        let version = latest.as_ref().map_or(0, |r| r.version) + 1;
        let vars = serde_json::to_string(&next).map_err(|e| ServiceError::internal_from("encoding JSON", e))?;
        match state.store.insert_config_version(env.id, version, &vars, &actor.username, now_ms()).await {
            Ok(()) => break (state.store.config_version(env.id, version).await?, next),
            Err(StoreError::Conflict) if attempt < ATTEMPTS => continue,
            Err(StoreError::Conflict) => {
                return Err(ServiceError::Conflict("the config is changing too often; try again".to_owned()));
            }
            Err(err) => return Err(err.into()),
        }
    };

    let run = match env.current_release {
        Some(release_id) => {
            let release = state.store.release_by_id(release_id).await?;
            let run_id = queue_redeploy(state, actor, &service, &env, &release, "config").await?;
            Some(get_run(state, actor, run_id).await?)
        }
        None => None,
    };
    Ok(ConfigChanged { config: to_api(Some(&row), snapshot), run })
}

/// Makes config `version` the newest again (as a new version with the same contents), so
/// a rollback runs with the config its release ran with. Nothing changes when it already is.
pub(crate) async fn restore_config(state: &AppState, actor: &Actor, environment_id: i64, version: i32) -> Result<()> {
    for _ in 0..ATTEMPTS {
        let latest = state.store.latest_config(environment_id).await?;
        let latest_version = latest.as_ref().map_or(0, |r| r.version);
        if latest_version == version {
            return Ok(());
        }
        let vars = match version {
            0 => "{}".to_owned(),
            v => state.store.config_version(environment_id, v).await?.vars,
        };
        match state
            .store
            .insert_config_version(environment_id, latest_version + 1, &vars, &actor.username, now_ms())
            .await
        {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(ServiceError::Conflict("the config is changing too often; try again".to_owned()))
}
