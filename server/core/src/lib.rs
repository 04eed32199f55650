//! Slipway's domain model: validated names, roles, catalog fields and the one ownership
//! policy every entry point (API, portal, git) asks. Nothing here does IO, so every rule
//! is a plain function tested in isolation.
//!
//! Start with [`policy::authorize`]: it is the single place that decides who may do what.

pub mod build_inputs;
pub mod catalog;
pub mod catalog_info;
pub mod clock;
pub mod config;
pub mod dora;
pub mod names;
pub mod policy;
pub mod repo_config;
pub mod roles;
pub mod run;
pub mod secrets;
pub mod template;
pub mod traffic;
pub mod workloads;

pub use names::{NameError, ServiceName, TeamName, Username};
pub use roles::{PlatformRole, TeamRole};
