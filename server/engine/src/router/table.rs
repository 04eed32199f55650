//! The routing table: which replicas serve each environment, one link (connection pool,
//! requests in flight, traffic tally) per replica, the pick of the next replica, and
//! drains.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use slipway_core::clock::{Clock, SystemClock};
use slipway_core::traffic::Figures;
use tokio::sync::Notify;

use super::pool::Pool;
use crate::traffic::Tally;

/// Which replicas serve which environment, keyed `<service>-<env>`.
#[derive(Debug)]
pub struct Routes {
    /// What stamps an environment's last request (the clock the idle reaper reads).
    clock: Arc<dyn Clock>,
    table: RwLock<HashMap<String, Arc<Backends>>>,
    /// Every replica a route names or a request or drain still holds, by address: one
    /// link each, shared by all routes naming it. Weak, so a link (and its pool) goes
    /// when the last of them lets go.
    pub(super) links: Mutex<HashMap<SocketAddr, Weak<Link>>>,
    /// Tallies of routes removed since the last take (a request picked before the removal
    /// still records into its route's tally).
    departed: Mutex<Vec<(String, Arc<Tally>)>>,
}

#[derive(Debug)]
struct Backends {
    replicas: Vec<Arc<Link>>,
    next: AtomicUsize,
    /// When the environment last got a request (Unix ms; 0: not since the route was set).
    last_request: AtomicI64,
    /// The environment's traffic since the last minute's flush (kept when the replicas
    /// change).
    pub(super) traffic: Arc<Tally>,
}

/// How many times one request is sent again after a kept-alive connection failed under
/// it (the app closed it as the router reused it).
pub(super) const STALE_RETRIES: u32 = 2;

/// The router's side of one replica.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) addr: SocketAddr,
    in_flight: AtomicUsize,
    /// Notified when `in_flight` drops to zero.
    idle: Notify,
    /// This replica's pools, one per router thread (a connection is served by the
    /// thread that opened it, with no wake-up of another); taken away when it is retired
    /// (a drain begins), which closes its idle connections at once and each busy one as
    /// its request ends.
    pools: Mutex<Option<Vec<Arc<Pool>>>>,
}

impl Link {
    fn new(addr: SocketAddr) -> Link {
        let pools = (0..super::serve::threads()).map(|_| Arc::default()).collect();
        Link { addr, in_flight: AtomicUsize::new(0), idle: Notify::new(), pools: Mutex::new(Some(pools)) }
    }

    /// The pool of the router thread asking; none once retired.
    fn pool(&self) -> Option<Arc<Pool>> {
        let pools = crate::locked(&self.pools);
        let pools = pools.as_ref()?;
        pools.get(super::serve::this_thread() % pools.len()).cloned()
    }

    fn retired(&self) -> bool {
        crate::locked(&self.pools).is_none()
    }
}

/// A request in flight to a replica: counted from when the replica was picked (under the
/// table's lock, so a drain that starts after the table changed sees it) until dropped,
/// with this thread's pool to the replica as it was then, to be taken for sending. (Held
/// no longer than that: a response streaming from a retired replica must not keep its
/// idle connections open.)
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) link: Arc<Link>,
    pub(super) pool: Option<Arc<Pool>>,
}

impl InFlight {
    /// None when the replica was retired.
    fn new(link: &Arc<Link>) -> Option<InFlight> {
        let pool = link.pool()?;
        link.in_flight.fetch_add(1, Ordering::SeqCst);
        Some(InFlight { link: link.clone(), pool: Some(pool) })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.link.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.link.idle.notify_waiters();
        }
    }
}

/// What a request may be sent to.
pub(super) enum Pick {
    /// No environment is routed at this key.
    Unknown,
    /// None left to try (none healthy, or every one refused); the environment's tally.
    Exhausted(Arc<Tally>),
    /// The replica, counted in flight, and the environment's tally.
    Replica(InFlight, Arc<Tally>),
}

impl Default for Routes {
    fn default() -> Self {
        Routes::with_clock(Arc::new(SystemClock))
    }
}

impl Routes {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Routes {
        Routes { clock, table: RwLock::default(), links: Mutex::default(), departed: Mutex::default() }
    }

    /// Points `key` at `addrs` (an empty list makes it answer 503). A replica no longer
    /// named gets no new requests; [`Routes::drain`] waits for the ones it has.
    pub fn set(&self, key: &str, addrs: Vec<SocketAddr>) {
        let replicas = {
            let mut links = crate::locked(&self.links);
            links.retain(|_, link| link.strong_count() > 0);
            addrs
                .into_iter()
                .map(|addr| {
                    // A retired link is never used again (a new replica may get its address).
                    if let Some(link) = links.get(&addr).and_then(Weak::upgrade).filter(|l| !l.retired()) {
                        return link;
                    }
                    let link = Arc::new(Link::new(addr));
                    links.insert(addr, Arc::downgrade(&link));
                    link
                })
                .collect()
        };
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        // Keep the activity and traffic of a route whose replicas change.
        let last = table.get(key).map_or(0, |b| b.last_request.load(Ordering::Relaxed));
        let traffic = table.get(key).map_or_else(|| Arc::new(Tally::new()), |b| b.traffic.clone());
        let backends = Backends { replicas, next: AtomicUsize::new(0), last_request: AtomicI64::new(last), traffic };
        table.insert(key.to_owned(), Arc::new(backends));
    }

