//! Slows password guessing before any password is checked (keyed token buckets from
//! `governor`; past a budget, login answers 429 with `Retry-After`):
//! - each (username, client address) pair gets a small budget that refills slowly, so a
//!   guesser is slowed on that account while the account's owner, signing in from
//!   elsewhere, is not locked out by someone else's wrong passwords;
//! - each client address gets a larger budget across all usernames, so a flood of
//!   made-up usernames from one place is cut off too.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ServiceError;

/// Attempts allowed in a burst per (username, address), and how fast the budget
/// refills (one per interval).
pub const BURST: u32 = 10;
pub const REFILL_EVERY: Duration = Duration::from_secs(6);

/// Attempts allowed in a burst per client address, whatever the username.
pub const ADDRESS_BURST: u32 = 30;
pub const ADDRESS_REFILL_EVERY: Duration = Duration::from_secs(1);

/// More keys than this and a limiter forgets the ones that have fully refilled, so a
/// flood of made-up usernames cannot grow memory without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct LoginThrottle {
    per_account: DefaultKeyedRateLimiter<(String, IpAddr)>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

fn quota(burst: u32, every: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(every).unwrap_or_else(|| Quota::per_second(burst)).allow_burst(burst)
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            per_account: RateLimiter::keyed(quota(BURST, REFILL_EVERY)),
            per_address: RateLimiter::keyed(quota(ADDRESS_BURST, ADDRESS_REFILL_EVERY)),
        }
    }
}

impl LoginThrottle {
    /// Spends one attempt for `username` from `address`, or answers how long to wait.
    pub fn check(&self, username: &str, address: IpAddr) -> Result<(), ServiceError> {
        if self.per_account.len() > MAX_TRACKED {
            self.per_account.retain_recent();
        }
        if self.per_address.len() > MAX_TRACKED {
            self.per_address.retain_recent();
        }
        let refused = |not_until: governor::NotUntil<_>| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ServiceError::RateLimited { retry_after_secs: wait.as_secs().max(1) }
        };
        let address = network_of(address);
        self.per_address.check_key(&address).map_err(refused)?;
        let key: String = username.chars().take(64).collect();
        self.per_account.check_key(&(key, address)).map_err(refused)
    }
}

/// The key for a client address: an IPv6 client is its /64 (one host is usually given a
/// whole /64, and would otherwise have 2^64 budgets).
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(segments[0], segments[1], segments[2], segments[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_per_username_and_address() {
        let throttle = LoginThrottle::default();
        let (here, there): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..BURST {
            assert!(throttle.check("ana", here).is_ok());
        }
        match throttle.check("ana", here) {
            Err(ServiceError::RateLimited { retry_after_secs }) => assert!((1..=6).contains(&retry_after_secs)),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(throttle.check("ana", there).is_ok(), "ana from elsewhere is not locked out");
        assert!(throttle.check("bob", here).is_ok(), "other users are unaffected");
    }

    #[test]
    fn one_address_trying_many_usernames_is_refused() {
        let throttle = LoginThrottle::default();
        let here: IpAddr = "10.0.0.3".parse().unwrap();
        let allowed = (0..100).filter(|n| throttle.check(&format!("user{n}"), here).is_ok()).count();
        assert_eq!(allowed, ADDRESS_BURST as usize);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(network_of(a), network_of(b), "one /64 is one client");
    }
}
