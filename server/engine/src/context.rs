//! Build contexts waiting for their run: `<contexts>/<run>.tar` (the exported tree) and
//! `<run>.json` (how to build it), written before the run is queued and removed when it
//! ends.

use std::path::{Path, PathBuf};

pub use slipway_core::workloads::{BuildSettings, DEFAULT_HEALTH, DEFAULT_PORT};

pub fn tar_path(dir: &Path, run_id: i64) -> PathBuf {
    dir.join(format!("{run_id}.tar"))
}

pub fn settings_path(dir: &Path, run_id: i64) -> PathBuf {
    dir.join(format!("{run_id}.json"))
}

pub async fn write_settings(dir: &Path, run_id: i64, settings: &BuildSettings) -> std::io::Result<()> {
    let json = serde_json::to_vec(settings).map_err(std::io::Error::other)?;
    tokio::fs::write(settings_path(dir, run_id), json).await
}

pub async fn read_settings(dir: &Path, run_id: i64) -> std::io::Result<BuildSettings> {
    let bytes = tokio::fs::read(settings_path(dir, run_id)).await?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

/// Removes a run's context files; missing files are fine.
pub async fn remove(dir: &Path, run_id: i64) {
    let _ = tokio::fs::remove_file(tar_path(dir, run_id)).await;
    let _ = tokio::fs::remove_file(settings_path(dir, run_id)).await;
}