    /// Stops routing `key`; what it counted since the last take waits for the next one.
    pub fn remove(&self, key: &str) {
        let removed = self.table.write().unwrap_or_else(|e| e.into_inner()).remove(key);
        if let Some(backends) = removed {
            crate::locked(&self.departed).push((key.to_owned(), backends.traffic.clone()));
        }
    }

    /// When `key` last got a request through the router (Unix ms), if it did.
    pub fn last_request(&self, key: &str) -> Option<i64> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(key).map(|b| b.last_request.load(Ordering::Relaxed)).filter(|at| *at > 0)
    }

    pub fn get(&self, key: &str) -> Option<Vec<SocketAddr>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(key).map(|b| b.replicas.iter().map(|l| l.addr).collect())
    }

    /// An environment's traffic since the last take, and since when (Unix ms).
    pub(crate) fn peek_traffic(&self, key: &str) -> Option<(Figures, i64)> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(key).map(|b| b.traffic.peek())
    }

    /// Every environment's traffic since the last take (and since when, Unix ms), routed
    /// or removed since, counting starting again.
    pub(crate) fn take_traffic(&self) -> Vec<(String, Figures, i64)> {
        let departed = std::mem::take(&mut *crate::locked(&self.departed));
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let routed = table.iter().map(|(key, backends)| (key, &backends.traffic));
        departed
            .iter()
            .map(|(key, tally)| (key, tally))
            .chain(routed)
            .filter_map(|(key, tally)| {
                let (figures, since) = tally.take();
                (figures.requests > 0).then(|| (key.clone(), figures, since))
            })
            .collect()
    }

    /// Puts back traffic that could not be stored, for the next take.
    pub(crate) fn restore_traffic(&self, key: &str, figures: &Figures) {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let tally = table.get(key).map_or_else(|| Arc::new(Tally::new()), |b| b.traffic.clone());
        tally.restore(figures);
        if !table.contains_key(key) {
            crate::locked(&self.departed).push((key.to_owned(), tally));
        }
    }

    /// Closes this router thread's connections to replicas that were idle too long.
    pub(super) fn reap_idle(&self) {
        let links: Vec<Arc<Link>> = crate::locked(&self.links).values().filter_map(Weak::upgrade).collect();
        for pool in links.iter().filter_map(|link| link.pool()) {
            pool.reap();
        }
    }

    /// The requests in flight to a replica now.
    pub fn in_flight(&self, addr: SocketAddr) -> usize {
        crate::locked(&self.links).get(&addr).and_then(Weak::upgrade).map_or(0, |l| l.in_flight.load(Ordering::SeqCst))
    }

    /// Retires a replica that no route names any more (call it after the route changed):
    /// its idle pooled connections close now, and this waits until it has no request in
    /// flight, at most `within`; answers how many were still in flight then (0: drained).
    pub async fn drain(&self, addr: SocketAddr, within: Duration) -> usize {
        let Some(link) = crate::locked(&self.links).get(&addr).and_then(Weak::upgrade) else { return 0 };
        {
            // The address may serve a route again (a replica that died freed its port and
            // a new one got it): that link is not retiring, and nothing of the old one is
            // left to wait for. Checked under the table's lock, as `set` changes it.
            let table = self.table.read().unwrap_or_else(|e| e.into_inner());
            if table.values().any(|b| b.replicas.iter().any(|l| Arc::ptr_eq(l, &link))) {
                return 0;
            }
            crate::locked(&link.pools).take();
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = link.idle.notified();
            let left = link.in_flight.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            tokio::select! {
                () = idle => {}
                () = tokio::time::sleep_until(deadline) => return link.in_flight.load(Ordering::SeqCst),
            }
        }
    }

    /// The next replica in turn for one request that `tried` none of yet, counted in
    /// flight before the table's lock is let go. `start` is the request's place in the
    /// turn, chosen at its first attempt. The table may have changed since an earlier
    /// attempt (a reconcile dropped a dead replica): the current one is asked.
    pub(super) fn pick(&self, key: &str, tried: &[SocketAddr], start: &mut Option<usize>) -> Pick {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let Some(backends) = table.get(key) else { return Pick::Unknown };
        let n = backends.replicas.len();
        if tried.is_empty() {
            backends.last_request.store(self.clock.now_ms(), Ordering::Relaxed);
        }
        if n == 0 {
            return Pick::Exhausted(backends.traffic.clone());
        }
        let first = *start.get_or_insert_with(|| backends.next.fetch_add(1, Ordering::Relaxed));
        (0..n)
            .map(|i| &backends.replicas[(first + i) % n])
            .filter(|link| !tried.contains(&link.addr))
            .find_map(InFlight::new)
            .map_or_else(
                || Pick::Exhausted(backends.traffic.clone()),
                |in_flight| Pick::Replica(in_flight, backends.traffic.clone()),
            )
    }
}
