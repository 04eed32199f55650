//! Slipway's use cases, shared by the REST API, the portal and the git endpoint: each
//! public function checks the policy, validates input, changes the store and returns
//! the API's types. Handlers stay thin by calling exactly one of them.
//!
//! Start with [`AppState`] (what every request can reach), [`Actor`] (who is asking)
//! and [`ServiceError`] (everything that can go wrong, mapped to HTTP in one place).

pub mod access;
pub mod actor;
pub mod audit;
pub mod auth;
pub mod backstage;
pub mod bootstrap;
pub mod catalog;
pub mod catalog_import;
pub mod clock;
pub mod clusters;
pub mod config;
pub mod enqueue;
pub mod environments;
pub mod error;
pub mod extract;
pub mod git_access;
pub mod json;
pub mod locks;
pub mod lookup;
pub mod pagination;
pub mod pipeline;
pub mod quotas;
pub mod reaper;
pub mod runs;
pub mod services;
pub mod state;
pub mod teams;
pub mod templates;
pub mod tokens;
pub mod users;

pub use actor::Actor;
pub use error::ServiceError;
pub use extract::{ApiPath, ApiQuery};
pub use json::ApiJson;
pub use state::{AppState, Settings};

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
