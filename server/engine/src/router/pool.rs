//! One router thread's connections to one replica: the idle ones kept alive for reuse,
//! and opening new ones. Written here rather than using hyper-util's pooled client
//! because that one is shared by all threads behind one lock, keys each request by its
//! URI's authority, and spawns a task per request to see its connection back into the
//! pool; measured, the router spent more per request than nginx. Here a connection is
//! used by the thread that opened it, comes back when its response body has ended, and
//! a request not yet written when a connection fails is given back, so it can go again.

use std::net::SocketAddr;
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// How long an idle connection to a replica is kept (as nginx's upstream keep-alive);
/// 1 s in unit tests.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 30 });
/// How many idle connections to one replica the router threads keep between them: as
/// many as a busy environment's concurrent requests (256 keeps a load of that many on reused
/// connections; fewer and each request past them pays a new connection through the
/// engine's port forwarder).
const POOL_MAX_IDLE: usize = 256;

/// Connections to a replica open to send a request on.
pub(super) type Sender = SendRequest<Body>;

/// One router thread's idle connections to one replica, most recently used last.
#[derive(Debug, Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<(Sender, Instant)>>,
}

impl Pool {
    /// The most recently used idle connection that is ready for a request, if any.
    pub(super) fn take(&self) -> Option<Sender> {
        let mut idle = crate::locked(&self.idle);
        while let Some((sender, since)) = idle.pop() {
            if sender.is_ready() && since.elapsed() < POOL_IDLE {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps a connection whose exchange ended, if it is ready for the next one (not
    /// still sending an upload the app answered before reading it all) and the pool has
    /// room: the replica's share of [`POOL_MAX_IDLE`] for each router thread.
    fn put(&self, sender: Sender) {
        let mut idle = crate::locked(&self.idle);
        if sender.is_ready() && idle.len() < (POOL_MAX_IDLE / super::serve::threads()).max(1) {
            idle.push((sender, Instant::now()));
        }
    }

    /// Closes the connections idle for longer than [`POOL_IDLE`] (and drops the closed).
    pub(super) fn reap(&self) {
        crate::locked(&self.idle).retain(|(sender, since)| !sender.is_closed() && since.elapsed() < POOL_IDLE);
    }
}

/// Opens a connection to a replica, driven by a task on this thread's runtime (until the
/// last sender is dropped or the replica closes it; an upgraded one hands its socket on).
pub(super) async fn connect(addr: SocketAddr) -> std::io::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    // As on the listening side: no Nagle delay on small writes.
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(%err, %addr, "a connection to a replica ended");
        }
    });
    Ok(sender)
}

/// A connection lent to one exchange, back to its pool once the response has ended
/// (not if the client went away mid-body, the connection was upgraded, or the pool is
/// gone because the replica was retired).
#[derive(Debug)]
pub(super) struct Lent {
    sender: Option<Sender>,
    pool: Weak<Pool>,
}

impl Lent {
    pub(super) fn new(sender: Sender, pool: Weak<Pool>) -> Lent {
        Lent { sender: Some(sender), pool }
    }

    /// The exchange ended: the connection may serve the next request.
    pub(super) fn give_back(&mut self) {
        if let (Some(sender), Some(pool)) = (self.sender.take(), self.pool.upgrade()) {
            pool.put(sender);
        }
    }
}
