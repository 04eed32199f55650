//! Backstage's view of the catalog: entities rendered in Backstage's JSON shape, and the
//! read API scripts written for Backstage's catalog call (`/api/catalog/entities` with
//! `filter`, `fields`, `limit`, `offset`, and `by-name`).

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use slipway_core::catalog_info::{Entity, EntityRef};
use slipway_store::StoreError;
use slipway_store::catalog::{ComponentRow, EntityFilter, EntityRow, NewEntity};

use crate::{Actor, AppState, Result, ServiceError};

pub const API_VERSION: &str = "backstage.io/v1alpha1";
/// The most entities one page answers; Backstage scripts page with `offset`.
pub const MAX_LIMIT: u32 = 500;
pub const MAX_OFFSET: u32 = 10_000_000;
pub const MAX_FILTERS: usize = 20;
pub const MAX_FIELDS: usize = 50;
/// Terms in one filter: one per key it can name (each owner term costs a lookup).
pub const MAX_TERMS: usize = 5;

fn relation(kind: &str, target: &str) -> Value {
    json!({ "type": kind, "targetRef": target })
}

/// A descriptor's entity as stored: its metadata and spec as written, with the
/// relations Backstage derives from them.
pub fn render_entity(e: &Entity) -> Value {
    let mut metadata = Map::new();
    metadata.insert("namespace".into(), json!(e.namespace));
    metadata.insert("name".into(), json!(e.name));
    if let Some(title) = &e.title {
        metadata.insert("title".into(), json!(title));
    }
    if let Some(description) = &e.description {
        metadata.insert("description".into(), json!(description));
    }
    if !e.tags.is_empty() {
        metadata.insert("tags".into(), json!(e.tags));
    }
    if !e.links.is_empty() {
        let links: Vec<Value> = e.links.iter().map(|l| json!({"url": l.url, "title": l.name})).collect();
        metadata.insert("links".into(), Value::Array(links));
    }
    if !e.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(e.annotations));
    }
    let mut relations = Vec::new();
    if let Some(owner) = &e.owner {
        relations.push(relation("ownedBy", &owner.to_string()));
    }
    if let Some(system) = &e.system {
        relations.push(relation("partOf", &system.to_string()));
    }
    relations.extend(e.depends_on.iter().map(|r| relation("dependsOn", &r.to_string())));
    relations.extend(e.provides_apis.iter().map(|r| relation("providesApi", &r.to_string())));
    relations.extend(e.consumes_apis.iter().map(|r| relation("consumesApi", &r.to_string())));
    json!({
        "apiVersion": e.api_version,
        "kind": e.kind,
        "metadata": metadata,
        "spec": e.spec,
        "relations": relations,
    })
}

/// An entity ready to store, owned by `team_id`.
pub fn new_entity(e: &Entity, team_id: Option<i64>) -> NewEntity {
    NewEntity {
        kind: e.kind.to_ascii_lowercase(),
        namespace: e.namespace.clone(),
        name: e.name.to_ascii_lowercase(),
        owner_kind: e.owner.as_ref().map(|o| o.kind.clone()),
        owner_name: e.owner.as_ref().map(|o| o.name.to_ascii_lowercase()),
        lifecycle: e.lifecycle.as_ref().map(|l| l.to_lowercase()),
        team_id,
        entity: render_entity(e).to_string(),
    }
}

/// A service as Backstage's `Component` (serialized from these borrowed structs, not
/// built as a `Value`: the owner's page renders 50 of them per request).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ComponentOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetadataOut<'a>,
    spec: SpecOut<'a>,
    relations: Vec<RelationOut<'a>>,
}

#[derive(serde::Serialize)]
struct MetadataOut<'a> {
    namespace: &'static str,
    name: &'a str,
    uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkOut<'a>>,
    annotations: std::collections::BTreeMap<&'a str, std::borrow::Cow<'a, str>>,
}

#[derive(serde::Serialize)]
struct LinkOut<'a> {
    url: &'a str,
    title: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SpecOut<'a> {
    #[serde(rename = "type")]
    spec_type: &'a str,
    lifecycle: &'a str,
    owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    provides_apis: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    consumes_apis: &'a [String],
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RelationOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    target_ref: &'a str,
}

