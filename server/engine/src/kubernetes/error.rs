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
    #[error("reading {what}: {source}")]
    Read { what: String, source: kube::Error },
    /// Pods that cannot become ready (`ImagePullBackOff`, `CrashLoopBackOff`, …), as the
    /// cluster words it.
    #[error("{0}")]
    PodTrouble(String),
    #[error("deployment {name}: ProgressDeadlineExceeded: {message}")]
    ProgressDeadline { name: String, message: String },
    #[error("the rollout did not complete within {} s", .0.as_secs())]
    RolloutTimedOut(std::time::Duration),
    #[error("add-on(s) {} not ready within {} s", .waiting.join(", "), .within.as_secs())]
    AddonsNotReady { waiting: Vec<String>, within: std::time::Duration },
    #[error("namespace {ns} is not labelled as environment {environment} of service {service}; it was left alone")]
    NotOurs { ns: String, service: String, environment: String },
    #[error("deleting namespace {ns}: {source}")]
    DeleteNamespace { ns: String, source: kube::Error },
    #[error("namespace {ns} is still terminating after {} s", .within.as_secs())]
    StillTerminating { ns: String, within: std::time::Duration },
}
