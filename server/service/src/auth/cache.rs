//! A short-lived cache of verified credentials, so a busy client costs no database round
//! trip per request to authenticate. Entries live at most [`TTL`]; revoking a token or
//! changing a user evicts at once, here and, through the store's change notifications,
//! on every other replica. The TTL only bounds staleness if a notification is missed.
//!
//! Hand-written on `dashmap` because the job is small (TTL + explicit eviction) and the
//! general caches (moka) are a large dependency for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::Actor;

pub const TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 10_000;

/// What a credential is cached under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CacheKey {
    /// An API token, by digest.
    Token(String),
    /// A verified, unrevoked session token, by its id (`jti`).
    Session(String),
}

/// A verified credential.
#[derive(Debug, Clone)]
pub struct Cached {
    pub actor: Actor,
    /// For API tokens: its id and expiry (Unix ms), and when its use was last recorded.
    pub token: Option<TokenFacts>,
    cached_at: Instant,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenFacts {
    pub id: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[derive(Debug, Default)]
pub struct AuthCache {
    entries: DashMap<CacheKey, Cached>,
    /// Set when changes from other replicas cannot be followed: then nothing is cached.
    disabled: AtomicBool,
}

impl AuthCache {
    pub fn get(&self, key: &CacheKey) -> Option<Cached> {
        if self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        let hit = self.entries.get(key).map(|e| e.clone())?;
        if hit.cached_at.elapsed() < TTL {
            Some(hit)
        } else {
            self.entries.remove(key);
            None
        }
    }

    pub fn insert(&self, key: CacheKey, actor: Actor, token: Option<TokenFacts>) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, e| e.cached_at.elapsed() < TTL);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, Cached { actor, token, cached_at: Instant::now() });
    }

    /// Records that a token's use was written, so the next write waits its interval.
    pub fn mark_used(&self, key: &CacheKey, at: i64) {
        if let Some(token) = self.entries.get_mut(key).as_deref_mut().and_then(|e| e.token.as_mut()) {
            token.last_used_at = Some(at);
        }
    }

    /// Applies a change notice: `token:<digest>`, `session:<jti>` or `user:<id>`.
    pub fn apply(&self, notice: &str) {
        match notice.split_once(':') {
            Some(("token", digest)) => {
                self.entries.remove(&CacheKey::Token(digest.to_owned()));
            }
            Some(("session", jti)) => {
                self.entries.remove(&CacheKey::Session(jti.to_owned()));
            }
            Some(("user", id)) => match id.parse::<i64>() {
                Ok(id) => self.entries.retain(|_, e| e.actor.user_id != id),
                Err(_) => self.entries.clear(),
            },
            _ => self.entries.clear(),
        }
    }

    /// Turns caching off for good (changes from other replicas cannot be followed).
    pub fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
        self.entries.clear();
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The notice that evicts a signed-out session everywhere.
pub fn session_notice(jti: &str) -> String {
    format!("session:{jti}")
}

/// The notice that evicts everything cached for a user (a password change).
pub fn user_notice(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// The notice that evicts a token everywhere.
pub fn token_notice(digest: &str) -> String {
    format!("token:{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(id: i64) -> Actor {
        Actor { user_id: id, username: format!("u{id}"), is_admin: false }
    }

    #[test]
    fn notices_evict_tokens_and_users() {
        let cache = AuthCache::default();
        cache.insert(CacheKey::Token("aa".into()), actor(1), None);
        cache.insert(CacheKey::Token("bb".into()), actor(2), None);
        cache.insert(CacheKey::Session("s2".into()), actor(2), None);
        cache.insert(CacheKey::Session("s2b".into()), actor(2), None);
        cache.apply(&session_notice("s2b"));
        assert!(cache.get(&CacheKey::Session("s2b".into())).is_none());
        assert!(cache.get(&CacheKey::Token("aa".into())).is_some());

        cache.apply(&token_notice("aa"));
        assert!(cache.get(&CacheKey::Token("aa".into())).is_none());
        assert_eq!(cache.len(), 2);

        cache.apply(&user_notice(2));
        assert!(cache.is_empty());

        cache.insert(CacheKey::Session("s3".into()), actor(3), None);
        cache.apply("garbage");
        assert!(cache.is_empty(), "an unknown notice clears everything, to be safe");
    }
}
