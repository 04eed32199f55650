//! Where the CLI finds its server and token: `SLIPWAY_SERVER` / `SLIPWAY_TOKEN`, else the
//! config file (`SLIPWAY_CONFIG`, default `~/.config/slipway/config.toml`) that `login`
//! writes with mode 0600.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// The stored login.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredLogin {
    pub server: String,
    pub username: String,
    pub token: String,
    /// The name of the API token `login` created, revoked by `logout`.
    pub token_name: String,
}

impl std::fmt::Debug for StoredLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredLogin")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("token", &"***")
            .field("token_name", &self.token_name)
            .finish()
    }
}

pub fn config_path() -> Result<PathBuf, CliError> {
    if let Some(path) = std::env::var_os("SLIPWAY_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| CliError::usage("HOME is not set; set SLIPWAY_CONFIG to a config file path"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("slipway").join("config.toml"))
}

pub fn load() -> Result<Option<StoredLogin>, CliError> {
    let path = config_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(CliError::usage(format!("cannot read {}: {err}", path.display()))),
    };
    toml::from_str(&text).map(Some).map_err(|e| {
        CliError::usage(format!("{} is not a valid slipway config ({e}); run `slipway login` again", path.display()))
    })
}

pub fn save(login: &StoredLogin) -> Result<PathBuf, CliError> {
    let path = config_path()?;
    let text = toml::to_string(login).map_err(|e| CliError::usage(format!("encoding the config: {e}")))?;
    write_private(&path, text.as_bytes())
        .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

pub fn remove() -> Result<bool, CliError> {
    let path = config_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(CliError::usage(format!("cannot remove {}: {err}", path.display()))),
    }
}

/// Writes the file with mode 0600 from the start (no window where it is world-readable),
/// replacing it atomically.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The server and token to use for a command: environment first, then the file.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub token: Option<String>,
}

pub fn target() -> Result<Target, CliError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let stored = load()?;
    let server = env("SLIPWAY_SERVER")
        .or_else(|| stored.as_ref().map(|s| s.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_owned());
    let token = env("SLIPWAY_TOKEN").or_else(|| stored.map(|s| s.token));
    Ok(Target { server: normalize_server(&server)?, token })
}

/// Checks and normalises a server URL (no trailing slash).
pub fn normalize_server(server: &str) -> Result<String, CliError> {
    let parsed = url::Url::parse(server)
        .map_err(|_| CliError::usage(format!("server {server:?} is not a URL like http://127.0.0.1:7700")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(CliError::usage(format!("server {server:?} must be an http:// or https:// URL")));
    }
    Ok(server.trim_end_matches('/').to_owned())
}
