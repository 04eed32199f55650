//! Slows password guessing: each username gets a small budget of login attempts that
//! refills over time (a keyed token bucket from `governor`); past it, login answers 429
//! with `Retry-After` before any password is checked.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ServiceError;

/// Attempts allowed in a burst, and how fast the budget refills (one per interval).
pub const BURST: u32 = 10;
pub const REFILL_EVERY: Duration = Duration::from_secs(6);

/// More keys than this and the limiter forgets the ones that have fully refilled, so a
/// flood of made-up usernames cannot grow memory without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct LoginThrottle {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(REFILL_EVERY).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst);
        LoginThrottle { limiter: RateLimiter::keyed(quota) }
    }
}

impl LoginThrottle {
    /// Spends one attempt for `username`, or answers how long to wait.
    pub fn check(&self, username: &str) -> Result<(), ServiceError> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        let key: String = username.chars().take(64).collect();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ServiceError::RateLimited { retry_after_secs: wait.as_secs().max(1) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_username() {
        let throttle = LoginThrottle::default();
        for _ in 0..BURST {
            assert!(throttle.check("ana").is_ok());
        }
        match throttle.check("ana") {
            Err(ServiceError::RateLimited { retry_after_secs }) => assert!((1..=6).contains(&retry_after_secs)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(throttle.check("bob").is_ok(), "other users are unaffected");
    }
}
