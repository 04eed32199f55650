//! Slipway's pipeline engine. A run is stored before any work starts (see
//! slipway-store's `runs`); workers here claim queued runs with a lease, run their stages
//! (`build`, then `push` when a registry is configured), write every log line to the
//! database in batches and fan the lines out live through the [`hub::Hub`], so the
//! pusher's terminal, the CLI and the portal all see the same stream.
//!
//! Start with [`Engine`]: [`Engine::start`] recovers runs a previous process left behind
//! and spawns the workers; [`Engine::wake`] tells them a run was queued.

pub mod addons;
pub mod build;
pub mod config_vars;
pub mod containers;
pub mod context;
mod deploy;
pub mod error;
#[cfg(feature = "fake-runtime")]
pub mod fake;
mod handle;
pub mod hub;
pub mod images;
pub mod isolation;
pub mod kubernetes;
pub mod logger;
mod one_off;
mod reconcile;
pub mod router;
pub mod runtime;
mod runtimes;
pub mod supervise;
mod traffic;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

pub use build::{Builder, LocalEngine, RegistryCredentials};
pub use error::{AddonError, DeployError, EngineDown, EngineError};
pub use handle::Engine;
pub use hub::{Hub, RunEvent};

/// The runtime name of the machine's own container engine (any other is a cluster).
pub const LOCAL_RUNTIME: &str = "local";

/// How long a claim lasts without renewal; a worker renews it every third of this.
pub const LEASE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This replica's id: leases and push-bound runs name it.
    pub node: String,
    /// Every replica reads the same data dir (build contexts included), so any replica
    /// may execute any run; otherwise a run is pinned to the replica that queued it.
    pub shared_data_dir: bool,
    /// How many runs execute at once.
    pub workers: usize,
    /// Where build contexts wait for their run (`<id>.tar` and `<id>.json`).
    pub contexts_dir: PathBuf,
    /// How long the build stage may take (and, separately, the push stage).
    pub build_timeout: Duration,
    /// Where images are pushed after the build; none keeps them on the engine.
    pub registry: Option<Registry>,
    /// How long new replicas have to answer their health check.
    pub health_timeout: Duration,
    /// How long a deploy stage may take, apart from its release command.
    pub deploy_timeout: Duration,
    /// How long a release command may run.
    pub release_timeout: Duration,
    /// How long a retired replica may finish the requests it was sent before it is
    /// stopped anyway (a template's `policy.drain_seconds` wins).
    pub drain: Duration,
    /// How long a new add-on has to accept connections.
    pub addon_timeout: Duration,
    /// Opens the sealed secrets of environments' config.
    pub secret_key: slipway_core::secrets::SecretKey,
    /// The images add-ons run.
    pub addon_images: addons::AddonImages,
    /// How many of each environment's newest releases keep their image (for rollback).
    pub image_retention: i64,
    /// The clock the router stamps each environment's last request with (the one the
    /// idle reaper reads).
    pub clock: std::sync::Arc<dyn slipway_core::clock::Clock>,
    /// How long a run's claim lasts without renewal ([`LEASE`] by default); a replica
    /// that stops renewing has its runs ended as interrupted by another after this.
    pub lease: Duration,
    /// Why the local container engine cannot be used, when it did not answer at start
    /// and nothing needed it (clusters run the environments): builds and local
    /// environments then fail with this, and nothing else calls the engine. It is not
    /// used later even if it comes up, because only a start checks that it is rootless.
    pub local_engine_down: Option<String>,
}

/// A registry to push built images to: `HOST[:PORT][/PREFIX]` and optional credentials.
#[derive(Debug, Clone)]
pub struct Registry {
    pub location: String,
    pub credentials: Option<build::RegistryCredentials>,
}

/// A mutex's guard, also after a panic elsewhere poisoned it: the maps and answers kept
/// this way are whole after every single update, so a panic leaves nothing half-written.
pub(crate) fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often the local engine is pinged for `/readyz`.
pub const ENGINE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Pings the local engine every [`ENGINE_CHECK_EVERY`] (each within 2 s) and keeps the
/// answer for [`Engine::local_engine_answers`].
async fn check_local_engine(engine: Engine) {
    loop {
        let answer = match tokio::time::timeout(Duration::from_secs(2), engine.local().ping()).await {
            Ok(answer) => answer.map_err(|err| EngineDown(err.to_string())),
            Err(_) => Err(EngineDown("it did not answer within 2 s".to_owned())),
        };
        *locked(engine.engine_answer()) = Some(answer);
        tokio::time::sleep(ENGINE_CHECK_EVERY).await;
    }
}

