//! The engine handle and the state it shares. Its fields are private to this module:
//! other modules reach shared pieces through the accessors below, and each module's own
//! state lives in a struct that module defines (`worker::Queue`, `reconcile::Repair`,
//! `kubernetes::Clusters`, `images::Images`).

use std::sync::Arc;

use slipway_store::Store;

use crate::{Builder, EngineConfig, EngineDown, Hub, LocalEngine, images, kubernetes, reconcile, router, worker};

/// The engine: shared by the API (enqueue, cancel), the git receiver and the workers.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    hub: Hub,
    builder: Arc<dyn Builder>,
    /// The local runtime (the same engine API as the builder).
    local: LocalEngine,
    routes: Arc<router::Routes>,
    /// One deploy or reconcile at a time per environment.
    environment_locks: std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    config: EngineConfig,
    /// The last background check of the local engine (see [`Engine::local_engine_answers`]).
    engine_answer: std::sync::Mutex<Option<Result<(), EngineDown>>>,
    queue: worker::Queue,
    repair: reconcile::Repair,
    clusters: kubernetes::Clusters,
    images: images::Images,
    /// The background loops (see `supervise`).
    tasks: crate::supervise::Supervisor,
    /// Where every environment runs instead, in tests (see `fake`).
    #[cfg(feature = "fake-runtime")]
    fake: Option<Arc<crate::fake::FakeRuntime>>,
}

impl Engine {
    pub fn new(store: Store, local: LocalEngine, config: EngineConfig) -> Engine {
        let local = local.on_network(format!("slipway-{}", config.secret_key.installation_id()));
        Engine {
            inner: Arc::new(Inner {
                store,
                hub: Hub::default(),
                builder: Arc::new(local.clone()),
                local,
                routes: Arc::new(router::Routes::with_clock(config.clock.clone())),
                environment_locks: std::sync::Mutex::default(),
                engine_answer: std::sync::Mutex::default(),
                queue: worker::Queue::default(),
                repair: reconcile::Repair::default(),
                clusters: kubernetes::Clusters::default(),
                images: images::Images::new(&config),
                tasks: crate::supervise::Supervisor::default(),
                #[cfg(feature = "fake-runtime")]
                fake: None,
                config,
            }),
        }
    }

    /// An engine whose environments all run on `fake` (no container engine is used:
    /// `local` is a client of none, and `config.local_engine_down` should say so).
    #[cfg(feature = "fake-runtime")]
    pub fn with_fake_runtime(
        store: Store,
        local: LocalEngine,
        config: EngineConfig,
        fake: Arc<crate::fake::FakeRuntime>,
    ) -> Engine {
        let mut engine = Engine::new(store, local, config);
        if let Some(inner) = Arc::get_mut(&mut engine.inner) {
            inner.fake = Some(fake);
        }
        engine
    }

    #[cfg(feature = "fake-runtime")]
    pub(crate) fn fake(&self) -> Option<&crate::fake::FakeRuntime> {
        self.inner.fake.as_deref()
    }

    /// The lock that serialises deploys and reconciles of one environment.
    pub(crate) fn environment_lock(&self, environment_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        crate::locked(&self.inner.environment_locks).entry(environment_id).or_default().clone()
    }

    /// The app router's table.
    pub fn routes(&self) -> Arc<router::Routes> {
        self.inner.routes.clone()
    }

    pub(crate) fn route_table(&self) -> &router::Routes {
        &self.inner.routes
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn builder(&self) -> &Arc<dyn Builder> {
        &self.inner.builder
    }

    /// The local container engine's client.
    pub(crate) fn local(&self) -> &LocalEngine {
        &self.inner.local
    }

    pub(crate) fn engine_answer(&self) -> &std::sync::Mutex<Option<Result<(), EngineDown>>> {
        &self.inner.engine_answer
    }

    pub(crate) fn queue(&self) -> &worker::Queue {
        &self.inner.queue
    }

    pub(crate) fn repair(&self) -> &reconcile::Repair {
        &self.inner.repair
    }

    pub(crate) fn clusters(&self) -> &kubernetes::Clusters {
        &self.inner.clusters
    }

    pub(crate) fn images(&self) -> &images::Images {
        &self.inner.images
    }

    /// Runs a background loop under this engine's supervisor: restarted when it dies,
    /// ended by [`Engine::drain`] (see `supervise`).
    pub fn supervise<F, Fut>(&self, name: &'static str, start: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(name, start);
    }

    pub(crate) fn tasks(&self) -> &crate::supervise::Supervisor {
        &self.inner.tasks
    }
}
