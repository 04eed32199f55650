//! An environment's config vars and secrets: the rules for keys and values, the snapshot
//! each change stores as a new config version, and how `set`/`unset` produce the next
//! snapshot. Secret values arrive here already sealed (see [`crate::secrets`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most vars one environment may hold.
pub const MAX_VARS: usize = 200;
pub const MAX_KEY_CHARS: usize = 128;
/// The largest value, in bytes (container engines and kernels limit the environment).
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// Shorter secrets are refused: masking a two-letter value would blank out every log.
pub const MIN_SECRET_CHARS: usize = 6;

/// Keys Slipway sets itself; an app cannot override them.
const RESERVED_KEYS: &[&str] = &["PORT"];
const RESERVED_PREFIX: &str = "SLIPWAY_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config key {key:?} is not valid: use letters, digits and underscores, not starting with a digit, \
         at most {MAX_KEY_CHARS} characters"
    )]
    BadKey { key: String },
    #[error("config key {key:?} is reserved: Slipway sets it")]
    ReservedKey { key: String },
    #[error("the value of {key} is longer than {MAX_VALUE_BYTES} bytes")]
    ValueTooLong { key: String },
    #[error("the value of {key} contains a NUL character, which an environment variable cannot hold")]
    ValueHasNul { key: String },
    #[error("the secret {key} is shorter than {MIN_SECRET_CHARS} characters; such a value cannot be masked in logs")]
    SecretTooShort { key: String },
    #[error("{key} is given twice in one change")]
    Duplicate { key: String },
    #[error("{key} is not set")]
    NotSet { key: String },
    #[error("an environment may hold at most {MAX_VARS} config vars; this change would make {count}")]
    TooMany { count: usize },
    #[error("nothing to change: give at least one KEY=VALUE to set or KEY to unset")]
    Empty,
}

/// One stored var: a plain value, or a sealed secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredVar {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

/// A config version's full contents, as stored (JSON) in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigSnapshot {
    pub vars: BTreeMap<String, StoredVar>,
}

pub fn validate_key(key: &str) -> Result<(), ConfigError> {
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || key.len() > MAX_KEY_CHARS || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::BadKey { key: key.to_owned() });
    }
    if RESERVED_KEYS.contains(&key) || key.to_ascii_uppercase().starts_with(RESERVED_PREFIX) {
        return Err(ConfigError::ReservedKey { key: key.to_owned() });
    }
    Ok(())
}

/// Checks a plain-text value before it is stored or sealed.
pub fn validate_value(key: &str, value: &str, secret: bool) -> Result<(), ConfigError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(ConfigError::ValueTooLong { key: key.to_owned() });
    }
    if value.contains('\0') {
        return Err(ConfigError::ValueHasNul { key: key.to_owned() });
    }
    if secret && value.chars().count() < MIN_SECRET_CHARS {
        return Err(ConfigError::SecretTooShort { key: key.to_owned() });
    }
    Ok(())
}

impl ConfigSnapshot {
    /// The next snapshot: `set` vars (already validated, secrets sealed) replace or add,
    /// `unset` keys must exist and are removed.
    pub fn apply(&self, set: Vec<(String, StoredVar)>, unset: &[String]) -> Result<ConfigSnapshot, ConfigError> {
        if set.is_empty() && unset.is_empty() {
            return Err(ConfigError::Empty);
        }
        let mut seen = std::collections::BTreeSet::new();
        for key in set.iter().map(|(k, _)| k).chain(unset) {
            if !seen.insert(key.as_str()) {
                return Err(ConfigError::Duplicate { key: key.clone() });
            }
        }
        let mut next = self.clone();
        for key in unset {
            if next.vars.remove(key).is_none() {
                return Err(ConfigError::NotSet { key: key.clone() });
            }
        }
        next.vars.extend(set);
        if next.vars.len() > MAX_VARS {
            return Err(ConfigError::TooMany { count: next.vars.len() });
        }
        Ok(next)
    }
}

/// What a sealed value is bound to: one key of one environment.
pub fn seal_context(environment_id: i64, key: &str) -> String {
    format!("slipway-config:{environment_id}:{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(value: &str) -> StoredVar {
        StoredVar { value: value.to_owned(), secret: false }
    }

    #[test]
    fn keys_follow_environment_variable_rules() {
        for ok in ["DATABASE_URL", "_private", "a1", &"K".repeat(MAX_KEY_CHARS)] {
            assert_eq!(validate_key(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1ABC", "A-B", "A B", "A=B", "é", &"K".repeat(MAX_KEY_CHARS + 1)] {
            assert!(matches!(validate_key(bad), Err(ConfigError::BadKey { .. })), "{bad}");
        }
        for reserved in ["PORT", "SLIPWAY_TOKEN", "slipway_x"] {
            assert!(matches!(validate_key(reserved), Err(ConfigError::ReservedKey { .. })), "{reserved}");
        }
    }

    #[test]
    fn values_are_bounded_and_secrets_long_enough_to_mask() {
        assert_eq!(validate_value("A", "", false), Ok(()));
        assert_eq!(validate_value("A", "x", false), Ok(()));
        assert!(matches!(validate_value("A", "abc", true), Err(ConfigError::SecretTooShort { .. })));
        assert_eq!(validate_value("A", "abcdef", true), Ok(()));
        assert!(matches!(validate_value("A", "a\0b", false), Err(ConfigError::ValueHasNul { .. })));
        assert!(matches!(
            validate_value("A", &"x".repeat(MAX_VALUE_BYTES + 1), false),
            Err(ConfigError::ValueTooLong { .. })
        ));
    }

    #[test]
    fn a_change_sets_and_unsets_in_one_step() {
        let base =
            ConfigSnapshot::default().apply(vec![("A".into(), plain("1")), ("B".into(), plain("2"))], &[]).unwrap();
        let next = base.apply(vec![("A".into(), plain("3"))], &["B".to_owned()]).unwrap();
        assert_eq!(next.vars.len(), 1);
        assert_eq!(next.vars["A"].value, "3");
        assert_eq!(base.apply(vec![], &["C".to_owned()]), Err(ConfigError::NotSet { key: "C".into() }));
        assert_eq!(base.apply(vec![], &[]), Err(ConfigError::Empty));
        assert_eq!(
            base.apply(vec![("A".into(), plain("1"))], &["A".to_owned()]),
            Err(ConfigError::Duplicate { key: "A".into() })
        );
        let many: Vec<(String, StoredVar)> = (0..=MAX_VARS).map(|i| (format!("K{i}"), plain("v"))).collect();
        assert!(matches!(ConfigSnapshot::default().apply(many, &[]), Err(ConfigError::TooMany { .. })));
    }

    #[test]
    fn snapshots_store_as_a_plain_json_object() {
        let snap = ConfigSnapshot::default()
            .apply(vec![("A".into(), plain("1")), ("S".into(), StoredVar { value: "v1:xx".into(), secret: true })], &[])
            .unwrap();
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(json, r#"{"A":{"value":"1","secret":false},"S":{"value":"v1:xx","secret":true}}"#);
        assert_eq!(serde_json::from_str::<ConfigSnapshot>(&json).unwrap(), snap);
    }
}
