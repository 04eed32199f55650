//! Session tokens: HS256 JWTs with the algorithm pinned and `exp`, `iat` and `aud`
//! checked, so `alg: none`, a foreign audience or an old token is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const AUDIENCE: &str = "slipway";
pub const ISSUER: &str = "slipwayd";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// The session's id: what signing out revokes.
    pub jti: String,
    /// When it was issued, in Unix ms (`iat` is whole seconds): compared with the
    /// user's `sessions_after`, which a password change moves.
    #[serde(default)]
    pub iat_ms: i64,
}

/// What a verified session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: i64,
    pub jti: String,
    pub issued_ms: i64,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

/// The signing key and the rules a token must pass. `Debug` hides the key.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Keys the portal's CSRF tokens (HMAC-SHA256, domain-separated from the JWTs).
    mac_key: Vec<u8>,
    /// How long a session token lives, in seconds.
    pub ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("key", &"***").field("ttl_secs", &self.ttl_secs).finish()
    }
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: i64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub", "jti"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            mac_key: secret.to_vec(),
            ttl_secs,
        }
    }

    fn mac(&self, purpose: &str, binding: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.mac_key).expect("HMAC takes keys of any length");
        mac.update(b"slipway-csrf\0");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(binding.as_bytes());
        mac
    }

    /// A CSRF token bound to `binding` (a session token, or a sign-in form's nonce): a
    /// page from another site cannot know it, and it stops working when the session ends.
    pub fn csrf_token(&self, purpose: &str, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, binding).finalize().into_bytes())
    }

    /// Checks a presented CSRF token in constant time.
    pub fn verify_csrf(&self, purpose: &str, binding: &str, presented: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(presented.trim()) {
            Ok(bytes) => self.mac(purpose, binding).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// Issues a token for the user at `now_ms`; returns it with its expiry (Unix seconds).
    pub fn issue(&self, user_id: i64, now_ms: i64) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        use rand::RngCore;
        let now_secs = now_ms / 1000;
        let exp = now_secs + self.ttl_secs;
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let claims = Claims {
            sub: user_id.to_string(),
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            iat: now_secs,
            exp,
            jti: URL_SAFE_NO_PAD.encode(id),
            iat_ms: now_ms,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verifies signature, algorithm, audience, issuer and expiry; answers the session.
    /// (Whether it was revoked since is the database's to say.)
    pub fn verify(&self, token: &str) -> Result<Session, jsonwebtoken::errors::Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        let claims = data.claims;
        let user_id = claims.sub.parse().map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidSubject)?;
        let issued_ms = if claims.iat_ms > 0 { claims.iat_ms } else { claims.iat * 1000 };
        Ok(Session { user_id, jti: claims.jti, issued_ms, exp: claims.exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn now() -> i64 {
        crate::clock::now_ms()
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_purpose() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let token = keys.csrf_token("session", "jwt-a");
        assert!(keys.verify_csrf("session", "jwt-a", &token));
        assert!(!keys.verify_csrf("session", "jwt-b", &token), "another session");
        assert!(!keys.verify_csrf("login", "jwt-a", &token), "another purpose");
        assert!(!keys.verify_csrf("session", "jwt-a", ""), "missing");
        assert!(!keys.verify_csrf("session", "jwt-a", "not base64!"), "garbage");
        let other = JwtKeys::new(b"another key entirely, 32 bytes!!", 3600);
        assert!(!other.verify_csrf("session", "jwt-a", &token), "another server key");
    }

    #[test]
    fn issues_and_verifies() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let (token, exp) = keys.issue(42, now()).expect("issue");
        assert!(exp > now() / 1000);
        let session = keys.verify(&token).expect("valid");
        assert_eq!(session.user_id, 42);
        let (again, _) = keys.issue(42, now()).expect("issue");
        assert_ne!(keys.verify(&again).expect("valid").jti, session.jti, "each session has its own id");
    }

    #[test]
    fn refuses_forgeries() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let other = JwtKeys::new(b"another key entirely, 32 bytes!!", 3600);
        let (foreign, _) = other.issue(1, now()).expect("issue");
        assert!(keys.verify(&foreign).is_err(), "bad signature");

        let (expired, _) = keys.issue(1, now() - 7_200_000).expect("issue");
        assert!(keys.verify(&expired).is_err(), "expired");

        let secs = now() / 1000;
        let claims = Claims {
            sub: "1".into(),
            aud: "other".into(),
            iss: ISSUER.into(),
            iat: secs,
            exp: secs + 60,
            jti: "x".into(),
            iat_ms: 0,
        };
        let wrong_aud = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).expect("encode");
        assert!(keys.verify(&wrong_aud).is_err(), "wrong audience");

        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims { aud: AUDIENCE.into(), ..claims }).expect("json"));
        assert!(keys.verify(&format!("{header}.{body}.")).is_err(), "alg none");
        assert!(keys.verify("not.a.jwt").is_err(), "malformed");
    }
}
