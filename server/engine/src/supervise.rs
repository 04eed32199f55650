//! Supervised background loops: the reconcile loop, the workers, the lease reaper, the
//! cluster watches. Each runs in a task of its own, tracked by one [`Supervisor`]; one
//! that panics or returns is logged, counted in `/metrics`
//! (`slipway_background_restarts_total{task}`) and started again after a pause that
//! doubles up to 30 s, so a bug in one pass never silently stops reconciling for the rest
//! of the process's life. At shutdown [`Supervisor::stop`] ends them all and waits.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first pause before a restart; it doubles while the loop keeps dying.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// A loop that ran this long before it died starts again after the first pause.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The background loops of one process, and the token that ends them.
#[derive(Debug, Default)]
pub struct Supervisor {
    tracker: TaskTracker,
    halt: CancellationToken,
}

impl Supervisor {
    /// Runs `start()`'s future as task `name`, and again whenever it ends, until
    /// [`Supervisor::stop`].
    pub fn spawn<F, Fut>(&self, name: &'static str, mut start: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let halt = self.halt.clone();
        self.tracker.spawn(async move {
            let mut pause = FIRST_PAUSE;
            loop {
                let began = Instant::now();
                let pass = tokio::spawn(start());
                // Dropping a JoinHandle detaches its task: an abort on halt ends the pass.
                let pass = tokio_util::task::AbortOnDropHandle::new(pass);
                let why = tokio::select! {
                    () = halt.cancelled() => return,
                    ended = pass => match ended {
                        Ok(()) => "it returned".to_owned(),
                        Err(err) if err.is_panic() => format!("it panicked: {}", panic_text(err.into_panic())),
                        // Cancelled: the runtime is shutting down.
                        Err(_) => return,
                    },
                };
                metrics::counter!("slipway_background_restarts_total", "task" => name).increment(1);
                if began.elapsed() >= HEALTHY_RUN {
                    pause = FIRST_PAUSE;
                }
                tracing::error!(
                    task = name,
                    why,
                    restart_in_ms = pause.as_millis() as u64,
                    "a background loop stopped"
                );
                tokio::select! {
                    () = halt.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
        });
    }

    /// Ends every loop (a pass under way is aborted: each is safe to cut, as a killed
    /// process would) and waits for them, at most `within`. Answers whether they all ended.
    pub async fn stop(&self, within: Duration) -> bool {
        self.halt.cancel();
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait()).await.is_ok()
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload.downcast::<&'static str>().map(|s| (*s).to_owned()).unwrap_or_else(|_| "?".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_loop_that_panics_or_returns_is_started_again() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let supervisor = Supervisor::default();
        supervisor.spawn("test", move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => panic!("a bug in the first pass"),
                    1 => {} // returns
                    _ => std::future::pending::<()>().await,
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while starts.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < deadline, "restarted twice within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The third pass runs on; nothing starts it again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        assert!(supervisor.stop(Duration::from_secs(5)).await, "the pending pass ends at stop");
    }

    #[tokio::test]
    async fn stop_ends_loops_and_their_restarts() {
        let starts = Arc::new(AtomicUsize::new(0));
        let counted = starts.clone();
        let supervisor = Supervisor::default();
        // A loop that dies at once, again and again, and one that never ends.
        supervisor.spawn("dying", move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        supervisor.spawn("endless", std::future::pending::<()>);
        let deadline = Instant::now() + Duration::from_secs(5);
        while starts.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "restarted within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(supervisor.stop(Duration::from_secs(5)).await, "both loops end");
        let after = starts.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(starts.load(Ordering::SeqCst), after, "nothing restarts after stop");
    }

    #[test]
    fn panic_payloads_are_read() {
        assert_eq!(panic_text(Box::new("static")), "static");
        assert_eq!(panic_text(Box::new(String::from("owned"))), "owned");
        assert_eq!(panic_text(Box::new(42)), "?");
    }
}
