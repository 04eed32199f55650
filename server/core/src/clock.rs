//! Where decisions read "now": the [`Clock`] trait and the system's wall clock. Here, in
//! the domain crate, so that every layer reads the one clock slipwayd is given (the
//! router stamping an environment's last request, the reaper measuring its idleness
//! against that stamp), and a test that moves it moves both.

/// Where a decision reads the time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock: what slipwayd runs with.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
    }
}
