//! Printing results: aligned tables for people, JSON with `--json` for scripts.

use comfy_table::{Table, presets};
use serde::Serialize;

use crate::error::CliError;

pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::usage(format!("encoding JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// A borderless table with upper-case headers, as `gh` and `kubectl` print.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        eprintln!("(none)");
        return;
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        table.add_row(row);
    }
    let text = table.to_string();
    for line in text.lines() {
        println!("{}", line.trim_end().trim_start_matches(' '));
    }
}

/// `2026-11-26T23:56:33.74Z` → `2026-11-26 23:56`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..16).map(|s| s.replace('T', " ")).unwrap_or_else(|| rfc3339.to_owned())
}

pub fn or_dash(text: &str) -> String {
    if text.is_empty() { "-".to_owned() } else { text.to_owned() }
}

/// `950ms`, `12.3s`, `4m 05s`, `3h 20m`, `2d 4h`: a duration at a glance.
pub fn human_duration(ms: i64) -> String {
    let secs = ms / 1000;
    match ms {
        ..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", secs / 60, secs % 60),
        3_600_000..86_400_000 => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d {}h", secs / 86_400, (secs % 86_400) / 3600),
    }
}
