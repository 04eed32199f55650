//! Build contexts waiting for their run: `<contexts>/<run>.tar` (the exported tree) and
//! `<run>.json` (how to build it), written before the run is queued and removed when it
//! ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How to build a context, from the repository's `slipway.toml` and files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSettings {
    /// Path of the Containerfile/Dockerfile inside the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    /// The port the web process listens on, and its health path (`[web]` in
    /// slipway.toml); when given they win over the environment template's.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub health: Option<String>,
    /// `[processes]`: commands a template's workload can name with `process`.
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
    /// `[release] command`: run once per release before traffic moves.
    #[serde(default)]
    pub release_command: Option<String>,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_HEALTH: &str = "/";

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
