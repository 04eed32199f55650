//! slipwayd: the Slipway server. One binary serves the REST API, the portal, the git
//! endpoint, health and metrics. `main` parses and validates the configuration, opens
//! the database, performs first-start chores and serves until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use slipwayd::{Args, Config, Launch, config, telemetry};

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
        return slipway_git::hook::run(name);
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

/// Binds the listeners (a taken port stops the start before anything changes), then
/// launches the server with the system clock until a signal arrives.
async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}\n  choose another address with --listen (SLIPWAY_LISTEN)",
            config.listen
        )
    })?;
    let apps_listener = tokio::net::TcpListener::bind(config.apps_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {} for the app router: {e}\n  choose another address with --apps-listen (SLIPWAY_APPS_LISTEN)",
            config.apps_listen
        )
    })?;
    let launch = Launch {
        listener,
        apps_listener,
        shutdown: shutdown_token()?,
        clock: Arc::new(slipway_service::clock::SystemClock),
        admin_password: std::env::var("SLIPWAY_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()),
        hook_program: std::env::current_exe()?,
    };
    slipwayd::launch(config, launch).await
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
