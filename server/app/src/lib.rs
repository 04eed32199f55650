//! slipwayd as a library: [`launch`] serves the REST API, the portal, the git endpoint,
//! health and metrics, and the app router, on listeners the caller bound, until the
//! shutdown token is cancelled. The binary (`main.rs`) parses the configuration, binds
//! the listeners and handles signals; tests launch the same server in-process, with a
//! [`Clock`] of their own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use slipway_engine::{Engine, EngineConfig, LocalEngine, Registry, RegistryCredentials};
use slipway_git::GitConfig;
use slipway_service::auth::jwt::JwtKeys;
use slipway_service::bootstrap::{self, InitialAdmin};
use slipway_service::clock::Clock;
use slipway_service::{AppState, Settings};
use slipway_store::Store;

pub mod config;
mod openapi;
mod routes;
pub mod telemetry;

pub use config::{Args, Config};

/// How long requests may stay open after the shutdown grace before the server stops anyway.
const REQUESTS_AFTER_GRACE: Duration = Duration::from_secs(15);

/// How long a stop waits for the app router's connections to end.
const ROUTER_STOPS_WITHIN: Duration = Duration::from_secs(5);

/// What a server is launched with besides its configuration.
#[derive(Debug)]
pub struct Launch {
    /// Where the API, portal and git endpoint are served (`--listen`).
    pub listener: TcpListener,
    /// Where the app router is served (`--apps-listen`).
    pub apps_listener: TcpListener,
    /// Cancelled to stop serving (both servers stop on it).
    pub shutdown: CancellationToken,
    /// Where time-based decisions (TTLs) read the time.
    pub clock: Arc<dyn Clock>,
    /// The first admin's password on a first start (`SLIPWAY_ADMIN_PASSWORD`); one is
    /// generated and printed when none is given.
    pub admin_password: Option<String>,
    /// The slipwayd executable git's hooks call back into (`slipwayd hook pre-receive`).
    pub hook_program: PathBuf,
}

