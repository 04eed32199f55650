//! Backstage descriptors (`catalog-info.yaml` and the files a `Location` points at), read
//! as Backstage reads them: every document of a file, entity references parsed and
//! compared case-insensitively, lifecycle as free text. A field that breaks a rule is
//! dropped with a warning naming the document and field; the rest of the document stays.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::catalog::{self, Link};

/// The file Slipway reads at the root of a pushed commit.
pub const FILE: &str = "catalog-info.yaml";
/// Larger files are refused (the limit descriptors and `slipway.toml` share).
pub const MAX_BYTES: usize = 1024 * 1024;
/// Documents read from one file.
pub const MAX_DOCUMENTS: usize = 100;
/// Files a push follows through `Location` targets (the root file not counted).
pub const MAX_LOCATION_FILES: usize = 20;
pub const MAX_TAGS: usize = 20;
pub const MAX_ANNOTATIONS: usize = 50;
pub const MAX_REFS: usize = 50;
pub const MAX_TITLE_LEN: usize = 200;
const MAX_ANNOTATION_KEY_LEN: usize = 253;
const MAX_ANNOTATION_VALUE_LEN: usize = 1024;
const MAX_TYPE_LEN: usize = 64;
/// The most of a spec kept for the Backstage API, as JSON.
pub const MAX_SPEC_BYTES: usize = 16 * 1024;

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

