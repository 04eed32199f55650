//! First-start chores: the initial admin account and the session signing key.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use slipway_core::secrets::SecretKey;
use slipway_store::Store;

use crate::ServiceError;
use crate::auth::password::{hash_password, validate_password};
use crate::clock::now_ms;

pub const INITIAL_ADMIN: &str = "admin";
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";
pub const SIGNING_KEY_FILE: &str = "session-signing-key";
/// Where the generated key for config secrets lives in the data dir.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// What first start did about the admin account.
#[derive(Debug, PartialEq, Eq)]
pub enum InitialAdmin {
    /// Users already existed; nothing was done.
    Existing,
    /// Created with the password from the environment.
    FromEnvironment,
    /// Created with a random password, written to the returned file.
    Generated { password: String, file: std::path::PathBuf },
}

/// Creates user `admin` when the database has no users. The password comes from
/// `env_password` (SLIPWAY_ADMIN_PASSWORD) or is generated and written to
/// `<data-dir>/initial-admin-password` with mode 0600.
pub async fn ensure_initial_admin(
    store: &Store,
    data_dir: &Path,
    env_password: Option<String>,
) -> Result<InitialAdmin, ServiceError> {
    let (password, generated) = match env_password {
        Some(password) => {
            validate_password(&password).map_err(|e| ServiceError::invalid("SLIPWAY_ADMIN_PASSWORD", e.to_string()))?;
            (password, false)
        }
        None => (random_password(), true),
    };
    let hash = hash_password(password.clone()).await?;
    if store.create_initial_admin(INITIAL_ADMIN, &hash, now_ms()).await?.is_none() {
        return Ok(InitialAdmin::Existing);
    }
    if !generated {
        return Ok(InitialAdmin::FromEnvironment);
    }
    let file = data_dir.join(INITIAL_PASSWORD_FILE);
    write_private(&file, format!("{password}\n").as_bytes())
        .map_err(|e| ServiceError::internal_from(format!("writing {}", file.display()), e))?;
    Ok(InitialAdmin::Generated { password, file })
}

fn random_password() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The session signing key: the configured secret, else a key generated once into
/// `<data-dir>/session-signing-key` (mode 0600). Replicas sharing a PostgreSQL database
/// must be given the same secret through configuration.
pub fn load_signing_key(data_dir: &Path, configured: Option<&str>) -> Result<Vec<u8>, String> {
    if let Some(secret) = configured {
        if secret.len() < 32 {
            return Err("the session signing secret (SLIPWAY_JWT_SECRET) must be at least 32 characters".to_owned());
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SIGNING_KEY_FILE);
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => return Err(format!("{} is shorter than 32 bytes; delete it to generate a new key", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(format!("reading {}: {err}", path.display())),
    }
    let mut key = vec![0u8; 64];
    rand::rng().fill_bytes(&mut key);
    write_private(&path, &key).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(key)
}

/// The key that seals config secrets: the configured one (`SLIPWAY_SECRET_KEY`), else
/// `<data-dir>/secret.key`, generated on first start.
pub fn load_secret_key(data_dir: &Path, configured: Option<&str>) -> Result<SecretKey, String> {
    if let Some(text) = configured {
        return SecretKey::parse(text).map_err(|e| format!("SLIPWAY_SECRET_KEY: {e}"));
    }
    let path = data_dir.join(SECRET_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return SecretKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()));
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(format!("reading {}: {err}", path.display())),
    }
    let key = SecretKey::generate();
    write_private(&path, format!("{}\n", key.encode()).as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(key)
}

/// Writes a new file readable by its owner only; refuses to overwrite.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_is_generated_once_or_taken_from_the_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_secret_key(dir.path(), None).expect("generated");
        let sealed = first.seal("value-123", "ctx");
        let second = load_secret_key(dir.path(), None).expect("read back");
        assert_eq!(second.open(&sealed, "ctx").as_deref(), Ok("value-123"));
        let configured = load_secret_key(dir.path(), Some(&"ab".repeat(32))).expect("hex key");
        assert!(configured.open(&sealed, "ctx").is_err(), "the configured key wins over the file");
        let bad = load_secret_key(dir.path(), Some("too-short")).unwrap_err();
        assert!(bad.contains("SLIPWAY_SECRET_KEY"), "{bad}");
    }

    #[test]
    fn signing_key_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_signing_key(dir.path(), None).expect("generated");
        let second = load_signing_key(dir.path(), None).expect("read back");
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE)).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(load_signing_key(dir.path(), Some("too short")).is_err());
        let configured = "x".repeat(32);
        assert_eq!(load_signing_key(dir.path(), Some(&configured)).expect("configured"), configured.as_bytes());
    }
}
