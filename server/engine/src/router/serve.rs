//! Serving the router: one single-threaded runtime per core, as nginx runs one worker
//! process per core. Each accepted connection is handed to one router thread, which
//! serves it, forwards its requests over that thread's own pools to the replicas and
//! streams the answers back, so a request never wakes another thread (on a multi-thread
//! runtime, the client and backend connections' tasks land on different workers, and
//! waking each other cost about a fifth of the router's time in the scheduler).
//! Written here because axum's `serve` runs on the caller's runtime and no crate spreads
//! connections over per-thread runtimes.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use std::sync::Arc;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pool::POOL_IDLE;
use super::{RouterState, Routes, forward};

/// How many connections wait for a router thread before the accept loop waits too.
const HANDOFF: usize = 64;
/// How long a client may take to send a request's head: a connection trickling one
/// (a slow-loris attack) or opened and left silent is closed then (1 s in unit tests).
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 30 });
/// The most router threads.
const MAX_THREADS: usize = 16;

thread_local! {
    static THIS_THREAD: Cell<usize> = const { Cell::new(0) };
    /// The router thread's connections and the upgraded ones spliced off them, which it
    /// waits for before it ends.
    static TASKS: RefCell<Option<TaskTracker>> = const { RefCell::new(None) };
}

/// How many router threads serve (one per core).
pub(super) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS))
}

/// Which router thread this is (0 off them: tests serving the router on their runtime).
pub(super) fn this_thread() -> usize {
    THIS_THREAD.with(Cell::get)
}

/// Runs a task the router thread waits for before it ends (an upgraded connection
/// outlives the request that opened it), or on the caller's runtime off router threads.
pub(super) fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    match TASKS.with(|tasks| tasks.borrow().clone()) {
        Some(tracker) => drop(tracker.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

/// Serves the router for `routes` (at `<key>.<base_domain>`) on `listener` until
/// `shutdown`, then lets each connection finish the request it is on and returns once
/// all have closed (upgraded ones too).
pub async fn serve(
    listener: TcpListener,
    routes: Arc<Routes>,
    base_domain: &str,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = RouterState { routes, base_domain: Arc::from(base_domain) };
    let mut senders = Vec::new();
    let mut done = Vec::new();
    for index in 0..threads() {
        let (sender, receiver) = mpsc::channel(HANDOFF);
        let (finished, finished_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let state = state.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new().name(format!("slipway-router-{index}")).spawn(move || {
            THIS_THREAD.with(|t| t.set(index));
            runtime.block_on(worker(receiver, state, shutdown));
            let _ = finished.send(());
        })?;
        senders.push(sender);
        done.push(finished_rx);
    }
    let mut turn = 0;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // Out of file descriptors and the like: wait rather than spin.
            Err(err) => {
                tracing::warn!(%err, "accepting a connection to the app router");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(stream) = stream.into_std() else { continue };
        turn = (turn + 1) % senders.len();
        if senders[turn].send((stream, peer)).await.is_err() {
            tracing::error!(thread = turn, "a router thread stopped");
        }
    }
    drop(senders);
    for finished in done {
        let _ = finished.await;
    }
    Ok(())
}

/// One router thread: serves the connections handed to it until the accept loop ends.
async fn worker(
    mut connections: mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    state: RouterState,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    TASKS.with(|tasks| *tasks.borrow_mut() = Some(tracker.clone()));
    // This thread's connections to replicas idle too long are closed.
    let reaper = tokio::spawn({
        let routes = state.routes.clone();
        async move {
            let mut every = tokio::time::interval(POOL_IDLE / 6);
            loop {
                every.tick().await;
                routes.reap_idle();
            }
        }
    });
    while let Some((stream, peer)) = connections.recv().await {
        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { continue };
        tracker.spawn(connection(stream, peer, state.clone(), shutdown.clone()));
    }
    tracker.close();
    tracker.wait().await;
    reaper.abort();
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, state: RouterState, shutdown: CancellationToken) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(forward(&state, peer, request.map(Body::new)).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%err, "an app router connection ended");
    }
}
