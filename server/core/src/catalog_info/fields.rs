//! Reading one field of a descriptor's document: text, tags, links, annotations and
//! entity references, each dropped with a warning when it breaks a rule.

use std::collections::BTreeMap;

use serde_json::Value;

use super::refs::EntityRef;
use super::{MAX_ANNOTATIONS, MAX_REFS, MAX_TAGS};
use crate::catalog::{self, Link};

const MAX_ANNOTATION_KEY_LEN: usize = 253;
const MAX_ANNOTATION_VALUE_LEN: usize = 1024;

/// A scalar as text: YAML writes `version: 1` and `enabled: true` without quotes.
pub(super) fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Free text, trimmed (a YAML block scalar ends in a newline), within a length, without
/// control characters (newlines only where `multiline`).
pub(super) fn bounded_text(
    value: Option<Value>,
    field: &str,
    max: usize,
    multiline: bool,
    warn: &mut impl FnMut(&str, String),
) -> Option<String> {
    let value = value?;
    let Some(text) = text_of(Some(&value)) else {
        if !value.is_null() && value.as_str().is_none_or(|s| !s.trim().is_empty()) {
            warn(field, "is not text; ignored".to_owned());
        }
        return None;
    };
    let len = text.chars().count();
    if len > max {
        warn(field, format!("is {len} characters long; the maximum is {max}; ignored"));
        return None;
    }
    if text.chars().any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t'))) {
        warn(field, "contains a control character; ignored".to_owned());
        return None;
    }
    Some(text)
}

/// Backstage's tag rule: `[a-z0-9:+#]` words joined by single `-`, at most 63 characters.
fn valid_tag(tag: &str) -> bool {
    tag.len() <= 63
        && tag.split('-').all(|word| {
            !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ":+#".contains(c))
        })
}

pub(super) fn read_tags(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> Vec<String> {
    let Some(value) = value else { return Vec::new() };
    let Value::Array(list) = value else {
        warn("metadata.tags", "is not a list; ignored".to_owned());
        return Vec::new();
    };
    let mut tags = Vec::new();
    for item in list {
        match text_of(Some(&item)) {
            Some(tag) if valid_tag(&tag) => {
                if tags.len() == MAX_TAGS {
                    warn("metadata.tags", format!("has more than {MAX_TAGS} tags; the rest are ignored"));
                    break;
                }
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            _ => warn(
                "metadata.tags",
                format!("{item} is not a tag (lower-case letters, digits, ':', '+', '#' and single '-'); ignored"),
            ),
        }
    }
    tags
}

pub(super) fn read_links(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> Vec<Link> {
    let Some(value) = value else { return Vec::new() };
    let Value::Array(list) = value else {
        warn("metadata.links", "is not a list; ignored".to_owned());
        return Vec::new();
    };
    let mut links = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let field = format!("metadata.links[{i}]");
        let Some(url) = text_of(item.get("url")) else {
            warn(&field, "has no url; ignored".to_owned());
            continue;
        };
        let title = text_of(item.get("title")).unwrap_or_else(|| url.clone());
        let name: String = title.chars().take(catalog::MAX_LINK_NAME_LEN).collect();
        let link = Link { name, url };
        if links.len() == catalog::MAX_LINKS {
            warn("metadata.links", format!("has more than {} links; the rest are ignored", catalog::MAX_LINKS));
            break;
        }
        match catalog::validate_links(std::slice::from_ref(&link)) {
            Ok(()) => links.push(link),
            Err(err) => warn(&field, format!("{err}; ignored")),
        }
    }
    links
}

pub(super) fn read_annotations(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> BTreeMap<String, String> {
    let Some(value) = value else { return BTreeMap::new() };
    let Value::Object(map) = value else {
        warn("metadata.annotations", "is not a mapping; ignored".to_owned());
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let field = format!("metadata.annotations.{key}");
        if out.len() == MAX_ANNOTATIONS {
            warn("metadata.annotations", format!("has more than {MAX_ANNOTATIONS} entries; the rest are ignored"));
            break;
        }
        let Some(text) = text_of(Some(&value)) else {
            warn(&field, "is not text; ignored".to_owned());
            continue;
        };
        if key.len() > MAX_ANNOTATION_KEY_LEN
            || text.len() > MAX_ANNOTATION_VALUE_LEN
            || key.chars().chain(text.chars()).any(char::is_control)
        {
            warn(
                &field,
                format!(
                    "keys are at most {MAX_ANNOTATION_KEY_LEN} and values {MAX_ANNOTATION_VALUE_LEN} characters, without control characters; ignored"
                ),
            );
            continue;
        }
        out.insert(key, text);
    }
    out
}

pub(super) fn read_ref(
    value: Option<&Value>,
    field: &str,
    kind: &str,
    warn: &mut impl FnMut(&str, String),
) -> Option<EntityRef> {
    let value = value?;
    let Some(text) = text_of(Some(value)) else {
        warn(field, "is not an entity reference; ignored".to_owned());
        return None;
    };
    match EntityRef::parse(&text, kind) {
        Ok(r) => Some(r),
        Err(err) => {
            warn(field, format!("{err}; ignored"));
            None
        }
    }
}

pub(super) fn read_refs(
    value: Option<&Value>,
    field: &str,
    kind: &str,
    warn: &mut impl FnMut(&str, String),
) -> Vec<EntityRef> {
    let Some(value) = value else { return Vec::new() };
    let Value::Array(list) = value else {
        warn(field, "is not a list of entity references; ignored".to_owned());
        return Vec::new();
    };
    let mut refs: Vec<EntityRef> = Vec::new();
    for item in list {
        if refs.len() == MAX_REFS {
            warn(field, format!("has more than {MAX_REFS} entries; the rest are ignored"));
            break;
        }
        if let Some(r) = read_ref(Some(item), field, kind, warn)
            && !refs.iter().any(|seen| seen.key() == r.key())
        {
            refs.push(r);
        }
    }
    refs
}
