//! Backstage descriptors (`catalog-info.yaml` and the files a `Location` points at), read
//! as Backstage reads them: every document of a file, entity references parsed and
//! compared case-insensitively, lifecycle as free text. A field that breaks a rule is
//! dropped with a warning naming the document and field; the rest of the document stays.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::catalog::{self, Link};

mod budget;
mod fields;
mod refs;

use budget::Budget;
pub use budget::{MAX_EXPANDED_BYTES, MAX_EXPANDED_NODES};
use fields::{bounded_text, read_annotations, read_links, read_ref, read_refs, read_tags, text_of};
use refs::valid_kind;
pub use refs::{EntityRef, valid_entity_name};

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
const MAX_TYPE_LEN: usize = 64;
/// The most of a spec kept for the Backstage API, as JSON.
pub const MAX_SPEC_BYTES: usize = 16 * 1024;

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
