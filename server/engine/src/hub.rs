//! Live fan-out of run events to whoever is watching (a pusher's terminal, `slipway logs
//! -f`, the portal). Only what is already stored (or being stored) is sent, so a
//! watcher that joins late reads the database first and loses nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    Log { seq: i64, stage: String, line: String },
    Stage { name: String, status: String, duration_ms: Option<i64> },
    Finished { status: String, reason: String },
}

#[derive(Debug, Default)]
pub struct Hub {
    channels: Mutex<HashMap<i64, broadcast::Sender<RunEvent>>>,
}

impl Hub {
    /// Subscribes to a run's events from now on.
    pub fn subscribe(&self, run_id: i64) -> broadcast::Receiver<RunEvent> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.entry(run_id).or_insert_with(|| broadcast::channel(4096).0).subscribe()
    }

    pub fn publish(&self, run_id: i64, event: RunEvent) {
        let finished = matches!(event, RunEvent::Finished { .. });
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&run_id) {
            let _ = sender.send(event);
        }
        if finished {
            channels.remove(&run_id);
        }
    }
}
