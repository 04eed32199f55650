//! Entity references as Backstage writes and compares them, and its rules for names.

use std::fmt;

/// A reference to an entity, `[kind:][namespace/]name`. Kind and namespace are kept in
/// lower case (as Backstage writes refs); the name as written. Compare with [`Self::key`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl EntityRef {
    /// Parses a reference as Backstage does: the kind defaults to `default_kind` (the
    /// field decides: `group` for an owner, `component` for `dependsOn`), the namespace
    /// to `default`.
    pub fn parse(text: &str, default_kind: &str) -> Result<EntityRef, String> {
        let text = text.trim();
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (kind, rest),
            None => (default_kind, text),
        };
        let (namespace, name) = rest.split_once('/').unwrap_or(("default", rest));
        if !valid_kind(kind) {
            return Err(format!("{text:?} has kind {kind:?}; a kind is letters and digits, starting with a letter"));
        }
        if !valid_entity_name(namespace) {
            return Err(format!("{text:?} has namespace {namespace:?}, which is not a valid entity name"));
        }
        if !valid_entity_name(name) {
            return Err(format!(
                "{text:?} has name {name:?}; a name is 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
            ));
        }
        Ok(EntityRef {
            kind: kind.to_ascii_lowercase(),
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_owned(),
        })
    }

    /// The reference a group or component of Slipway has.
    pub fn new(kind: &str, name: &str) -> EntityRef {
        EntityRef { kind: kind.to_ascii_lowercase(), namespace: "default".to_owned(), name: name.to_owned() }
    }

    /// The case-insensitive identity: `kind:namespace/name`, all lower case.
    pub fn key(&self) -> String {
        format!("{}:{}/{}", self.kind, self.namespace, self.name.to_ascii_lowercase())
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind, self.namespace, self.name)
    }
}

pub(super) fn valid_kind(kind: &str) -> bool {
    let mut chars = kind.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric())
        && kind.len() <= 63
}

/// Backstage's rule for names and namespaces.
pub fn valid_entity_name(name: &str) -> bool {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !name.is_empty()
        && name.len() <= 63
        && ok_end(name.chars().next())
        && ok_end(name.chars().last())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
