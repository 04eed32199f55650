//! slipwayd: the Slipway server. One binary serves the REST API, the portal, the git
//! endpoint, health and metrics. `main` parses and validates the configuration, opens
//! the database, performs first-start chores and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use slipway_git::GitConfig;
use slipway_service::auth::jwt::JwtKeys;
use slipway_service::bootstrap::{self, InitialAdmin};
use slipway_service::{AppState, Settings};
use slipway_store::Store;

mod config;
mod openapi;
mod routes;
mod telemetry;

use config::{Args, Config};

fn main() -> ExitCode {
    // One TLS provider for the whole process (ring); see ARCHITECTURE.md.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match Config::load(Args::parse()) {
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
    let metrics = telemetry::init_metrics().map_err(anyhow::Error::msg)?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}\n  choose another address with --listen (SLIPWAY_LISTEN)",
            config.listen
        )
    })?;
    let bound = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", reachable(bound)));
    let state = AppState::new(
        store.clone(),
        JwtKeys::new(&signing_key, i64::from(config.session_hours) * 3600),
        Settings { public_url: public_url.clone(), repos_dir: config.data_dir.join("repos"), git: "git".into() },
    );
    tokio::spawn(state.clone().follow_auth_changes());
    let git = GitConfig {
        root: config.data_dir.join("repos"),
        spool: config.data_dir.join("tmp"),
        git: "git".into(),
        max_push_bytes: config.max_push_mb * 1024 * 1024,
        max_repo_bytes: config.max_repo_mb * 1024 * 1024,
        git_config: Vec::new(),
    };
    let app = routes::router(state, metrics, git);

    // Tests and scripts read this line to learn the port when --listen uses port 0.
    println!("slipwayd listening on {public_url}");
    tracing::info!(%bound, "serving the API, portal and git endpoint");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
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
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
