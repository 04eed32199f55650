//! What can go wrong talking to the local container engine (Podman or Docker through its
//! API). Each `Display` is the line a run's log, an API answer or the server's log shows;
//! the client's error stays reachable as the `source`.

use std::time::Duration;

/// An error of the local container engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unsupported engine address {0:?}")]
    Address(String),
    /// An engine API call failed (`action` says which: "creating slipway-shop-…").
    #[error("{action}: {source}")]
    Api { action: String, source: bollard::errors::Error },
    #[error("cannot reach the container engine: {0}")]
    Connect(#[source] std::io::Error),
    #[error("the container engine's connection failed: {0}")]
    Http(#[source] hyper::Error),
    #[error("the container engine answered {status} to {path}")]
    Status { path: String, status: hyper::StatusCode },
    #[error("reading the engine's {what}: {source}")]
    Unreadable { what: &'static str, source: serde_json::Error },
    #[error("the engine did not answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    /// A replica that stopped while it should have kept running.
    #[error("{0} exited as soon as it started; does the image's CMD run a server in the foreground?")]
    ExitedAtStart(String),
    #[error("it exited; does its command run in the foreground?")]
    Exited,
    #[error("GET {path} did not answer healthy within {} s ({last})", .within.as_secs())]
    Unhealthy { path: String, within: Duration, last: String },
    /// A one-off command (the release phase) outran its limit.
    #[error("it did not finish within {} s (--release-timeout)", .0.as_secs())]
    CommandTimedOut(Duration),
    #[error("the engine did not report how the command ended")]
    NoExit,
    /// The environment runs on a cluster, and the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::kubernetes::KubeError),
    #[error("{action}: {source}")]
    Store { action: String, source: slipway_store::StoreError },
}

/// Why the local container engine cannot be used now (its last check's answer, kept for
/// `/readyz`, or why this process started without one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineDown(pub String);

impl EngineError {
    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        let action = action.into();
        move |source| EngineError::Api { action, source }
    }
}

/// An error provisioning, opening or keeping an environment's add-ons.
#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("{action}: {source}")]
    Store { action: String, source: slipway_store::StoreError },
    #[error("the {kind} add-on's password: {source}")]
    Password { kind: String, source: slipway_core::secrets::SecretError },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{0} published no port")]
    NoPort(String),
    #[error("it did not answer on {addr} within {} s", .within.as_secs())]
    NotAnswering { addr: String, within: Duration },
    #[error("it was not ready within {} s (--addon-timeout)", .0.as_secs())]
    NotReady(Duration),
    /// Starting one add-on failed; `source` says how.
    #[error("the {kind} add-on ({image}): {source}")]
    Start { kind: &'static str, image: String, source: Box<AddonError> },
}

impl AddonError {
    pub(crate) fn store(action: impl Into<String>) -> impl FnOnce(slipway_store::StoreError) -> AddonError {
        let action = action.into();
        move |source| AddonError::Store { action, source }
    }
}

/// Why a deploy, or a pass of the reconcile loop over one environment, failed. Its
/// `Display` is the line the run's log and reason show (a rollout's ends with what still
/// serves); the error underneath stays reachable as the `source`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The rollout's own account: a replica that did not get healthy, a step out of time,
    /// a release command that failed, a quota, with what still serves.
    #[error("{0}")]
    Rollout(String),
    #[error(transparent)]
    NoEngine(#[from] EngineDown),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Cluster(#[from] crate::kubernetes::KubeError),
    #[error(transparent)]
    Addon(#[from] AddonError),
    #[error(transparent)]
    Config(#[from] crate::config_vars::ConfigOpenError),
    #[error(transparent)]
    Spec(#[from] slipway_core::workloads::SpecError),
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
}

/// A rollout's own account, in its words.
impl From<String> for DeployError {
    fn from(line: String) -> DeployError {
        DeployError::Rollout(line)
    }
}
