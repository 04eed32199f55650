//! Session tokens: HS256 JWTs with the algorithm pinned and `exp`, `iat` and `aud`
//! checked, so `alg: none`, a foreign audience or an old token is refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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
}

/// The signing key and the rules a token must pass. `Debug` hides the key.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
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
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Issues a token for the user; returns it with its expiry (Unix seconds).
    pub fn issue(&self, user_id: i64, now_secs: i64) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let exp = now_secs + self.ttl_secs;
        let claims = Claims { sub: user_id.to_string(), aud: AUDIENCE.into(), iss: ISSUER.into(), iat: now_secs, exp };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    /// Verifies signature, algorithm, audience, issuer and expiry; returns the user id.
    pub fn verify(&self, token: &str) -> Result<i64, jsonwebtoken::errors::Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        data.claims.sub.parse().map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidSubject.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn now() -> i64 {
        crate::clock::now_ms() / 1000
    }

    #[test]
    fn issues_and_verifies() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let (token, exp) = keys.issue(42, now()).expect("issue");
        assert!(exp > now());
        assert_eq!(keys.verify(&token).expect("valid"), 42);
    }

    #[test]
    fn refuses_forgeries() {
        let keys = JwtKeys::new(b"0123456789abcdef0123456789abcdef", 3600);
        let other = JwtKeys::new(b"another key entirely, 32 bytes!!", 3600);
        let (foreign, _) = other.issue(1, now()).expect("issue");
        assert!(keys.verify(&foreign).is_err(), "bad signature");

        let (expired, _) = keys.issue(1, now() - 7200).expect("issue");
        assert!(keys.verify(&expired).is_err(), "expired");

        let claims = Claims { sub: "1".into(), aud: "other".into(), iss: ISSUER.into(), iat: now(), exp: now() + 60 };
        let wrong_aud = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).expect("encode");
        assert!(keys.verify(&wrong_aud).is_err(), "wrong audience");

        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims { aud: AUDIENCE.into(), ..claims }).expect("json"));
        assert!(keys.verify(&format!("{header}.{body}.")).is_err(), "alg none");
        assert!(keys.verify("not.a.jwt").is_err(), "malformed");
    }
}
