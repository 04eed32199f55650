//! Wall-clock time as stored (Unix milliseconds) and as shown (RFC 3339, UTC), and the
//! [`Clock`] that background work reading "now" for a decision (the reaper's TTLs) is
//! given, so a test can move it without waiting days.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub use slipway_core::clock::{Clock, SystemClock};

/// Formats stored milliseconds for the API.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_as_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_764_201_600_123), "2025-11-27T00:00:00.123Z");
        assert!(now_ms() > 1_764_201_600_000);
    }
}
