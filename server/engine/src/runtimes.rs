//! Where an environment's workloads run, behind one trait: the machine's own container
//! engine ([`Local`]) or a registered cluster ([`Cluster`]). The deploy stage, the
//! reconcile loop and tear-downs ask [`Engine::runtime_of`] and call the trait; they do
//! not branch on the runtime's name.

use slipway_core::template::Spec;
use slipway_store::environments::EnvironmentState;
use slipway_store::runs::RunRow;

use crate::logger::RunLog;
use crate::{Engine, EngineError};

/// What a deploy rolls out, built once (`deploy::deploy`) for whichever runtime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DesiredRelease<'a> {
    pub run: &'a RunRow,
    pub state: &'a EnvironmentState,
    /// The environment's spec made concrete for this build (`workloads::effective`).
    pub spec: &'a Spec,
    /// Config vars and add-on URLs.
    pub vars: &'a [(String, String)],
    pub config_version: i32,
    pub release_command: Option<&'a str>,
}

/// A place environments run.
pub(crate) trait Runtime {
    /// Rolls `desired` out, waits until it serves, records the release and answers the
    /// line to log; on failure the previous release keeps serving. `deadline` bounds the
    /// local rollout; a cluster's is bounded step by step inside, so that a failing
    /// rollout still rolls back.
    async fn apply(
        &self,
        engine: &Engine,
        desired: &DesiredRelease<'_>,
        log: &RunLog,
        deadline: tokio::time::Instant,
    ) -> Result<String, crate::DeployError>;

    /// Keeps what runs equal to the environment's current release (replicas restarted,
    /// routes set, drift repaired). Called with the environment's lock held.
    async fn reconcile(&self, engine: &Engine, state: &EnvironmentState) -> Result<(), crate::DeployError>;

    /// The environment's replicas as this runtime last saw them: ready (here the router's
    /// healthy replicas), desired (an autoscaler's count when it has one) and a failing
    /// condition, if any.
    fn status(&self, engine: &Engine, state: &EnvironmentState) -> crate::Workload;

    /// Whether a release's image can still be deployed again (a rollback): the local
    /// engine collects old images; a cluster pulls from the registry.
    async fn has_image(&self, engine: &Engine, image: &str) -> bool;

    /// Whether add-ons run from the release's own objects (a cluster's StatefulSets, kept
    /// running by its controllers): the engine then only records their passwords and
    /// addresses. Otherwise the engine starts and keeps their containers.
    fn addons_in_release(&self) -> bool;

    /// Whether the app router serves the environment (and counts its traffic).
    /// By default the router does (a runtime of this machine).
    fn routed_here(&self) -> bool {
        true
    }

    /// Where the environment is served; `router_url` is the app router's URL for it,
    /// the default.
    async fn url(&self, _engine: &Engine, _state: &EnvironmentState, router_url: String) -> String {
        router_url
    }

    /// Why this runtime cannot hold an environment of this name, if it cannot (a
    /// cluster's namespace name is at most 63 characters); by default any valid name.
    fn name_problem(&self, _service: &str, _environment: &str) -> Option<String> {
        None
    }