fn valid_kind(kind: &str) -> bool {
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

/// One entity of a descriptor, with the fields Slipway stores and shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub api_version: String,
    /// As written (`Component`, `API`, `System`…).
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub links: Vec<Link>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.type`.
    pub spec_type: Option<String>,
    pub lifecycle: Option<String>,
    pub owner: Option<EntityRef>,
    pub system: Option<EntityRef>,
    /// `spec.dependsOn`: components and resources alike (each ref keeps its kind).
    pub depends_on: Vec<EntityRef>,
    pub provides_apis: Vec<EntityRef>,
    pub consumes_apis: Vec<EntityRef>,
    /// The spec as written, for the Backstage API (dropped when over [`MAX_SPEC_BYTES`]).
    pub spec: Map<String, Value>,
    /// Its place in its file, from 1.
    pub document: usize,
}

impl Entity {
    pub fn entity_ref(&self) -> EntityRef {
        EntityRef {
            kind: self.kind.to_ascii_lowercase(),
            namespace: self.namespace.to_ascii_lowercase(),
            name: self.name.clone(),
        }
    }

    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
    }

    /// The components it depends on, by name.
    pub fn component_dependencies(&self) -> impl Iterator<Item = &EntityRef> {
        self.depends_on.iter().filter(|r| r.kind == "component")
    }

    /// What it depends on that is not a component (resources, mostly).
    pub fn other_dependencies(&self) -> impl Iterator<Item = &EntityRef> {
        self.depends_on.iter().filter(|r| r.kind != "component")
    }
}

/// A `Location` target: a path relative to the file that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub target: String,
    pub document: usize,
}

/// Something in a file that was ignored, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub document: Option<usize>,
    /// `Component "shop"`, when the document got that far.
    pub entity: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(document) = self.document {
            write!(f, " document {document}")?;
        }
        if let Some(entity) = &self.entity {
            write!(f, " ({entity})")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything read from one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub entities: Vec<Entity>,
    pub targets: Vec<Target>,
    pub warnings: Vec<Warning>,
}

/// A file that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    #[error("{file} is (or its YAML aliases expand to) {size} bytes; the limit is {MAX_BYTES}")]
    TooLarge { file: String, size: usize },
    #[error("{file} is not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file} has more than {MAX_DOCUMENTS} documents")]
    TooManyDocuments { file: String },
}

/// The most nodes and scalar bytes a file may expand to. YAML aliases (`*a`) repeat what
/// their anchor holds, so a few kilobytes can stand for gigabytes: the file is walked
/// once counting, without building anything, and refused past these bounds before it is
/// read for real.
pub const MAX_EXPANDED_NODES: usize = 200_000;
pub const MAX_EXPANDED_BYTES: usize = 4 * MAX_BYTES;

/// Walks a value counting its nodes and scalar bytes, failing once past the budget.
/// Hand-written because no YAML crate offers an expansion limit (serde_yaml_ng bounds
/// only the number of alias events, not what they expand to).
struct Budget<'a> {
    nodes: &'a mut usize,
    bytes: &'a mut usize,
}

impl Budget<'_> {
    fn spend<E: serde::de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        *self.nodes += 1;
        *self.bytes += bytes;
        if *self.nodes > MAX_EXPANDED_NODES || *self.bytes > MAX_EXPANDED_BYTES {
            return Err(E::custom("expands to more than a descriptor can hold (YAML aliases?)"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Budget<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(mut self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: serde::de::Error>(mut self, _: i64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_u64<E: serde::de::Error>(mut self, _: u64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_f64<E: serde::de::Error>(mut self, _: f64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<(), E> {
        self.spend(v.len())
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: serde::Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(Budget { nodes: self.nodes, bytes: self.bytes })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(Budget { nodes: self.nodes, bytes: self.bytes })?.is_some() {
            map.next_value_seed(Budget { nodes: self.nodes, bytes: self.bytes })?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(mut self, _: A) -> Result<(), A::Error> {
        // A YAML tag (`!x`); not something a descriptor has.
        self.spend(1)?;
        Err(serde::de::Error::custom("YAML tags are not allowed in descriptors"))
    }
}

/// Reads every document of a descriptor file named `file` (used in messages).
pub fn parse(file: &str, text: &str) -> Result<Parsed, DescriptorError> {
    use serde::Deserialize;
    if text.len() > MAX_BYTES {
        return Err(DescriptorError::TooLarge { file: file.to_owned(), size: text.len() });
    }
    let (mut nodes, mut bytes) = (0, 0);
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let budget = Budget { nodes: &mut nodes, bytes: &mut bytes };
        if let Err(err) = serde::de::DeserializeSeed::deserialize(budget, document) {
            if nodes > MAX_EXPANDED_NODES || bytes > MAX_EXPANDED_BYTES {
                return Err(DescriptorError::TooLarge { file: file.to_owned(), size: bytes });
            }
            return Err(DescriptorError::Yaml { file: file.to_owned(), message: err.to_string() });
        }
    }
    let mut parsed = Parsed::default();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        if number > MAX_DOCUMENTS {
            return Err(DescriptorError::TooManyDocuments { file: file.to_owned() });
        }
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            // A syntax error ends the stream: nothing after it can be trusted.
            Err(err) if err.location().is_some() => {
                return Err(DescriptorError::Yaml { file: file.to_owned(), message: err.to_string() });
            }
            Err(err) => {
                parsed.warnings.push(warning(file, number, None, "", format!("not an entity: {err}")));
                continue;
            }
        };
        if value.is_null() {
            continue; // an empty document, such as after a trailing `---`
        }
        read_document(file, number, value, &mut parsed);
    }
    Ok(parsed)
}

fn warning(file: &str, document: usize, entity: Option<&str>, field: &str, message: impl Into<String>) -> Warning {
    Warning {
        file: file.to_owned(),
        document: Some(document),
        entity: entity.map(str::to_owned),
        field: field.to_owned(),
        message: message.into(),
    }
}

fn read_document(file: &str, number: usize, value: Value, parsed: &mut Parsed) {
    let Value::Object(mut doc) = value else {
        parsed.warnings.push(warning(file, number, None, "", "the document is not a mapping; it is not an entity"));
        return;
    };
    let api_version = text_of(doc.get("apiVersion")).unwrap_or_default();
    let kind = text_of(doc.get("kind")).unwrap_or_default();
    if !api_version.starts_with("backstage.io/") || kind.is_empty() {
        parsed.warnings.push(warning(
            file,
            number,
            None,
            "apiVersion",
            "not a Backstage entity (apiVersion backstage.io/v1alpha1 and a kind are needed); ignored",
        ));
        return;
    }
    if !valid_kind(&kind) {
        parsed.warnings.push(warning(file, number, None, "kind", format!("{kind:?} is not a kind; ignored")));
        return;
    }
    let mut metadata = match doc.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let Some(name) = text_of(metadata.get("name")) else {
        parsed.warnings.push(warning(file, number, None, "metadata.name", "missing; the document is ignored"));
        return;
    };
    let label = format!("{kind} {name:?}");
    let mut warn =
        |field: &str, message: String| parsed.warnings.push(warning(file, number, Some(&label), field, message));
    if !valid_entity_name(&name) {
        warn(
            "metadata.name",
            "is not a valid name (1-63 letters, digits, '-', '_' or '.'); the document is ignored".to_owned(),
        );
        return;
    }
    let namespace = match text_of(metadata.get("namespace")) {
        None => "default".to_owned(),
        Some(ns) if valid_entity_name(&ns) => ns.to_ascii_lowercase(),
        Some(ns) => {
            warn("metadata.namespace", format!("{ns:?} is not a valid namespace; the document is ignored"));
            return;
        }
    };
    let mut spec = match doc.remove("spec") {
        Some(Value::Object(s)) => s,
        _ => Map::new(),
    };

    let title = bounded_text(metadata.remove("title"), "metadata.title", MAX_TITLE_LEN, false, &mut warn);
    let description = bounded_text(
        metadata.remove("description"),
        "metadata.description",
        catalog::MAX_DESCRIPTION_LEN,
        true,
        &mut warn,
    );
    let tags = read_tags(metadata.remove("tags"), &mut warn);
    let links = read_links(metadata.remove("links"), &mut warn);
    let annotations = read_annotations(metadata.remove("annotations"), &mut warn);
    let spec_type = bounded_text(spec.get("type").cloned(), "spec.type", MAX_TYPE_LEN, false, &mut warn);
    let lifecycle =
        bounded_text(spec.get("lifecycle").cloned(), "spec.lifecycle", catalog::MAX_LIFECYCLE_LEN, false, &mut warn);
    let owner = read_ref(spec.get("owner"), "spec.owner", "group", &mut warn);
    let system = read_ref(spec.get("system"), "spec.system", "system", &mut warn);
    let depends_on = read_refs(spec.get("dependsOn"), "spec.dependsOn", "component", &mut warn);
    let provides_apis = read_refs(spec.get("providesApis"), "spec.providesApis", "api", &mut warn);
    let consumes_apis = read_refs(spec.get("consumesApis"), "spec.consumesApis", "api", &mut warn);

    if kind.eq_ignore_ascii_case("Location") {
        let mut targets: Vec<String> = text_of(spec.get("target")).into_iter().collect();
        match spec.get("targets") {
            Some(Value::Array(list)) => targets.extend(list.iter().filter_map(|t| text_of(Some(t)))),
            Some(_) => warn("spec.targets", "is not a list of paths; ignored".to_owned()),
            None => {}
        }
        for target in targets.into_iter().take(MAX_LOCATION_FILES + 1) {
            parsed.targets.push(Target { target, document: number });
        }
    }
    let spec_bytes = serde_json::to_vec(&spec).map(|v| v.len()).unwrap_or(usize::MAX);
    if spec_bytes > MAX_SPEC_BYTES {
        warn("spec", format!("is {spec_bytes} bytes as JSON; only the fields Slipway reads are kept"));
        spec = Map::new();
    }
    parsed.entities.push(Entity {
        api_version,
        kind,
        namespace,
        name,
        title,
        description,
        tags,
        links,
        annotations,
        spec_type,
        lifecycle,
        owner,
        system,
        depends_on,
        provides_apis,
        consumes_apis,
        spec,
        document: number,
    });
}

/// A scalar as text: YAML writes `version: 1` and `enabled: true` without quotes.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Free text, trimmed (a YAML block scalar ends in a newline), within a length, without
/// control characters (newlines only where `multiline`).
fn bounded_text(
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

fn read_tags(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> Vec<String> {
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

fn read_links(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> Vec<Link> {
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

fn read_annotations(value: Option<Value>, warn: &mut impl FnMut(&str, String)) -> BTreeMap<String, String> {
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

fn read_ref(value: Option<&Value>, field: &str, kind: &str, warn: &mut impl FnMut(&str, String)) -> Option<EntityRef> {
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

fn read_refs(value: Option<&Value>, field: &str, kind: &str, warn: &mut impl FnMut(&str, String)) -> Vec<EntityRef> {
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

/// Where a `Location` target points, relative to the file `from` that names it (both
/// repository paths, `/`-separated). Only relative paths that stay inside the
/// repository and name a `.yaml`/`.yml` file are followed.
pub fn resolve_target(from: &str, target: &str) -> Result<String, String> {
    let target = target.trim();
    if target.contains("://") || target.starts_with('/') || target.contains('\\') {
        return Err(format!("target {target:?} is not a relative path inside the repository; only those are followed"));
    }
    if !(target.ends_with(".yaml") || target.ends_with(".yml")) {
        return Err(format!("target {target:?} is not a .yaml or .yml file"));
    }
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop(); // the file itself
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("target {target:?} leads outside the repository"));
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Lifecycle values Backstage documents, which the portal styles; others show as written.
pub const KNOWN_LIFECYCLES: &[&str] = &["experimental", "production", "deprecated"];

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  title: Shop front
  description: |
    The shop front
  tags: [web, payments-team]
  annotations:
    github.com/project-slug: acme/shop
  links:
    - url: https://runbooks.example.com/shop
      title: Runbook
    - url: https://grafana.example.com/d/shop
spec:
  type: service
  lifecycle: production
  owner: group:default/payments
  system: storefront
  providesApis: [shop-api]
  consumesApis: [api:default/billing-api]
  dependsOn: [component:billing, resource:default/shop-db, component:default/auth-api]
";

    fn one(text: &str) -> (Entity, Vec<Warning>) {
        let parsed = parse(FILE, text).expect("readable");
        assert_eq!(parsed.entities.len(), 1, "{parsed:?}");
        (parsed.entities.into_iter().next().expect("one"), parsed.warnings)
    }

    #[test]
    fn reads_every_field_slipway_keeps() {
        let (shop, warnings) = one(SHOP);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(shop.kind, "Component");
        assert_eq!(shop.name, "shop");
        assert_eq!(shop.title.as_deref(), Some("Shop front"));
        assert_eq!(shop.description.as_deref(), Some("The shop front"), "block text is trimmed");
        assert_eq!(shop.tags, ["web", "payments-team"]);
        assert_eq!(shop.annotations["github.com/project-slug"], "acme/shop");
        assert_eq!(shop.lifecycle.as_deref(), Some("production"));
        assert_eq!(shop.owner.as_ref().map(EntityRef::key).as_deref(), Some("group:default/payments"));
        assert_eq!(shop.system.as_ref().map(EntityRef::key).as_deref(), Some("system:default/storefront"));
        assert_eq!(shop.provides_apis[0].key(), "api:default/shop-api");
        assert_eq!(shop.consumes_apis[0].key(), "api:default/billing-api");
        let components: Vec<&str> = shop.component_dependencies().map(|r| r.name.as_str()).collect();
        assert_eq!(components, ["billing", "auth-api"]);
        let others: Vec<String> = shop.other_dependencies().map(EntityRef::key).collect();
        assert_eq!(others, ["resource:default/shop-db"], "resources are kept as resources");
        assert_eq!(shop.links[0].name, "Runbook");
        assert_eq!(shop.links[1].name, "https://grafana.example.com/d/shop", "an untitled link is named by its URL");
        assert_eq!(shop.spec["type"], "service", "the spec is kept as written");
    }

    #[test]
    fn lifecycle_is_free_text() {
        for lifecycle in ["unknown", "development", "Production", "beta"] {
            let (shop, warnings) = one(&SHOP.replace("lifecycle: production", &format!("lifecycle: {lifecycle}")));
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(shop.lifecycle.as_deref(), Some(lifecycle));
            assert_eq!(shop.owner.as_ref().map(|o| o.name.as_str()), Some("payments"), "the rest is kept");
        }
    }

    #[test]
    fn entity_refs_parse_as_backstage_does() {
        let r = EntityRef::parse("CNCF", "group").expect("ref");
        assert_eq!((r.kind.as_str(), r.namespace.as_str(), r.name.as_str()), ("group", "default", "CNCF"));
        assert_eq!(r.key(), "group:default/cncf", "compared case-insensitively");
        assert_eq!(EntityRef::parse("Group:Default/Payments", "user").expect("ref").key(), "group:default/payments");
        assert_eq!(EntityRef::parse("user:jdoe", "group").expect("ref").key(), "user:default/jdoe");
        assert_eq!(EntityRef::parse("dcd_ccd", "group").expect("ref").name, "dcd_ccd");
        assert_eq!(EntityRef::parse("acme/web.v2", "component").expect("ref").key(), "component:acme/web.v2");
        for bad in ["", "group:", "a b", "-x", "x:y/z/w", "group:default/", "ünïcode"] {
            assert!(EntityRef::parse(bad, "group").is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_document_is_read_and_locations_give_targets() {
        let text = format!(
            "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata: {{name: storefront}}\nspec: {{owner: payments}}\n---\n{SHOP}---\n\
             apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata: {{name: shop-api}}\nspec: {{type: openapi, lifecycle: production, owner: payments, definition: 'openapi: 3.1.0'}}\n---\n\
             apiVersion: backstage.io/v1alpha1\nkind: Resource\nmetadata: {{name: shop-db}}\nspec: {{type: database, owner: payments}}\n---\n\
             apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {{name: more}}\nspec:\n  targets: [./docs/api.yaml, ../up.yaml]\n  target: extra.yaml\n---\n"
        );
        let parsed = parse("catalog-info.yaml", &text).expect("readable");
        let kinds: Vec<&str> = parsed.entities.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["System", "Component", "API", "Resource", "Location"]);
        assert_eq!(parsed.entities[2].spec["definition"], "openapi: 3.1.0");
        let targets: Vec<&str> = parsed.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(targets, ["extra.yaml", "./docs/api.yaml", "../up.yaml"]);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    }

    #[test]
    fn targets_resolve_inside_the_repository_only() {
        assert_eq!(resolve_target("catalog-info.yaml", "./docs/api.yaml").as_deref(), Ok("docs/api.yaml"));
        assert_eq!(resolve_target("a/b/catalog.yaml", "../c.yml").as_deref(), Ok("a/c.yml"));
        for bad in ["../up.yaml", "/etc/passwd.yaml", "https://example.com/x.yaml", "docs/readme.md", "a\\b.yaml"] {
            let err = resolve_target("catalog-info.yaml", bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(resolve_target("a/x.yaml", "../../up.yaml").is_err());
    }

    #[test]
    fn a_bad_field_is_dropped_with_a_warning_naming_document_and_field() {
        let text = SHOP
            .replace("https://runbooks.example.com/shop", "javascript:alert(1)")
            .replace("tags: [web, payments-team]", "tags: [web, Bad Tag]")
            .replace("system: storefront", "system: 'a b'");
        let parsed = parse("svc/catalog-info.yaml", &format!("---\n{text}")).expect("readable");
        let shop = &parsed.entities[0];
        assert_eq!(shop.links.len(), 1, "the good link stays");
        assert_eq!(shop.tags, ["web"]);
        assert_eq!(shop.system, None);
        assert_eq!(shop.lifecycle.as_deref(), Some("production"), "the rest of the document stays");
        let text: Vec<String> = parsed.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text[0].starts_with("svc/catalog-info.yaml document 1 (Component \"shop\"): metadata.tags:"),
            "{text:?}"
        );
        assert!(text[1].contains("metadata.links[0]: link \"Runbook\" has URL \"javascript:alert(1)\""), "{text:?}");
        assert!(text[2].contains("spec.system: \"a b\" has name \"a b\""), "{text:?}");
    }

    #[test]
    fn an_alias_bomb_is_refused_before_it_expands() {
        let mut bomb = String::from("a: &a [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        for (name, prev) in
            ["b", "c", "d", "e", "f", "g", "h", "i"].iter().zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            bomb.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        // One 30 KB scalar named 200 times: few events, megabytes once expanded.
        let wide = format!("a: &a \"{}\"\nb: [{}]\n", "x".repeat(30_000), vec!["*a"; 200].join(", "));
        let err = parse(FILE, &wide).expect_err("a wide bomb");
        assert!(matches!(err, DescriptorError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains("aliases expand"), "{err}");
        // Nested lists of aliases: refused by the budget or by the parser's own limit.
        let err = parse(FILE, &bomb).expect_err("a bomb");
        assert!(
            matches!(&err, DescriptorError::TooLarge { .. })
                || matches!(&err, DescriptorError::Yaml { message, .. } if message.contains("repetition limit")),
            "{err}"
        );
        // A plain alias or two is still fine.
        let ok = "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata: {name: a, tags: &t [x]}\nspec: {owner: p, other: *t}\n";
        assert_eq!(parse(FILE, ok).expect("readable").entities.len(), 1);
    }

    #[test]
    fn files_that_cannot_be_read_say_why() {
        assert!(matches!(parse(FILE, "kind: ["), Err(DescriptorError::Yaml { .. })));
        assert!(matches!(parse(FILE, &"#".repeat(MAX_BYTES + 1)), Err(DescriptorError::TooLarge { .. })));
        let many =
            "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata: {name: s}\n---\n".repeat(MAX_DOCUMENTS + 1);
        assert!(matches!(parse(FILE, &many), Err(DescriptorError::TooManyDocuments { .. })));
        let parsed = parse(FILE, "apiVersion: v1\nkind: ConfigMap\n---\n- a list\n").expect("readable");
        assert!(parsed.entities.is_empty());
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
        let parsed = parse(FILE, "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: 'no spaces'}\n")
            .expect("readable");
        assert!(parsed.entities.is_empty());
        assert!(parsed.warnings[0].to_string().contains("metadata.name"), "{:?}", parsed.warnings);
    }
}
