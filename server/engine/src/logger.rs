//! A run's log: every line is published live at once and written to the database in
//! batches (one INSERT per batch), so a chatty build costs few writes and nothing is
//! lost: `close` waits until every line is stored. Each stage's output is capped (lines
//! and bytes), so one run cannot fill the database or the writer's queue.

use slipway_core::run::Stage;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use slipway_core::secrets::Masker;
use slipway_store::Store;
use slipway_store::runs::LogRow;
use tokio::sync::mpsc;

use crate::hub::{Hub, RunEvent};
use crate::now_ms;

/// Largest number of lines written per INSERT.
const BATCH: usize = 200;

/// Longer lines are cut (a minified file echoed by a build must not bloat the log).
const MAX_LINE_CHARS: usize = 4096;

/// Lines and bytes one stage of a run may log; past either, one marker line says so and
/// the stage's later lines are dropped. Per stage, so that a build that prints without
/// end still leaves room for the deploy's lines that say what happened.
pub const MAX_STAGE_LINES: u64 = 10_000;
pub const MAX_STAGE_BYTES: u64 = 4 * 1024 * 1024;

/// What each stage has logged so far: (lines, bytes, cut).
type Budget = Arc<Mutex<HashMap<Stage, (u64, u64, bool)>>>;

#[derive(Debug, Clone)]
pub struct RunLog {
    run_id: i64,
    seq: Arc<AtomicI64>,
    tx: mpsc::UnboundedSender<LogRow>,
    engine: crate::Engine,
    /// Hides the secrets of the run's environment in every line.
    masker: Masker,
    budget: Budget,
}

/// Waits for the writer to store every line.
#[derive(Debug)]
pub struct LogWriter(tokio::task::JoinHandle<()>);

impl LogWriter {
    pub async fn close(self) {
        let _ = self.0.await;
    }
}

impl RunLog {
    /// Starts the writer task. Lines continue after `first_seq` (lines already stored).
    pub(crate) fn open(
        engine: &crate::Engine,
        store: Store,
        run_id: i64,
        first_seq: i64,
        masker: Masker,
    ) -> (RunLog, LogWriter) {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogRow>();
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(row) => batch.push(row),
                        Err(_) => break,
                    }
                }
                if let Err(err) = store.append_logs(run_id, &batch).await {
                    tracing::error!(%err, run_id, "storing run log lines");
                }
                batch.clear();
            }
        });
        let log = RunLog {
            run_id,
            seq: Arc::new(AtomicI64::new(first_seq)),
            tx,
            engine: engine.clone(),
            masker,
            budget: Budget::default(),
        };
        (log, LogWriter(writer))
    }

    /// Appends one line (a trailing newline is removed; control characters other than
    /// tab are dropped so logs cannot repaint a terminal; secrets are masked).
    pub fn line(&self, stage: Stage, text: &str) {
        let clean = self.masker.mask(&clean_line(text)).into_owned();
        match self.spend(stage, clean.len() as u64) {
            Spend::Within => self.emit(stage, clean),
            Spend::JustOver => self.emit(
                stage,
                format!(
                    "[log cut: the {stage} stage printed more than {MAX_STAGE_LINES} lines or {} MiB; its later lines are dropped]",
                    MAX_STAGE_BYTES / (1024 * 1024)
                ),
            ),
            Spend::Over => {}
        }
    }

    /// Counts a line of `bytes` against its stage's budget.
    fn spend(&self, stage: Stage, bytes: u64) -> Spend {
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, used, cut) = budget.entry(stage).or_default();
        if *cut {
            return Spend::Over;
        }
        if *lines + 1 > MAX_STAGE_LINES || *used + bytes > MAX_STAGE_BYTES {
            *cut = true;
            return Spend::JustOver;
        }
        *lines += 1;
        *used += bytes;
        Spend::Within
    }

    fn emit(&self, stage: Stage, clean: String) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let row = LogRow { seq, at: now_ms(), stage: stage.as_str().to_owned(), line: clean.clone() };
        let _ = self.tx.send(row);
        self.engine.hub().publish(self.run_id, RunEvent::Log { seq, stage, line: clean });
    }

    pub(crate) fn hub(&self) -> &Hub {
        self.engine.hub()
    }
}

enum Spend {
    Within,
    /// This line is the first past the budget: the marker goes in its place.
    JustOver,
    Over,
}

/// A log line as stored: no trailing newline, no control characters but tab, at most
/// [`MAX_LINE_CHARS`] characters.
pub fn clean_line(text: &str) -> String {
    let mut clean: String = text
        .trim_end_matches(['\r', '\n'])
        .chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .take(MAX_LINE_CHARS + 1)
        .collect();
    if clean.chars().count() > MAX_LINE_CHARS {
        clean = clean.chars().take(MAX_LINE_CHARS).collect::<String>() + " [line cut]";
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned_and_bounded() {
        assert_eq!(clean_line("STEP 1/3: FROM x\r\n"), "STEP 1/3: FROM x");
        assert_eq!(clean_line("\u{1b}[31mred\u{1b}[0m\tok"), "[31mred[0m\tok");
        let long = clean_line(&"x".repeat(MAX_LINE_CHARS + 10));
        assert!(long.ends_with(" [line cut]"));
        assert_eq!(long.chars().count(), MAX_LINE_CHARS + " [line cut]".len());
    }
}