/// A service as Backstage's `Component`: owned by its team (the truth, whatever its
/// descriptor declared), with its git URL or external repository as source location.
pub fn render_service(state: &AppState, row: &ComponentRow) -> Box<RawValue> {
    use std::borrow::Cow;
    let d = &row.descriptor;
    let mut annotations: std::collections::BTreeMap<&str, Cow<'_, str>> =
        d.annotations.iter().map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str()))).collect();
    let source = match &row.repo_url {
        Some(url) => Some(format!("url:{url}")),
        None if !row.catalog_only => Some(format!("url:{}/git/{}.git", state.settings.public_url, row.name)),
        None => None,
    };
    if let Some(source) = source {
        annotations.entry("backstage.io/source-location").or_insert(Cow::Owned(source));
    }
    annotations.insert("slipway.dev/service", Cow::Borrowed(row.name.as_str()));
    let owner = format!("group:default/{}", row.team);
    let depends_on: Vec<String> = row
        .depends_on
        .iter()
        .map(|name| format!("component:default/{name}"))
        .chain(d.resources.iter().cloned())
        .collect();
    let mut relations = vec![RelationOut { kind: "ownedBy", target_ref: &owner }];
    if let Some(system) = &d.system {
        relations.push(RelationOut { kind: "partOf", target_ref: system });
    }
    relations.extend(depends_on.iter().map(|r| RelationOut { kind: "dependsOn", target_ref: r }));
    relations.extend(d.provides_apis.iter().map(|r| RelationOut { kind: "providesApi", target_ref: r }));
    relations.extend(d.consumes_apis.iter().map(|r| RelationOut { kind: "consumesApi", target_ref: r }));
    let component = ComponentOut {
        api_version: API_VERSION,
        kind: "Component",
        metadata: MetadataOut {
            namespace: "default",
            name: &row.name,
            uid: format!("slipway-service-{}", row.id),
            title: d.title.as_deref(),
            description: &row.description,
            tags: &d.tags,
            links: row.links.iter().map(|l| LinkOut { url: &l.url, title: &l.name }).collect(),
            annotations,
        },
        spec: SpecOut {
            spec_type: d.spec_type.as_deref().unwrap_or("service"),
            lifecycle: &row.lifecycle,
            owner: owner.clone(),
            system: d.system.as_deref(),
            depends_on: depends_on.clone(),
            provides_apis: &d.provides_apis,
            consumes_apis: &d.consumes_apis,
        },
        relations,
    };
    // Serialising borrowed strings and maps of strings cannot fail.
    serde_json::value::to_raw_value(&component).unwrap_or_else(|_| raw("{}"))
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap_or_else(|_| raw_null())
}

fn raw_null() -> Box<RawValue> {
    serde_json::value::to_raw_value(&Value::Null).expect("null serialises")
}

/// The query of `GET /api/catalog/entities`, as the raw pairs (`filter` repeats).
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    pub filters: Vec<String>,
    pub fields: Vec<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

impl EntityQuery {
    /// Reads the query string's pairs; an unknown parameter is refused.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<EntityQuery> {
        let mut query = EntityQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "filter" => query.filters.push(value),
                "fields" => {
                    query.fields.extend(value.split(',').map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()))
                }
                "limit" => query.limit = Some(value),
                "offset" => query.offset = Some(value),
                other => {
                    return Err(ServiceError::invalid(
                        other,
                        format!("unknown query parameter {other:?}; use filter, fields, limit or offset"),
                    ));
                }
            }
        }
        Ok(query)
    }
}

fn number(field: &str, value: Option<&String>, default: u32, max: u32) -> Result<u32> {
    let Some(text) = value else { return Ok(default) };
    match text.parse::<u32>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ServiceError::invalid(field, format!("{field} must be a whole number from 0 to {max}, not {text:?}"))),
    }
}

/// Each group of `key=value` terms joined by `,` must all hold; any group may.
async fn parse_filters(state: &AppState, filters: &[String]) -> Result<Vec<EntityFilter>> {
    if filters.len() > MAX_FILTERS {
        return Err(ServiceError::invalid("filter", format!("at most {MAX_FILTERS} filter parameters")));
    }
    let mut out = Vec::new();
    for filter in filters {
        let mut term = EntityFilter::default();
        let parts: Vec<&str> = filter.split(',').filter(|p| !p.is_empty()).collect();
        if parts.len() > MAX_TERMS {
            return Err(ServiceError::invalid(
                "filter",
                format!("a filter has at most {MAX_TERMS} key=value terms; repeat `filter` for alternatives"),
            ));
        }
        for part in parts {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ServiceError::invalid("filter", format!("{part:?} is not key=value")));
            };
            let value = value.to_lowercase();
            match key {
                "kind" => term.kind = Some(value),
                "metadata.namespace" => term.namespace = Some(value),
                "metadata.name" => term.name = Some(value),
                "spec.lifecycle" => term.lifecycle = Some(value),
                "spec.owner" => {
                    // Like Backstage, an owner no entity could have matches nothing.
                    let Ok(owner) = EntityRef::parse(&value, "group") else {
                        term.owner_names = Some(Vec::new());
                        term.owner_teams = Some(Vec::new());
                        continue;
                    };
                    let name = owner.name.to_ascii_lowercase();
                    term.owner_kind = Some(owner.kind.clone());
                    // A team and its aliases are one owner: `spec.owner=dcd_ccd` finds what
                    // team payments owns, when dcd_ccd is its alias.
                    let (mut names, mut teams) = (vec![name.clone()], Vec::new());
                    if owner.kind == "group"
                        && let Some((team, known)) = state.store.owner_names_of(&name).await?
                    {
                        teams.push(team);
                        names.extend(known.into_iter().filter(|k| *k != name));
                    }
                    term.owner_names = Some(names);
                    term.owner_teams = Some(teams);
                }
                other => {
                    return Err(ServiceError::invalid(
                        "filter",
                        format!(
                            "cannot filter on {other:?}; use kind, metadata.namespace, metadata.name, spec.owner or spec.lifecycle"
                        ),
                    ));
                }
            }
        }
        out.push(term);
    }
    Ok(out)
}

