//! Per-environment traffic figures: the router's tally of each environment (requests,
//! 5xx answers, time to the response's head), taken and stored each minute, and read back
//! with the minute still being counted.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use slipway_core::traffic::{BUCKETS, Figures, bucket_of};
use slipway_store::traffic::TrafficMinute;

use crate::{Engine, deploy, now_ms};

/// How long stored minutes are kept.
pub const TRAFFIC_KEPT: Duration = Duration::from_secs(24 * 3600);

/// What the router has counted for one environment since the tally was last taken.
/// Lock-free: recorded on every request.
#[derive(Debug)]
pub(crate) struct Tally {
    /// When counting began (Unix ms): the last take.
    since_ms: AtomicI64,
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            since_ms: AtomicI64::new(now_ms()),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts one answered request: its status and how long its head took.
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.buckets[bucket_of(elapsed.as_secs_f64() * 1000.0)].fetch_add(1, Ordering::Relaxed);
    }

    /// The figures so far and when counting began, leaving them counted.
    pub(crate) fn peek(&self) -> (Figures, i64) {
        let figures = Figures {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            buckets: self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
        };
        (figures, self.since_ms.load(Ordering::Relaxed))
    }

    /// The figures so far and when counting began, counting starting again from zero. (A
    /// request recorded during the take may count its parts in two minutes; never twice,
    /// never lost.)
    pub(crate) fn take(&self) -> (Figures, i64) {
        let since = self.since_ms.swap(now_ms(), Ordering::Relaxed);
        let figures = Figures {
            requests: self.requests.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
            buckets: self.buckets.iter().map(|b| b.swap(0, Ordering::Relaxed)).collect(),
        };
        (figures, since)
    }

    /// Counts again figures taken but not stored.
    pub(crate) fn restore(&self, figures: &Figures) {
        self.requests.fetch_add(figures.requests, Ordering::Relaxed);
        self.errors.fetch_add(figures.errors, Ordering::Relaxed);
        for (bucket, count) in self.buckets.iter().zip(&figures.buckets) {
            bucket.fetch_add(*count, Ordering::Relaxed);
        }
    }
}

/// Takes the tallies at every minute's turn and stores them.
pub(crate) async fn record_traffic(engine: Engine) {
    loop {
        let into_minute = u64::try_from(now_ms().rem_euclid(60_000)).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute)).await;
        engine.flush_traffic().await;
    }
}

impl Engine {
    /// Stores what the router counted since the last flush, each environment's under the
    /// minute its counting began (the one now ending, or a later one after a late wake or
    /// a mid-minute stop), and prunes old minutes. What cannot be stored is counted again
    /// for the next flush.
    pub async fn flush_traffic(&self) {
        let environments = match self.store().live_environments().await {
            Ok(environments) => environments,
            Err(err) => return tracing::warn!(%err, "listing environments to store their traffic"),
        };
        let ids: std::collections::HashMap<String, i64> =
            environments.iter().map(|env| (deploy::route_key(&env.service, &env.name), env.id)).collect();
        let mut minutes = Vec::new();
        let mut keys = Vec::new();
        // Routes of environments destroyed meanwhile have no id: their counts go with them.
        for (key, figures, since) in self.route_table().take_traffic() {
            if let Some(id) = ids.get(&key) {
                minutes.push(TrafficMinute { environment_id: *id, minute: since.div_euclid(60_000) * 60, figures });
                keys.push(key);
            }
        }
        if let Err(err) = self.store().record_traffic(&minutes).await {
            tracing::warn!(%err, minutes = minutes.len(), "storing traffic figures; trying again next minute");
            for (key, minute) in keys.iter().zip(&minutes) {
                self.route_table().restore_traffic(key, &minute.figures);
            }
        }
        let kept = i64::try_from(TRAFFIC_KEPT.as_secs()).unwrap_or(i64::MAX);
        if let Err(err) = self.store().prune_traffic(now_ms() / 1000 - kept).await {
            tracing::warn!(%err, "pruning traffic figures");
        }
    }

    /// What the router has counted for an environment since the last flush, and since
    /// when (Unix ms); none when it is not routed here.
    pub fn traffic_now(&self, service: &str, environment: &str) -> Option<(Figures, i64)> {
        self.route_table().peek_traffic(&deploy::route_key(service, environment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_until_taken() {
        let tally = Tally::new();
        tally.record(200, Duration::from_millis(3));
        tally.record(503, Duration::from_micros(50));
        tally.record(404, Duration::from_secs(2));
        let (peeked, since) = tally.peek();
        assert!(since > 0);
        assert_eq!((peeked.requests, peeked.errors), (3, 1));
        assert_eq!(peeked.buckets[bucket_of(3.0)], 1);
        assert_eq!(peeked.buckets[0], 1);
        assert_eq!(tally.take(), (peeked.clone(), since));
        let (after, later) = tally.peek();
        assert_eq!(after, Figures::default());
        assert!(later >= since);
        tally.restore(&peeked);
        assert_eq!(tally.peek().0, peeked, "figures put back count again");
    }
}