/// A workload's replicas as its cluster reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub ready: usize,
    /// The Deployment's own count (an autoscaler's choice when it has one).
    pub desired: usize,
    /// A condition of the Deployment that is `False` (`Progressing: ProgressDeadlineExceeded:
    /// …`), if any.
    pub condition: Option<String>,
}

impl Engine {
    /// The output of an environment's replicas on this node (see
    /// `LocalEngine::replica_logs`), with the environment's secrets masked.
    pub async fn app_logs(
        &self,
        service: &str,
        environment: &str,
        environment_id: i64,
        follow: bool,
        tail: u32,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, EngineError> {
        let masker = self.masker(environment_id).await;
        let mut raw = self.local().replica_logs(&self.config().node, service, environment, follow, tail).await?;
        if masker.is_empty() {
            return Ok(raw);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while let Some(line) = raw.recv().await {
                if tx.send(masker.mask(&line).into_owned()).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Hides an environment's secrets and add-on passwords in logs.
    pub async fn masker(&self, environment_id: i64) -> slipway_core::secrets::Masker {
        let mut values = config_vars::secret_values(self.store(), &self.config().secret_key, environment_id).await;
        if let Ok(addons) = self.open_addons(environment_id).await {
            values.extend(addons.into_iter().map(|a| a.password));
        }
        slipway_core::secrets::Masker::new(values)
    }

    /// Whether a run queued here may be executed by any replica (every replica reads the
    /// same data dir) rather than only this one.
    pub fn runs_float(&self) -> bool {
        self.config().shared_data_dir
    }

    /// Whether the local container engine answered its last check (made every
    /// [`ENGINE_CHECK_EVERY`] in the background), or why not; `Err` at once when this
    /// process started without one. Reads only: `/readyz` is open to anyone, and a flood
    /// of it must not become a flood of engine calls or wait on a hung engine.
    pub fn local_engine_answers(&self) -> Result<(), EngineDown> {
        self.local_engine()?;
        match &*locked(self.engine_answer()) {
            Some(answer) => answer.clone(),
            // Not checked yet: the start checked it.
            None => Ok(()),
        }
    }

    /// `Err` with the reason when this process has no local container engine.
    pub(crate) fn local_engine(&self) -> Result<(), EngineDown> {
        match &self.config().local_engine_down {
            None => Ok(()),
            Some(why) => Err(EngineDown(format!("there is no container engine to build or run on: {why}"))),
        }
    }

    /// Ends the runs a previous process left unfinished, then spawns the workers and
    /// the reaper of expired leases.
    pub async fn start(&self) -> Result<(), slipway_store::StoreError> {
        let ended = self.store().interrupt_orphaned_runs(&self.config().node, now_ms()).await?;
        if ended > 0 {
            tracing::warn!(ended, "marked runs interrupted by the previous shutdown as failed");
        }
        self.remove_stale_contexts().await;
        // Routes live in memory: rebuild them from what runs, and restart what should.
        reconcile::reconcile_all(self).await;
        // Each loop is supervised: one that panics or returns is logged, counted and
        // started again (see `supervise`).
        let engine = self.clone();
        self.supervise("reconcile", move || reconcile::reconcile_loop(engine.clone()));
        for n in 0..self.config().workers.max(1) {
            let engine = self.clone();
            self.supervise("worker", move || worker::run_worker(engine.clone(), n));
        }
        let engine = self.clone();
        self.supervise("lease-reaper", move || worker::reap_expired_leases(engine.clone()));
        let engine = self.clone();
        self.supervise("activity", move || record_activity(engine.clone()));
        let engine = self.clone();
        self.supervise("traffic", move || traffic::record_traffic(engine.clone()));
        let engine = self.clone();
        self.supervise("cluster-watch", move || kubernetes::watch_clusters(engine.clone()));
        if self.local_engine().is_ok() {
            let engine = self.clone();
            self.supervise("engine-check", move || check_local_engine(engine.clone()));
        }
        Ok(())
    }

    /// Removes build contexts whose run has ended (left behind by a crash).
    async fn remove_stale_contexts(&self) {
        let dir = &self.config().contexts_dir;
        let Ok(mut entries) = tokio::fs::read_dir(dir).await else { return };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.split('.').next().and_then(|id| id.parse::<i64>().ok()) else { continue };
            let ended = match self.store().run_by_id(id).await {
                Ok(run) => run.status.is_final(),
                Err(slipway_store::StoreError::NotFound) => true,
                Err(_) => false,
            };
            if ended {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    /// Stops and removes every replica of an environment and its route (before the
    /// environment's records are deleted).
    pub async fn destroy_environment(
        &self,
        environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        deploy::tear_down(self, environment_id, service, environment).await
    }

    /// Reconciles every environment now rather than at the next tick (after a scale).
    pub fn reconcile_soon(&self) {
        self.repair().wake.notify_one();
    }

    /// Stops this replica's pipeline work for a shutdown: workers claim no more runs, the
    /// runs executing here get up to `grace` to finish, and those still running then are
    /// stopped and handed back to the queue when another replica can run them (a shared
    /// data dir), or left to be ended as interrupted at this replica's next start.
    /// Then the background loops end (the reconcile loop, the reapers, the watches).
    pub async fn drain(&self, grace: Duration) {
        self.drain_runs(grace).await;
        // What the router counted this minute is stored, not lost with the process.
        self.flush_traffic().await;
        if !self.tasks().stop(LOOPS_END_WITHIN).await {
            tracing::warn!("stopping with background loops still running");
        }
    }

    async fn drain_runs(&self, grace: Duration) {
        self.queue().stopping.cancel();
        // Runs queued for this replica alone would wait for it forever (and their pushers
        // with them): they end now, with a reason the pusher can act on.
        match self
            .store()
            .end_waiting_runs_of(
                &self.config().node,
                "slipwayd stopped before the run started; push or deploy again",
                now_ms(),
            )
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "stopping: ended the runs queued for this replica"),
            Err(err) => tracing::error!(%err, "ending the runs queued for this replica"),
        }
        let running = || !locked(&self.queue().cancels).is_empty();
        let deadline = tokio::time::Instant::now() + grace;
        while running() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !running() {
            return;
        }
        if !self.runs_float() {
            tracing::warn!("stopping with runs still executing; they end as interrupted at the next start");
            return;
        }
        // Each execution stores its lines, then hands its run back (see `worker::execute`).
        self.queue().hand_back.cancel();
        for token in locked(&self.queue().cancels).values() {
            token.cancel();
        }
        let unwound = tokio::time::Instant::now() + HAND_BACK_WITHIN;
        while running() && tokio::time::Instant::now() < unwound {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Tells idle workers that a run is waiting.
    pub fn wake(&self) {
        self.queue().wake.notify_waiters();
    }

    /// Stops a running run on this replica at once (others notice at their next
    /// lease renewal through the stored flag).
    pub fn cancel_local(&self, run_id: i64) {
        if let Ok(cancels) = self.queue().cancels.lock()
            && let Some(token) = cancels.get(&run_id)
        {
            token.cancel();
        }
    }
}

/// How long the background loops get to end once the runs are drained.
const LOOPS_END_WITHIN: Duration = Duration::from_secs(5);

/// How long executions stopped for a hand-back get to store their lines and hand back.
const HAND_BACK_WITHIN: Duration = Duration::from_secs(10);

/// How often the router's per-environment activity is written to the database (what
/// idle TTLs measure).
pub const ACTIVITY_EVERY: Duration = Duration::from_secs(10);

/// Writes when each environment last got a request, for the idle-TTL reaper.
async fn record_activity(engine: Engine) {
    loop {
        tokio::time::sleep(ACTIVITY_EVERY).await;
        engine.flush_activity().await;
    }
}

impl Engine {
    /// Stores the router's newer request times (also called before reaping idle environments).
    pub async fn flush_activity(&self) {
        let Ok(environments) = self.store().live_environments().await else { return };
        for env in environments {
            let key = deploy::route_key(&env.service, &env.name);
            if let Some(at) = self.route_table().last_request(&key)
                && env.last_request_at.is_none_or(|stored| stored < at)
                && let Err(err) = self.store().touch_environment(&env.service, &env.name, at).await
            {
                tracing::warn!(%err, "recording environment activity");
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A random id for this process, used when no stable node id is configured.
pub fn random_node_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