/// Serves until `launch.shutdown` is cancelled, then closes the database.
pub async fn launch(config: Config, launch: Launch) -> anyhow::Result<()> {
    let Launch { listener, apps_listener, shutdown, clock, admin_password, hook_program } = launch;
    tracing::debug!(?config, "configuration");
    create_data_dir(&config.data_dir)?;
    let store = Store::open(&config.database_url, config.database_max_connections).await.map_err(|err| {
        anyhow::anyhow!("{err}\n  check --database-url (SLIPWAY_DATABASE_URL): is the database running and reachable?")
    })?;
    tracing::info!(backend = ?store.backend(), "database ready");

    // Check the engine before first-start chores, so a failed start changes nothing.
    let (builder, local_engine_down) = connect_engine(&config).await?;
    slipway_service::templates::load_builtin_templates(&store)
        .await
        .map_err(|e| anyhow::anyhow!("loading the built-in templates: {e}"))?;
    match bootstrap::ensure_initial_admin(&store, &config.data_dir, admin_password).await? {
        InitialAdmin::Existing => {}
        InitialAdmin::FromEnvironment => {
            println!("Created user admin with the password from SLIPWAY_ADMIN_PASSWORD.");
        }
        InitialAdmin::Generated { password, file } => {
            println!("Created user admin with password: {password}");
            println!("(shown once; also written to {}, readable only by this user)", file.display());
        }
    }
    let signing_key = bootstrap::load_signing_key(&config.data_dir, config.jwt_secret.as_deref())
        .map_err(|e| anyhow::anyhow!("session signing key: {e}"))?;
    let secret_key = bootstrap::load_secret_key(&config.data_dir, config.secret_key.as_deref())
        .map_err(|e| anyhow::anyhow!("config secret key: {e}"))?;
    let metrics = telemetry::init_metrics().map_err(anyhow::Error::msg)?;
    let node = match &config.node_id {
        Some(id) => id.clone(),
        None => node_id(&config.data_dir)?,
    };
    let hooks_dir = install_hooks(&config.data_dir, &hook_program)?;

    let bound = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", reachable(bound)));
    let apps_bound = apps_listener.local_addr()?;
    let engine = Engine::new(
        store.clone(),
        builder,
        EngineConfig {
            node,
            shared_data_dir: config.shared_data_dir,
            workers: config.workers,
            contexts_dir: config.data_dir.join("contexts"),
            build_timeout: Duration::from_secs(config.build_timeout),
            registry: config.registry.clone().map(|location| Registry {
                location,
                credentials: config
                    .registry_username
                    .clone()
                    .zip(config.registry_password.clone())
                    .map(|(username, password)| RegistryCredentials { username, password }),
            }),
            health_timeout: Duration::from_secs(config.health_timeout),
            drain: Duration::from_secs(config.drain_seconds),
            deploy_timeout: Duration::from_secs(config.deploy_timeout),
            release_timeout: Duration::from_secs(config.release_timeout),
            addon_timeout: Duration::from_secs(config.addon_timeout),
            secret_key,
            lease: Duration::from_secs(config.lease_seconds),
            local_engine_down,
            image_retention: i64::from(config.image_retention),
            clock: clock.clone(),
            addon_images: {
                let defaults = slipway_engine::addons::AddonImages::default();
                slipway_engine::addons::AddonImages {
                    postgres: config.postgres_image.clone().unwrap_or(defaults.postgres),
                    redis: config.redis_image.clone().unwrap_or(defaults.redis),
                }
            },
        },
    );
    engine.start().await.map_err(|e| anyhow::anyhow!("starting the pipeline engine: {e}"))?;
    let state = AppState::new(
        store.clone(),
        JwtKeys::new(&signing_key, i64::from(config.session_hours) * 3600),
        Settings {
            public_url: public_url.clone(),
            data_dir: config.data_dir.clone(),
            repos_dir: config.data_dir.join("repos"),
            git: "git".into(),
            hook_url: format!("http://{}", reachable(bound)),
            apps_domain: config.base_domain.clone(),
            apps_port: apps_bound.port(),
            default_runtime: config.default_runtime.clone(),
            max_context_bytes: config.max_context_mb * 1024 * 1024,
        },
        engine,
    );
    // Subscribed before the listener serves, so no revocation is missed. Not supervised:
    // it ends by design (SQLite has no notifications; a lost subscription turns the
    // credential cache off), and a panic there leaves the cache to its TTL.
    let subscription = store.subscribe_auth_changes().await;
    tokio::spawn(state.clone().follow_auth_changes(subscription));
    let reaped = state.clone();
    state.engine.supervise("reaper", move || slipway_service::reaper::reap_loop(reaped.clone(), clock.clone()));
    let git = GitConfig {
        root: config.data_dir.join("repos"),
        spool: config.data_dir.join("tmp"),
        git: "git".into(),
        max_push_bytes: config.max_push_mb * 1024 * 1024,
        max_repo_bytes: config.max_repo_mb * 1024 * 1024,
        git_config: vec![("core.hooksPath".to_owned(), hooks_dir.display().to_string())],
    };
    let routes = state.engine.routes();
    let state_engine = state.engine.clone();
    let app = routes::router(state, metrics, git);

    let router_shutdown = shutdown.clone();
    let base_domain = config.base_domain.clone();
    let router_served = tokio::spawn(async move {
        if let Err(err) = slipway_engine::router::serve(apps_listener, routes, &base_domain, router_shutdown).await {
            tracing::error!(%err, "the app router stopped");
        }
    });
    // Tests and scripts read these lines to learn the ports when the flags use port 0.
    println!("slipwayd app router on http://{}", reachable(apps_bound));
    println!("slipwayd listening on {public_url}");
    tracing::info!(%bound, "serving the API, portal and git endpoint");
    // No Nagle delay: hyper writes a chunked body in small pieces, and without
    // TCP_NODELAY the last piece waits for the client's delayed ACK (~40 ms a response).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "setting TCP_NODELAY");
        }
    });
    // On shutdown the engine stops claiming runs and gives those executing here the
    // grace to finish, while the servers finish the requests in flight (a push's request
    // lasts as long as its run).
    let engine = state_engine.clone();
    let grace = Duration::from_secs(config.shutdown_grace);
    let stopping = shutdown.clone();
    let drained = tokio::spawn(async move {
        stopping.cancelled().await;
        engine.drain(grace).await;
    });
    // With the peer address, which login throttles by.
    let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    // Requests still open well after the grace (a push following a run another replica
    // took over) do not hold the process up.
    let open_too_long = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace + REQUESTS_AFTER_GRACE).await;
    };
    tokio::select! {
        served = async { serve.await } => served?,
        () = open_too_long => tracing::warn!("stopping with requests still open after the shutdown grace"),
    }
    let _ = drained.await;
    // What the router answered after the engine's drain is stored too, once it stopped
    // (a websocket can keep it serving: not past a bound).
    let _ = tokio::time::timeout(ROUTER_STOPS_WITHIN, router_served).await;
    state_engine.flush_traffic().await;
    tracing::info!("shutting down");
    store.close().await;
    Ok(())
}

/// The address clients can use: an unspecified bind address (0.0.0.0) becomes loopback.
fn reachable(bound: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        let ip = if bound.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        SocketAddr::new(ip, bound.port())
    } else {
        bound
    }
}

fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data directory {}: {e}\n  choose another with --data-dir (SLIPWAY_DATA_DIR)",
            dir.display()
        )
    })?;
    // It holds the keys and the database: only slipwayd's own user may enter it (the
    // engine's user, which runs pushed code, must not), however it was made.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| anyhow::anyhow!("cannot make the data directory {} private: {e}", dir.display()))?;
            tracing::warn!(dir = %dir.display(), was = format!("{:o}", mode & 0o777), "made the data directory private (0700)");
        }
    }
    Ok(())
}

/// Connects to the container engine and checks that it answers and isolates pushed code,
/// so a missing or unsafe engine is reported at start rather than at the first push.
/// With `--runtime kubernetes` environments run on clusters and an engine that does not
/// answer only disables builds; `--engine none` (a catalog-only installation) asks for no
/// engine at all. The second value then says why there is none (in words for the run log
/// of anyone who pushes: the address and the error stay in the server's log), and
/// nothing uses the engine.
async fn connect_engine(config: &Config) -> anyhow::Result<(LocalEngine, Option<String>)> {
    let url = config.engine_url()?;
    if url == "none" {
        tracing::info!("no container engine (--engine none): builds and local environments are off");
        let why = "this installation runs without a container engine (--engine none)".to_owned();
        return Ok((LocalEngine::absent(&url)?, Some(why)));
    }
    let unreachable = |e: slipway_engine::EngineError| {
        anyhow::anyhow!(
            "the container engine at {url} does not answer ({e})\n  start Podman's API service (`scripts/podman start`) \
             or Docker, or point --engine (SLIPWAY_ENGINE) at a running one"
        )
    };
    let connected = match LocalEngine::connect(&url) {
        Ok(builder) => builder.ping().await.map(|()| builder),
        Err(err) => Err(err),
    };
    let builder = match connected {
        Ok(builder) => builder,
        Err(err) if config.default_runtime == slipway_engine::LOCAL_RUNTIME => return Err(unreachable(err)),
        Err(err) => {
            tracing::warn!(%url, %err, "no container engine answers: the API, portal and clusters work; builds fail \
                until slipwayd is restarted with one");
            let why = "the container engine did not answer when slipwayd started; an admin can start it and \
                restart slipwayd"
                .to_owned();
            return Ok((LocalEngine::absent(&url)?, Some(why)));
        }
    };
    let isolation = builder.isolation().await.map_err(unreachable)?;
    let product = &isolation.product;
    if !isolation.rootless {
        if !config.allow_rootful_engine {
            anyhow::bail!(
                "the container engine at {url} ({product}) runs containers as host root: a pushed build or app that \
                 escapes its container would own this machine\n  start the rootless engine (`scripts/podman start` runs \
                 Podman as the user slipway-engine), or, if you accept the risk, pass --allow-rootful-engine \
                 (SLIPWAY_ALLOW_ROOTFUL_ENGINE=true)"
            );
        }
        tracing::warn!(%url, %product, "the container engine runs containers as host root (--allow-rootful-engine)");
    }
    // A rootless engine running as slipwayd's own user shields nothing: an escaped build
    // or app would be that user, and read the keys and the database.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let data_owner = std::fs::metadata(&config.data_dir)?.uid();
        if isolation.rootless && isolation.host_uid == Some(data_owner) {
            anyhow::bail!(
                "the container engine at {url} ({product}) runs containers as uid {data_owner}, the owner of the data \
                 directory {}: pushed code that escapes its container could read Slipway's keys and database\n  run \
                 the engine as a user of its own (`scripts/podman start` uses slipway-engine)",
                config.data_dir.display()
            );
        }
    }
    if !isolation.enforces_limits {
        tracing::warn!(
            %url, %product,
            "the container engine cannot enforce memory, CPU or pids limits here (rootless on cgroup v1, or without \
             delegated controllers); only the process limit (RLIMIT_NPROC) bounds an app"
        );
    }
    tracing::info!(%url, %product, rootless = isolation.rootless, "container engine ready");
    Ok((builder, None))
}

/// This replica's stable id (kept in the data dir), so after a crash it recognises the
/// runs it was running and ends them at once.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_owned();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = slipway_engine::random_node_id();
    std::fs::write(&path, format!("{id}\n")).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(id)
}

/// Writes the git hooks that call back into `program` (slipwayd); rewritten at every
/// start so they always name the running executable.
fn install_hooks(data_dir: &std::path::Path, program: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = data_dir.join("hooks");
    std::fs::create_dir_all(&dir)?;
    let exe = program.display().to_string().replace('\'', "'\\''");
    let script = format!("#!/bin/sh\nexec '{exe}' hook pre-receive\n");
    let path = dir.join("pre-receive");
    std::fs::write(&path, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(dir)
}
