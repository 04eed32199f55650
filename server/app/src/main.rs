//! slipwayd: the Slipway server. One binary serves the REST API, the portal, the git
//! endpoint, health and metrics. `main` parses and validates the configuration, opens
//! the database, performs first-start chores and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::serve::ListenerExt;
use clap::Parser;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use slipway_engine::supervise::supervise;
use slipway_engine::{Engine, EngineConfig, LocalEngine, Registry, RegistryCredentials};
use slipway_git::GitConfig;
use slipway_service::auth::jwt::JwtKeys;
use slipway_service::bootstrap::{self, InitialAdmin};
use slipway_service::{AppState, Settings};
use slipway_store::Store;

mod config;
mod hook;
mod openapi;
mod routes;
mod telemetry;

use config::{Args, Config};

/// mimalloc rather than the system allocator: a password hash takes 19 MiB for a few
/// milliseconds, and glibc's malloc keeps such blocks in per-thread arenas after they
/// are freed (a flood of logins left hundreds of MiB resident for good); mimalloc gives
/// freed memory back to the system (see [`allocator_options`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults keep freed memory committed for a while and commit its arenas
/// eagerly (34 MiB resident at idle here, against 5 MiB with these options). It reads
/// options only from the environment, when it first allocates, before `main`, and
/// setting them from inside takes `unsafe`; so a slipwayd started without them replaces
/// itself once (the same process id, arguments and streams) with them set. The
/// operator's own `MIMALLOC_*` settings win.
fn allocator_options() {
    use std::os::unix::process::CommandExt;
    const OPTIONS: [(&str, &str); 2] = [("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ARENA_EAGER_COMMIT", "0")];
    if OPTIONS.iter().any(|(name, _)| std::env::var_os(name).is_some()) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1)).envs(OPTIONS);
    // Returns only on failure (e.g. the binary was replaced on disk); then run as is.
    let err = again.exec();
    eprintln!("slipwayd: warning: could not apply the allocator's settings ({err}); continuing without them");
}

fn main() -> ExitCode {
    allocator_options();
    // One TLS provider for the whole process (ring); see ARCHITECTURE.md.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if let Some(config::Internal::Hook { name }) = &args.internal {
        return hook::main(name);
    }
    let config = match Config::load(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("slipwayd: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("slipwayd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("slipwayd: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
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
    let admin_password = std::env::var("SLIPWAY_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
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
    let hooks_dir = install_hooks(&config.data_dir)?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}\n  choose another address with --listen (SLIPWAY_LISTEN)",
            config.listen
        )
    })?;
    let bound = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", reachable(bound)));
    // The app router's listener is bound before the engine starts, so a taken port stops
    // the start before any replica moves.
    let apps_listener = tokio::net::TcpListener::bind(config.apps_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} for the app router: {e}\n  choose another address with --apps-listen (SLIPWAY_APPS_LISTEN)",
            config.apps_listen
        )
    })?;
    let apps_bound = apps_listener.local_addr()?;
    let engine = Engine::new(
        store.clone(),
        builder,
        EngineConfig {
            node,
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
            deploy_timeout: Duration::from_secs(config.deploy_timeout),
            release_timeout: Duration::from_secs(config.release_timeout),
            addon_timeout: Duration::from_secs(config.addon_timeout),
            secret_key,
            lease: Duration::from_secs(config.lease_seconds),
            local_engine_down,
            image_retention: i64::from(config.image_retention),
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
    supervise("reaper", move || {
        slipway_service::reaper::reap_loop(reaped.clone(), slipway_service::reaper::Clock::from_env())
    });
    let git = GitConfig {
        root: config.data_dir.join("repos"),
        spool: config.data_dir.join("tmp"),
        git: "git".into(),
        max_push_bytes: config.max_push_mb * 1024 * 1024,
        max_repo_bytes: config.max_repo_mb * 1024 * 1024,
        git_config: vec![("core.hooksPath".to_owned(), hooks_dir.display().to_string())],
    };
    let routes = state.engine.routes();
    let app = routes::router(state, metrics, git);

    let shutdown = shutdown_token()?;
    let router_shutdown = shutdown.clone();
    let apps = slipway_engine::router::app(routes, &config.base_domain);
    let apps_listener = apps_listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let serve = axum::serve(apps_listener, apps.into_make_service_with_connect_info::<SocketAddr>());
        if let Err(err) = serve.with_graceful_shutdown(router_shutdown.cancelled_owned()).await {
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
    // With the peer address, which login throttles by.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
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

/// Registers SIGINT and SIGTERM handlers now (synchronously, before the servers say
/// they are ready, so no signal can slip between them) and answers a token cancelled on
/// the first one. Both servers shut down on the same token.
fn shutdown_token() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            cancel.cancel();
        });
    }
    #[cfg(not(unix))]
    {
        let cancel = token.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            cancel.cancel();
        });
    }
    Ok(token)
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
        return Ok((LocalEngine::absent(&url).map_err(anyhow::Error::msg)?, Some(why)));
    }
    let unreachable = |e: String| {
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
            return Ok((LocalEngine::absent(&url).map_err(anyhow::Error::msg)?, Some(why)));
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

/// Writes the git hooks that call back into this binary; rewritten at every start so
/// they always name the running executable.
fn install_hooks(data_dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = data_dir.join("hooks");
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let exe = exe.display().to_string().replace('\'', "'\\''");
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
