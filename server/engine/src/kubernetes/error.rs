//! What can go wrong talking to a cluster. Each `Display` is the line a run's log or an
//! API answer shows; the client's error stays reachable as the `source`.

/// An error of the Kubernetes runtime.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("the kubeconfig does not parse: {0}")]
    Unparsable(#[source] kube::config::KubeconfigError),
    #[error("the kubeconfig has no current-context; give --context")]
    NoCurrentContext,
    #[error("the kubeconfig has no context {0:?}")]
    NoSuchContext(String),
    #[error("context {0:?} names no cluster with a server")]
    NoServer(String),
    #[error("the kubeconfig's context {context:?} cannot be used: {source}")]
    Unusable { context: String, source: kube::config::KubeconfigError },
    #[error("no client for the cluster: {0}")]
    Client(#[source] kube::Error),
    #[error("cluster {name}: {source}")]
    Registration { name: String, source: slipway_store::StoreError },
    #[error("the kubeconfig of cluster {name} cannot be opened: {source}")]
    Sealed { name: String, source: slipway_core::secrets::SecretError },
    #[error("applying {object}: {source}")]
    Apply { object: String, source: kube::Error },
    #[error("reading job {name}: {source}")]
    ReadJob { name: String, source: kube::Error },
    #[error("the release command failed: {0}")]
    ReleaseFailed(String),
    #[error("the release command did not finish within {0} s")]
    ReleaseTimedOut(u64),
}
