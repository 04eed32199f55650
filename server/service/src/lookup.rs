//! Loading what a request names, or answering 404 naming it as the user wrote it: the
//! one place every use case looks up a service, environment, run, team or user.

use slipway_store::StoreError;
use slipway_store::environments::EnvironmentState;
use slipway_store::runs::RunRow;
use slipway_store::services::ServiceRow;
use slipway_store::teams::TeamRow;
use slipway_store::users::UserRow;

use crate::{AppState, Result, ServiceError};

/// Answers 404 naming `kind` and `name` for a missing row, the store's error otherwise.
fn named<T>(found: std::result::Result<T, StoreError>, kind: &'static str, name: impl Into<String>) -> Result<T> {
    match found {
        Ok(row) => Ok(row),
        Err(StoreError::NotFound) => Err(ServiceError::not_found(kind, name.into())),
        Err(err) => Err(err.into()),
    }
}

/// Loads a service named in a request, or answers 404 naming it.
pub async fn find_service(state: &AppState, name: &str) -> Result<ServiceRow> {
    named(state.store.service_by_name(name).await, "service", name)
}

/// Loads an environment of `service` named in a request, or answers 404 naming both.
pub async fn find_environment(state: &AppState, service: &ServiceRow, name: &str) -> Result<EnvironmentState> {
    let row = match state.store.environment_by_name(service.id, name).await {
        Ok(row) => row,
        Err(StoreError::NotFound) => {
            return Err(ServiceError::Absent(format!(
                "environment {name:?} of service {:?} does not exist",
                service.name.as_str()
            )));
        }
        Err(err) => return Err(err.into()),
    };
    Ok(state.store.environment_state(row.id).await?)
}

/// Loads a run by id, or answers 404.
pub async fn find_run(state: &AppState, id: i64) -> Result<RunRow> {
    named(state.store.run_by_id(id).await, "run", id.to_string())
}

/// Loads a team named in a request, or answers 404 naming it.
pub async fn find_team(state: &AppState, name: &str) -> Result<TeamRow> {
    named(state.store.team_by_name(name).await, "team", name)
}

/// Loads a user named in a request, or answers 404 naming them.
pub async fn find_user(state: &AppState, username: &str) -> Result<UserRow> {
    named(state.store.user_by_name(username).await, "user", username)
}
