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

/// A log line as stored: no trailing newline, no control characters but tab and the
/// SGR colour sequences (`ESC [ 1;31 m`) that the run page and the CLI show as colours,
/// at most [`MAX_LINE_CHARS`] characters. Every other escape sequence (cursor moves,
/// erasing, window titles) is dropped whole, so none of it reaches a terminal or leaves
/// debris such as `[2K` on the page.
pub fn clean_line(text: &str) -> String {
    let text = text.trim_end_matches(['\r', '\n']);
    let mut clean = String::with_capacity(text.len().min(MAX_LINE_CHARS * 4));
    let mut chars = text.chars().peekable();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if count > MAX_LINE_CHARS {
            break;
        }
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameter bytes, then one final byte in @..~.
                    let mut params = String::new();
                    let mut last = None;
                    for p in chars.by_ref() {
                        if ('@'..='~').contains(&p) {
                            last = Some(p);
                            break;
                        }
                        if params.len() <= MAX_SGR_PARAMS {
                            params.push(p);
                        }
                    }
                    let sgr = last == Some('m')
                        && params.len() <= MAX_SGR_PARAMS
                        && params.chars().all(|p| p.is_ascii_digit() || p == ';');
                    if sgr {
                        clean.push_str("\u{1b}[");
                        clean.push_str(&params);
                        clean.push('m');
                    }
                }
                Some(']') => {
                    // OSC (a window title, a hyperlink): up to BEL or ESC \.
                    while let Some(p) = chars.next() {
                        if p == '\u{7}' || (p == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // Any other escape (`ESC 7`, `ESC ( B`): intermediate bytes in
                // space..'/', then one final byte; drop them all.
                Some(_) => {
                    while chars.next_if(|p| (' '..='/').contains(p)).is_some() {}
                    chars.next();
                }
                None => {}
            }
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        clean.push(c);
        count += 1;
    }
    if count > MAX_LINE_CHARS {
        let cut: String = clean.chars().take(clean.chars().count() - (count - MAX_LINE_CHARS)).collect();
        clean = cut + " [line cut]";
    }
    clean
}

/// The longest SGR parameter list kept (`38;2;255;255;255;1;4` is 20).
const MAX_SGR_PARAMS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned_and_bounded() {
        assert_eq!(clean_line("STEP 1/3: FROM x\r\n"), "STEP 1/3: FROM x");
        assert_eq!(clean_line("\u{1b}[31mred\u{1b}[0m\tok"), "\u{1b}[31mred\u{1b}[0m\tok");
        assert_eq!(clean_line("a\u{1b}[2Kb\u{1b}[1;92mc\u{1b}[m"), "ab\u{1b}[1;92mc\u{1b}[m", "only SGR is kept");
        assert_eq!(clean_line("\u{1b}]0;title\u{7}x\u{1b}]8;;http://e\u{1b}\\y\u{1b}(Bz\u{1b}"), "xyz");
        assert_eq!(clean_line("\u{1b}[31;\u{7}mx"), "x", "a control character inside makes it no SGR");
        let long_sgr = format!("\u{1b}[{}m!", "1;".repeat(40));
        assert_eq!(clean_line(&long_sgr), "!");
        let long = clean_line(&"x".repeat(MAX_LINE_CHARS + 10));
        assert!(long.ends_with(" [line cut]"));
        assert_eq!(long.chars().count(), MAX_LINE_CHARS + " [line cut]".len());
    }
}