    /// Removes everything the environment runs (it is being destroyed). Called with the
    /// environment's lock held.
    async fn tear_down(
        &self,
        engine: &Engine,
        environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError>;
}

/// The local container engine (`LocalEngine`): replicas behind the app router.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local;

/// A registered Kubernetes cluster, by name: objects applied with server-side apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cluster<'a>(pub &'a str);

/// The runtime of one environment.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RuntimeOf<'a> {
    Local(Local),
    Cluster(Cluster<'a>),
    #[cfg(feature = "fake-runtime")]
    Fake(&'a crate::fake::FakeRuntime),
}

impl Engine {
    /// An environment's replicas as its runtime last saw them (see [`Runtime::status`]).
    pub fn environment_status(&self, state: &EnvironmentState) -> crate::Workload {
        self.runtime_of(&state.runtime).status(self, state)
    }

    /// Whether a release's image of this environment can be deployed again.
    pub async fn release_image_available(&self, state: &EnvironmentState, image: &str) -> bool {
        self.runtime_of(&state.runtime).has_image(self, image).await
    }

    /// Where an environment is served: `router_url` (the app router's URL for it) here,
    /// or its Ingress host on a cluster.
    pub async fn environment_url(&self, state: &EnvironmentState, router_url: String) -> String {
        self.runtime_of(&state.runtime).url(self, state, router_url).await
    }

    /// How long a retired replica may finish what it serves: the spec's
    /// `policy.drain_seconds`, else `--drain-seconds`.
    pub(crate) fn drain_of(&self, spec: &Spec) -> std::time::Duration {
        spec.policy.drain_seconds.map_or(self.config().drain, |s| std::time::Duration::from_secs(u64::from(s)))
    }

    /// Whether the app router serves an environment (and counts its traffic).
    pub fn routed_here(&self, state: &EnvironmentState) -> bool {
        self.runtime_of(&state.runtime).routed_here()
    }

    /// Why an environment of this name cannot run on `runtime`, if it cannot.
    pub fn environment_name_problem(&self, runtime: &str, service: &str, environment: &str) -> Option<String> {
        self.runtime_of(runtime).name_problem(service, environment)
    }

    /// The runtime an environment's `runtime` field names: `local` (the column's default),
    /// or a registered cluster's name.
    pub(crate) fn runtime_of<'a>(&'a self, runtime: &'a str) -> RuntimeOf<'a> {
        #[cfg(feature = "fake-runtime")]
        if let Some(fake) = self.fake() {
            return RuntimeOf::Fake(fake);
        }
        if runtime.is_empty() || runtime == crate::LOCAL_RUNTIME {
            RuntimeOf::Local(Local)
        } else {
            RuntimeOf::Cluster(Cluster(runtime))
        }
    }
}

impl Runtime for RuntimeOf<'_> {
    fn status(&self, engine: &Engine, state: &EnvironmentState) -> crate::Workload {
        match self {
            RuntimeOf::Local(local) => local.status(engine, state),
            RuntimeOf::Cluster(cluster) => cluster.status(engine, state),
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.status(engine, state),
        }
    }

    async fn has_image(&self, engine: &Engine, image: &str) -> bool {
        match self {
            RuntimeOf::Local(local) => local.has_image(engine, image).await,
            RuntimeOf::Cluster(cluster) => cluster.has_image(engine, image).await,
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.has_image(engine, image).await,
        }
    }

    fn addons_in_release(&self) -> bool {
        match self {
            RuntimeOf::Local(local) => local.addons_in_release(),
            RuntimeOf::Cluster(cluster) => cluster.addons_in_release(),
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.addons_in_release(),
        }
    }

    async fn url(&self, engine: &Engine, state: &EnvironmentState, router_url: String) -> String {
        match self {
            RuntimeOf::Local(local) => local.url(engine, state, router_url).await,
            RuntimeOf::Cluster(cluster) => cluster.url(engine, state, router_url).await,
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.url(engine, state, router_url).await,
        }
    }

    fn routed_here(&self) -> bool {
        match self {
            RuntimeOf::Local(local) => local.routed_here(),
            RuntimeOf::Cluster(cluster) => cluster.routed_here(),
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.routed_here(),
        }
    }

    fn name_problem(&self, service: &str, environment: &str) -> Option<String> {
        match self {
            RuntimeOf::Local(local) => local.name_problem(service, environment),
            RuntimeOf::Cluster(cluster) => cluster.name_problem(service, environment),
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.name_problem(service, environment),
        }
    }

    async fn apply(
        &self,
        engine: &Engine,
        desired: &DesiredRelease<'_>,
        log: &RunLog,
        deadline: tokio::time::Instant,
    ) -> Result<String, crate::DeployError> {
        match self {
            RuntimeOf::Local(local) => local.apply(engine, desired, log, deadline).await,
            RuntimeOf::Cluster(cluster) => cluster.apply(engine, desired, log, deadline).await,
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.apply(engine, desired, log, deadline).await,
        }
    }

    async fn reconcile(&self, engine: &Engine, state: &EnvironmentState) -> Result<(), crate::DeployError> {
        match self {
            RuntimeOf::Local(local) => local.reconcile(engine, state).await,
            RuntimeOf::Cluster(cluster) => cluster.reconcile(engine, state).await,
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.reconcile(engine, state).await,
        }
    }

    async fn tear_down(
        &self,
        engine: &Engine,
        environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        match self {
            RuntimeOf::Local(local) => local.tear_down(engine, environment_id, service, environment).await,
            RuntimeOf::Cluster(cluster) => cluster.tear_down(engine, environment_id, service, environment).await,
            #[cfg(feature = "fake-runtime")]
            RuntimeOf::Fake(fake) => fake.tear_down(engine, environment_id, service, environment).await,
        }
    }
}
