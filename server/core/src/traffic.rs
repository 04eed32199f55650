//! Traffic figures of one environment over a period: requests, 5xx answers and a latency
//! histogram that sums across minutes and replicas, with its text form for the database.
//!
//! The histogram is written here rather than taken from `hdrhistogram`: the router
//! records into fixed atomic buckets on its hot path (hdrhistogram records through
//! `&mut`, which would put a lock on every request), and the figures are summed row by
//! row from the database, which needs nothing more than bucket-wise addition.

/// Buckets of the latency histogram: bucket `i` holds times up to `bucket_bound_ms(i)`,
/// 0.1 ms × 2^(i/4) (each bound 19 % above the one before), so the last one ends at
/// about 105 s; longer times count in the last bucket.
pub const BUCKETS: usize = 81;

/// The upper bound of bucket `i`, in milliseconds.
pub fn bucket_bound_ms(i: usize) -> f64 {
    0.1 * 2f64.powf(i as f64 / 4.0)
}

/// The bucket a time falls in.
pub fn bucket_of(ms: f64) -> usize {
    if ms.is_nan() || ms <= 0.1 {
        return 0;
    }
    let i = (4.0 * (ms / 0.1).log2()).ceil();
    if i >= (BUCKETS - 1) as f64 { BUCKETS - 1 } else { i as usize }
}

/// Requests, errors and latencies of one environment over some period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub requests: u64,
    /// Requests answered 5xx (by the app, or by the router when no replica could).
    pub errors: u64,
    /// Time to the response's head, bucketed (see [`BUCKETS`]).
    pub buckets: Vec<u64>,
}

impl Default for Figures {
    fn default() -> Figures {
        Figures { requests: 0, errors: 0, buckets: vec![0; BUCKETS] }
    }
}

/// Why a stored histogram could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traffic histogram {0:?} is not a list of BUCKET:COUNT pairs")]
pub struct BadHistogram(pub String);

impl Figures {
    /// Adds another period's figures to these.
    pub fn add(&mut self, other: &Figures) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The share of requests answered 5xx, if there were any requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// The latency under which a share `q` (0..=1) of requests was answered, in ms: the
    /// upper bound of the bucket it falls in (at most 19 % above the true figure).
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        let total = self.buckets.iter().fold(0u64, |sum, n| sum.saturating_add(*n));
        if total == 0 {
            return None;
        }
        // The rank of the request at quantile q, 1-based (nearest-rank method).
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                return Some(bucket_bound_ms(i));
            }
        }
        Some(bucket_bound_ms(BUCKETS - 1))
    }

    /// The histogram as stored: the non-empty buckets as `BUCKET:COUNT`, comma-separated.
    pub fn encode_buckets(&self) -> String {
        let pairs: Vec<String> = self
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(i, count)| format!("{i}:{count}"))
            .collect();
        pairs.join(",")
    }

    /// Reads a stored histogram back (see [`Figures::encode_buckets`]): each bucket at
    /// most once, in order, with a count a database integer holds.
    pub fn decode_buckets(text: &str) -> Result<Vec<u64>, BadHistogram> {
        let mut buckets = vec![0; BUCKETS];
        let mut next = 0;
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let bad = || BadHistogram(text.to_owned());
            let (i, count) = pair.split_once(':').ok_or_else(bad)?;
            let i: usize = i.parse().map_err(|_| bad())?;
            let count: u64 = count.parse().map_err(|_| bad())?;
            if i < next || i >= BUCKETS || count > i64::MAX as u64 {
                return Err(bad());
            }
            buckets[i] = count;
            next = i + 1;
        }
        Ok(buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_fall_in_the_bucket_whose_bound_is_just_above_them() {
        assert_eq!(bucket_of(0.0), 0);
        assert_eq!(bucket_of(0.1), 0);
        assert_eq!(bucket_of(0.11), 1);
        for ms in [0.3, 1.0, 1.7, 12.0, 250.0, 9_999.0] {
            let i = bucket_of(ms);
            assert!(bucket_bound_ms(i) >= ms * 0.999_999, "{ms} ms in bucket {i} ending {}", bucket_bound_ms(i));
            assert!(bucket_bound_ms(i - 1) < ms, "{ms} ms belongs below bucket {i}");
        }
        assert_eq!(bucket_of(1e9), BUCKETS - 1);
        assert!((bucket_bound_ms(40) - 102.4).abs() < 1e-9);
    }

    #[test]
    fn percentiles_come_from_summed_buckets() {
        let mut a = Figures::default();
        for _ in 0..98 {
            a.requests += 1;
            a.buckets[bucket_of(2.0)] += 1;
        }
        let mut b = Figures { requests: 2, errors: 1, ..Figures::default() };
        b.buckets[bucket_of(800.0)] += 2;
        a.add(&b);
        assert_eq!(a.requests, 100);
        assert_eq!(a.error_rate(), Some(0.01));
        let p50 = a.percentile_ms(0.5).unwrap();
        assert!((2.0..2.4).contains(&p50), "p50 {p50}");
        // The 99th of 100 requests is one of the two slow ones.
        let p99 = a.percentile_ms(0.99).unwrap();
        assert!((800.0..952.0).contains(&p99), "p99 {p99}");
        assert_eq!(Figures::default().percentile_ms(0.5), None);
        assert_eq!(Figures::default().error_rate(), None);
        // Sums saturate rather than wrap (or panic).
        let mut huge = Figures { requests: u64::MAX, ..Figures::default() };
        huge.buckets[3] = u64::MAX;
        huge.add(&a);
        assert_eq!((huge.requests, huge.buckets[3]), (u64::MAX, u64::MAX));
        assert!(huge.percentile_ms(0.99).is_some());
    }

    #[test]
    fn the_stored_form_reads_back_and_refuses_garbage() {
        let mut f = Figures::default();
        f.buckets[0] = 3;
        f.buckets[17] = 12;
        f.buckets[BUCKETS - 1] = 1;
        let text = f.encode_buckets();
        assert_eq!(text, "0:3,17:12,80:1");
        assert_eq!(Figures::decode_buckets(&text).unwrap(), f.buckets);
        assert_eq!(Figures::decode_buckets("").unwrap(), vec![0; BUCKETS]);
        for bad in ["3", "x:1", "1:y", "81:1", "1:-2", "1:5,1:6", "4:1,2:1", "1:18446744073709551615"] {
            assert!(Figures::decode_buckets(bad).is_err(), "{bad} was read");
        }
    }
}
