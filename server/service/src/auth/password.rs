//! Password hashing with argon2id (the crate's defaults follow OWASP's recommendation),
//! run on the blocking pool because a hash takes tens of milliseconds of CPU and 19 MiB
//! of memory. A few run at once ([`HASHING_AT_ONCE`]); the rest wait briefly and are
//! then refused as busy, so a flood of logins cannot take the server's memory or make a
//! real user wait behind hundreds of hashes.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::ServiceError;

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks the password rules before anything is stored.
pub fn validate_password(password: &str) -> Result<(), ServiceError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(ServiceError::invalid(
            "password",
            format!("password must be at least {MIN_PASSWORD_LEN} characters long"),
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(ServiceError::invalid(
            "password",
            format!("password must be at most {MAX_PASSWORD_LEN} characters long"),
        ));
    }
    Ok(())
}

/// How many hashes run at once, and how long a caller waits for a turn before the
/// server answers 503 with `Retry-After`.
pub const HASHING_AT_ONCE: usize = 2;
pub const HASHING_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// A turn on the hashing pool, or `Busy`.
async fn turn() -> Result<tokio::sync::SemaphorePermit<'static>, ServiceError> {
    match tokio::time::timeout(HASHING_WAIT, HASHING.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ServiceError::Busy { retry_after_secs: 1 }),
    }
}

pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    let permit = turn().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| ServiceError::internal_from("hashing a password", e))
    })
    .await
    .map_err(|e| ServiceError::internal_from("password hashing task", e))?
}

/// Whether `password` matches `stored` (a malformed stored hash never matches), or
/// `Busy` when no turn on the hashing pool came in time.
pub async fn verify_password(password: String, stored: String) -> Result<bool, ServiceError> {
    let permit = turn().await?;
    let matches = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        PasswordHash::new(&stored)
            .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    Ok(matches)
}

/// A hash that verifies nothing, compared against when a user does not exist so that a
/// login takes as long for an unknown user as for a wrong password.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2xpcHdheWR1bW15c2FsdA$0uaoWJvyICZbS1QC/SgPBF+DkxYIiPSGyJ01fG1j9bA";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse".into(), hash.clone()).await.unwrap());
        assert!(!verify_password("wrong horse".into(), hash).await.unwrap());
        assert!(!verify_password("x".into(), "not a hash".into()).await.unwrap());
        assert!(!verify_password("".into(), DUMMY_HASH.into()).await.unwrap());
    }

    #[test]
    fn password_length_rules() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
    }
}
