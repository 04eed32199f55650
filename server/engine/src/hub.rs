//! Live fan-out of run events to whoever is watching (a pusher's terminal, `slipway logs
//! -f`, the portal). Only what is already stored (or being stored) is sent, so a
//! watcher that joins late reads the database first and loses nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use slipway_core::run::{RunStatus, Stage, StageStatus};
use tokio::sync::broadcast;

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Log { seq: i64, stage: Stage, line: String },
    Stage { name: Stage, status: StageStatus, duration_ms: Option<i64> },
    Finished { status: RunStatus, reason: String },
}

#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<HashMap<i64, broadcast::Sender<RunEvent>>>,
}

impl Hub {
    /// Subscribes to a run's events from now on. Channels nobody listens to any more are
    /// dropped first: a watcher of a run that had already ended (its `Finished` was
    /// published before it came) would otherwise leave its channel behind for good.
    pub fn subscribe(&self, run_id: i64) -> broadcast::Receiver<RunEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        let receiver = channels.entry(run_id).or_insert_with(|| broadcast::channel(4096).0).subscribe();
        metrics::gauge!("slipway_run_event_channels").set(channels.len() as f64);
        receiver
    }

    /// How many runs have a channel (for tests and the metrics gauge).
    pub fn channels(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn publish(&self, run_id: i64, event: RunEvent) {
        let finished = matches!(event, RunEvent::Finished { .. });
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&run_id) {
            let _ = sender.send(event);
        }
        if finished {
            channels.remove(&run_id);
            metrics::gauge!("slipway_run_event_channels").set(channels.len() as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_of_ended_runs_leave_no_channel_behind() {
        let hub = Hub::default();
        for run in 0..600 {
            drop(hub.subscribe(run));
        }
        assert!(hub.channels() <= 1, "{} channels left", hub.channels());
        let mut live = hub.subscribe(1000);
        drop(hub.subscribe(1001));
        drop(hub.subscribe(1002));
        assert_eq!(hub.channels(), 2, "the watched run's channel stays, the left one goes");
        hub.publish(1000, RunEvent::Finished { status: RunStatus::Succeeded, reason: String::new() });
        assert!(matches!(live.try_recv(), Ok(RunEvent::Finished { .. })));
    }
}
