//! Secret values at rest and in logs: the key that seals them (XChaCha20-Poly1305, a fresh
//! random 192-bit nonce per value, so no nonce bookkeeping is needed) and the [`Masker`]
//! that hides them in every log line Slipway shows.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The prefix of a sealed value: the format version, so the scheme can change later.
const SEALED_PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// What replaces a secret value in logs.
pub const MASK: &str = "********";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes, written as 64 hex digits or 44 base64 characters")]
    BadKey,
    /// Wrong key, a value moved to another row, or tampering: the AEAD tag does not verify.
    #[error("a sealed value does not open with this secret key (was SLIPWAY_SECRET_KEY changed?)")]
    CannotOpen,
}

/// The 256-bit key that seals secrets. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    pub fn generate() -> SecretKey {
        SecretKey(rand::random())
    }

    /// Reads a key written as 64 hex digits or as standard base64 (what [`SecretKey::encode`] writes).
    pub fn parse(text: &str) -> Result<SecretKey, SecretError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16)).collect::<Result<Vec<u8>, _>>().ok()
        } else {
            STANDARD.decode(text).ok()
        };
        let bytes = bytes.ok_or(SecretError::BadKey)?;
        Ok(SecretKey(bytes.try_into().map_err(|_| SecretError::BadKey)?))
    }

    pub fn encode(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A short public name for the installation this key belongs to (every replica of an
    /// installation shares the key), e.g. to keep its images apart from another
    /// installation's on one container engine. One-way: it reveals nothing of the key.
    pub fn installation_id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new().chain_update(b"slipway installation id\0").chain_update(self.0).finalize();
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `plaintext`, bound to `context` (associated data): a sealed value copied to
    /// another environment or key does not open there.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            // Encryption fails only for messages near 2^38 bytes; values are capped far below.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|raw| raw.len() > NONCE_LEN)
            .ok_or(SecretError::CannotOpen)?;
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| SecretError::CannotOpen)?);
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let plain = cipher
            .decrypt(&nonce, Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| SecretError::CannotOpen)?;
        String::from_utf8(plain).map_err(|_| SecretError::CannotOpen)
    }
}

/// Replaces known secret values in text with [`MASK`]. Cheap to clone; empty when an
/// environment has no secrets.
#[derive(Clone, Default)]
pub struct Masker(Arc<Vec<String>>);

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Masker({} values)", self.0.len())
    }
}

impl Masker {
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        // Longest first, so a secret that contains another is hidden whole.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Masker(Arc::new(values))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for value in self.0.iter() {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), MASK));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_installation_id_is_stable_per_key_and_differs_between_keys() {
        let key = SecretKey::generate();
        let same = SecretKey::parse(&key.encode()).expect("parse");
        assert_eq!(key.installation_id(), same.installation_id(), "replicas sharing a key share the id");
        assert_ne!(key.installation_id(), SecretKey::generate().installation_id());
        let id = key.installation_id();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}: valid in an image name");
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key.seal("hunter2-password", "env:1:DB_PASSWORD");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(key.open(&sealed, "env:1:DB_PASSWORD").as_deref(), Ok("hunter2-password"));
        // The same plaintext seals differently each time (fresh nonce).
        assert_ne!(sealed, key.seal("hunter2-password", "env:1:DB_PASSWORD"));
        assert_eq!(key.open(&sealed, "env:2:DB_PASSWORD"), Err(SecretError::CannotOpen));
        assert_eq!(SecretKey::generate().open(&sealed, "env:1:DB_PASSWORD"), Err(SecretError::CannotOpen));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(&String::from_utf8(tampered).unwrap(), "env:1:DB_PASSWORD"), Err(SecretError::CannotOpen));
        assert_eq!(key.open("v1:", "x"), Err(SecretError::CannotOpen));
        assert_eq!(key.open("plain text", "x"), Err(SecretError::CannotOpen));
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_round_trip() {
        let key = SecretKey::generate();
        let again = SecretKey::parse(&key.encode()).unwrap();
        assert_eq!(again.0, key.0);
        let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(SecretKey::parse(&hex).unwrap().0, key.0);
        assert_eq!(SecretKey::parse("short").unwrap_err(), SecretError::BadKey);
        assert_eq!(SecretKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err(), SecretError::BadKey);
        assert_eq!(format!("{key:?}"), "SecretKey(***)");
    }

    #[test]
    fn the_masker_hides_every_occurrence_longest_first() {
        let masker = Masker::new(["s3cr3t-token".to_owned(), "s3cr3t".to_owned(), String::new()]);
        assert_eq!(masker.mask("a s3cr3t-token and s3cr3t twice s3cr3t"), "a ******** and ******** twice ********");
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
        assert!(Masker::default().is_empty());
    }
}