/// Keeps only the dotted `fields` of an entity (`metadata.name`, `spec.owner`).
fn project(entity: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return entity;
    }
    let mut out = Value::Object(Map::new());
    for field in fields {
        let path: Vec<&str> = field.split('.').collect();
        let mut source = &entity;
        let mut found = true;
        for key in &path {
            match source.get(key) {
                Some(next) => source = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut target = &mut out;
        for key in &path[..path.len() - 1] {
            let Value::Object(map) = target else { break };
            target = map.entry(key.to_string()).or_insert_with(|| Value::Object(Map::new()));
        }
        if let (Value::Object(map), Some(last)) = (target, path.last()) {
            map.insert(last.to_string(), source.clone());
        }
    }
    out
}

/// An entity as JSON: a service rendered, a stored entity passed through as stored
/// (it was rendered when written), or parsed to keep only `fields`.
fn to_json(state: &AppState, row: EntityRow, fields: &[String]) -> Result<Box<RawValue>> {
    let entity = match row {
        EntityRow::Service(service) => render_service(state, &service),
        EntityRow::Stored(text) => RawValue::from_string(text)
            .map_err(|e| ServiceError::internal_from("reading a stored catalog entity", e))?,
    };
    if fields.is_empty() {
        return Ok(entity);
    }
    let value: Value =
        serde_json::from_str(entity.get()).map_err(|e| ServiceError::internal_from("reading a catalog entity", e))?;
    serde_json::value::to_raw_value(&project(value, fields))
        .map_err(|e| ServiceError::internal_from("writing a catalog entity", e))
}

/// `GET /api/catalog/entities`: a page of entities in Backstage's shape.
pub async fn list_entities(state: &AppState, _actor: &Actor, query: &EntityQuery) -> Result<Vec<Box<RawValue>>> {
    let limit = number("limit", query.limit.as_ref(), MAX_LIMIT, MAX_LIMIT)?;
    let offset = number("offset", query.offset.as_ref(), 0, MAX_OFFSET)?;
    if query.fields.len() > MAX_FIELDS {
        return Err(ServiceError::invalid("fields", format!("at most {MAX_FIELDS} fields")));
    }
    let filters = parse_filters(state, &query.filters).await?;
    let rows = state.store.entity_page(&filters, i64::from(offset), i64::from(limit)).await?;
    rows.into_iter().map(|row| to_json(state, row, &query.fields)).collect()
}

/// `GET /api/catalog/entities/by-name/{kind}/{namespace}/{name}`.
pub async fn entity_by_name(
    state: &AppState,
    _actor: &Actor,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Box<RawValue>> {
    let (kind, namespace, name) =
        (kind.to_ascii_lowercase(), namespace.to_ascii_lowercase(), name.to_ascii_lowercase());
    let missing = || ServiceError::Absent(format!("entity {kind}:{namespace}/{name} does not exist"));
    if kind == "component" && namespace == "default" {
        match state.store.service_by_name(&name).await {
            Ok(row) => return Ok(render_service(state, &row.into())),
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }
    }
    match state.store.stored_entity(&kind, &namespace, &name).await {
        Ok(text) => to_json(state, EntityRow::Stored(text), &[]),
        Err(StoreError::NotFound) => Err(missing()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_only_the_paths_asked_for() {
        let entity =
            json!({"kind": "API", "metadata": {"name": "a", "title": "A"}, "spec": {"owner": "x", "type": "openapi"}});
        let fields =
            vec!["kind".to_owned(), "metadata.name".to_owned(), "spec.owner".to_owned(), "spec.nope".to_owned()];
        assert_eq!(project(entity, &fields), json!({"kind": "API", "metadata": {"name": "a"}, "spec": {"owner": "x"}}));
    }

    #[test]
    fn unknown_query_parameters_are_refused() {
        let err = EntityQuery::from_pairs(vec![("filtr".into(), "kind=api".into())]).expect_err("unknown");
        assert!(err.to_string().contains("filtr"), "{err}");
        let query = EntityQuery::from_pairs(vec![
            ("filter".into(), "kind=api".into()),
            ("filter".into(), "kind=system".into()),
            ("fields".into(), "kind, metadata.name".into()),
        ])
        .expect("valid");
        assert_eq!(query.filters.len(), 2);
        assert_eq!(query.fields, ["kind", "metadata.name"]);
    }
}
