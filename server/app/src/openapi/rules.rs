//! The input rules the OpenAPI document states: name patterns, lengths, enumerations
//! and ranges, written once here from the constants the validators use, and applied
//! to every parameter and request-body property they govern by its name. A client (or
//! a fuzzer) can then tell a valid request from an invalid one from the document alone:
//! what the document allows the server accepts, and what it refuses the server answers
//! 400. Rules no JSON Schema can state (a template's YAML, a kubeconfig, a URL's host)
//! stay with the validators.

use serde_json::{Value, json};
use slipway_core::catalog::{
    MAX_DEPENDENCIES, MAX_DESCRIPTION_LEN, MAX_LINK_NAME_LEN, MAX_LINKS, MAX_ON_CALL_LEN, MAX_URL_LEN,
};
use slipway_core::config::{MAX_KEY_CHARS, MAX_VARS};
use slipway_core::names::MAX_NAME_LEN;

/// `[a-z][a-z0-9-]*` of at most 40 characters, not ending in '-' (`validate_name`).
fn name_regex() -> String {
    format!("[a-z](?:[a-z0-9-]{{0,{}}}[a-z0-9])?", MAX_NAME_LEN - 2)
}

/// A version part: no leading zero, no sign, within u32 (nine digits always are).
const VERSION_PART: &str = "(?:0|[1-9][0-9]{0,8})";

fn version_regex() -> String {
    format!("{VERSION_PART}\\.{VERSION_PART}\\.{VERSION_PART}")
}

pub fn name() -> Value {
    json!({ "type": "string", "pattern": format!("^{}$", name_regex()) })
}

fn token_name() -> Value {
    json!({ "type": "string", "pattern": format!("^[A-Za-z0-9._@-]{{1,{}}}$", slipway_service::tokens::MAX_TOKEN_NAME_LEN) })
}

fn version() -> Value {
    json!({ "type": "string", "pattern": format!("^{}$", version_regex()) })
}

/// `NAME` or `NAME@VERSION`.
fn template_reference() -> Value {
    json!({ "type": "string", "pattern": format!("^{}(?:@{})?$", name_regex(), version_regex()) })
}

/// Text without control characters (a description may hold newlines).
fn text(max: usize, newlines: bool) -> Value {
    let pattern = if newlines {
        "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$"
    } else {
        "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    };
    json!({ "type": "string", "maxLength": max, "pattern": pattern })
}

/// An environment variable's name that is not reserved (`PORT`, `SLIPWAY_…`).
fn config_key() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$", MAX_KEY_CHARS - 1),
        "not": { "pattern": "^(?:PORT|[Ss][Ll][Ii][Pp][Ww][Aa][Yy]_.*)$" }
    })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

fn range(min: u64, max: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max })
}

/// The rule for a parameter, by where it is and its name; `None` leaves it as the
/// handler declared it.
pub fn parameter(path: &str, location: &str, name: &str) -> Option<Value> {
    if path.starts_with("/api/catalog/") {
        return catalog_parameter(location, name);
    }
    match (location, name) {
        ("path", "service" | "env" | "team" | "user") => Some(self::name()),
        ("path", "name") if path.starts_with("/api/v1/tokens/") => Some(token_name()),
        // `web` or `web@1.2.0`.
        ("path", "name") if path == "/api/v1/templates/{name}" => Some(template_reference()),
        ("path", "name") => Some(self::name()),
        ("path", "version") => Some(version()),
        ("query", "limit") => Some(range(1, u64::from(slipway_service::pagination::MAX_LIMIT))),
        ("query", "team") => Some(self::name()),
        ("query", "days") => Some(json!({ "type": "integer", "enum": [7, 30, 90] })),
        ("query", "tail") => Some(range(0, u64::from(slipway_service::environments::MAX_LOG_TAIL))),
        // Empty: every outcome.
        ("query", "outcome") => Some(one_of(&["", "success", "denied", "failed"])),
        // Lists keyed by id (newest first) take the hex of a decimal id; the others any
        // hex (see slipway_service::pagination).
        ("query", "cursor") if path.ends_with("/runs") || path.ends_with("/releases") || path == "/api/v1/audit" => {
            Some(json!({ "type": "string", "pattern": "^(?:(?:3[0-9]){1,18})?$" }))
        }
        ("query", "cursor") => Some(json!({
            "type": "string",
            "pattern": format!("^(?:[0-9a-f]{{2}}){{0,{}}}$", slipway_service::pagination::MAX_CURSOR_CHARS / 2)
        })),
        _ => None,
    }
}

/// A Backstage entity name or namespace.
fn entity_name() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$" })
}

/// The Backstage-compatible reads (slipway_service::backstage).
fn catalog_parameter(location: &str, name: &str) -> Option<Value> {
    use slipway_service::backstage::{MAX_FIELDS, MAX_FILTERS, MAX_LIMIT};
    let rule = match (location, name) {
        ("path", "kind") => json!({ "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]{0,62}$" }),
        ("path", "namespace" | "name") => entity_name(),
        ("query", "limit") => range(0, u64::from(MAX_LIMIT)),
        ("query", "offset") => range(0, u64::from(slipway_service::backstage::MAX_OFFSET)),
        ("query", "filter") => json!({
            "type": "array",
            "maxItems": MAX_FILTERS,
            "items": {
                "type": "string",
                "pattern": format!(
                    "^,*(?:(?:kind|metadata\\.namespace|metadata\\.name|spec\\.owner|spec\\.lifecycle)=[^,\\u0000]*,*){{0,{}}}$",
                    slipway_service::backstage::MAX_TERMS
                )
            }
        }),
        ("query", "fields") => json!({
            "type": "string",
            "pattern": format!("^[^,\\u0000]*(?:,[^,\\u0000]*){{0,{}}}$", MAX_FIELDS - 1)
        }),
        _ => return None,
    };
    Some(rule)
}

/// The rule for a property of a request body's schema, by schema and property name.
pub fn property(schema: &str, property: &str) -> Option<Value> {
    let password = || json!({ "type": "string", "minLength": slipway_service::auth::password::MIN_PASSWORD_LEN, "maxLength": slipway_service::auth::password::MAX_PASSWORD_LEN });
    let rule = match (schema, property) {
        ("CreateTeam" | "CreateService" | "CreateEnvironment" | "AddCluster", "name") => name(),
        ("CreateService", "team") | ("CreateUser" | "AddMember", "username") => name(),
        ("CreateEnvironment", "runtime") | ("CreateRun", "environment") => name(),
        ("PromoteRequest", "from" | "to") => name(),
        ("CreateEnvironment" | "UpdateEnvironment", "template") => template_reference(),
        // An empty one turns previews off.
        ("UpdateService", "preview_template") => {
            json!({ "type": "string", "pattern": format!("^(?:{}(?:@{})?)?$", name_regex(), version_regex()) })
        }
        ("CreateEnvironment", "ttl") => json!({ "type": "string", "pattern": "^[1-9][0-9]{0,8}[smhd]$" }),
        ("CreateToken", "name") => token_name(),
        ("CreateToken", "expires_in_days") => range(1, u64::from(slipway_service::tokens::MAX_TOKEN_DAYS)),
        ("CreateUser", "password") | ("ChangePassword", "new_password") => password(),
        ("AddMember", "role") => one_of(&["maintainer", "member"]),
        ("CreateService" | "UpdateService", "tier") => one_of(&["tier-1", "tier-2", "tier-3"]),
        // Free text, as in Backstage; experimental, production and deprecated are documented.
        ("CreateService" | "UpdateService", "lifecycle") => {
            let mut rule = text(slipway_core::catalog::MAX_LIFECYCLE_LEN, false);
            rule["pattern"] = json!(
                "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
            );
            rule
        }
        ("UpdateTeam", "aliases") => json!({
            "type": "array",
            "maxItems": slipway_service::teams::MAX_ALIASES,
            "items": entity_name()
        }),
        ("CatalogImport", "files") => json!({
            "type": "array",
            "minItems": 1,
            "maxItems": slipway_service::catalog_import::MAX_FILES,
            "items": { "$ref": "#/components/schemas/DescriptorFile" }
        }),
        ("CatalogImport", "team") => name(),
        ("DescriptorFile", "path") => json!({
            "type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"
        }),
        ("CreateService" | "UpdateService", "description") => text(MAX_DESCRIPTION_LEN, true),
        ("CreateService" | "UpdateService", "on_call") => text(MAX_ON_CALL_LEN, false),
        ("CreateService" | "UpdateService", "depends_on") => {
            json!({ "type": "array", "maxItems": MAX_DEPENDENCIES, "items": name() })
        }
        ("CreateService" | "UpdateService", "links") => {
            json!({ "type": "array", "maxItems": MAX_LINKS, "items": { "$ref": "#/components/schemas/Link" } })
        }
        ("Link", "name") => {
            let mut rule = text(MAX_LINK_NAME_LEN, false);
            rule["pattern"] = json!(
                "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
            );
            rule
        }
        ("Link", "url") => {
            json!({ "type": "string", "maxLength": MAX_URL_LEN, "format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://" })
        }
        ("ScaleRequest", "replicas") => range(1, u64::from(slipway_service::environments::MAX_REPLICAS)),
        ("CreateRun", "git_ref") => {
            json!({ "type": "string", "pattern": "^[^-\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]{0,254}$" })
        }
        ("SetQuota", "max_memory_mb") => range(0, i64::MAX as u64),
        ("SetQuota", _) => range(0, i32::MAX as u64),
        ("ConfigChange", "set") => json!({
            "type": "object",
            "maxProperties": MAX_VARS,
            "propertyNames": config_key(),
            "additionalProperties": { "type": "string" }
        }),
        ("ConfigChange", "unset") => json!({ "type": "array", "maxItems": MAX_VARS, "items": config_key() }),
        _ => return None,
    };
    Some(rule)
}

/// Adds "no NUL" to a free-text string schema (one with no pattern, enum or format of
/// its own), nullable or not, and to the strings of a map's values.
fn without_nul(schema: &mut Value) {
    const NO_NUL: &str = "^[^\\u0000]*$";
    if let Some(variants) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        variants.iter_mut().for_each(without_nul);
        return;
    }
    let is_string =
        schema["type"] == "string" || schema["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "string"));
    if is_string && ["pattern", "enum", "format"].iter().all(|k| schema.get(k).is_none()) {
        schema["pattern"] = json!(NO_NUL);
    }
    if let Some(values) = schema.get_mut("additionalProperties").filter(|v| v.is_object()) {
        without_nul(values);
    }
}

/// Applies the rules to every parameter and request-body schema of the document.
pub fn apply(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            for operation in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                for param in operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                    let location = param["in"].as_str().unwrap_or_default().to_owned();
                    let name = param["name"].as_str().unwrap_or_default().to_owned();
                    if let Some(rule) = parameter(path, &location, &name) {
                        param["schema"] = rule;
                    }
                }
            }
        }
    }
    // Stored text cannot hold NUL (slipway_service::json refuses it): every free-text
    // string a request body takes says so.
    let bodies: Vec<String> = doc["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .flat_map(|item| item.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|op| op.pointer("/requestBody/content/application~1json/schema/$ref")?.as_str())
        .filter_map(|r| r.strip_prefix("#/components/schemas/").map(str::to_owned))
        .chain(["Link".to_owned(), "DescriptorFile".to_owned()])
        .collect();
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else { return };
    // A config change changes something: a key to set or one to unset.
    if let Some(change) = schemas.get_mut("ConfigChange") {
        change["anyOf"] = json!([
            { "required": ["set"], "properties": { "set": { "minProperties": 1 } } },
            { "required": ["unset"], "properties": { "unset": { "minItems": 1 } } }
        ]);
    }
    for (schema_name, schema) in schemas.iter_mut() {
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else { continue };
        for (property_name, property) in properties.iter_mut() {
            let Some(rule) = self::property(schema_name, property_name) else { continue };
            // An optional property stays nullable: `["string", "null"]` keeps its null.
            let nullable = property["type"].as_array().is_some_and(|t| t.iter().any(|t| t == "null"));
            let mut rule = if nullable { json!({ "oneOf": [{ "type": "null" }, rule] }) } else { rule };
            if let Some(description) = property.get("description") {
                rule["description"] = description.clone();
            }
            *property = rule;
        }
    }
    for body in &bodies {
        let Some(properties) =
            schemas.get_mut(body).and_then(|s| s.get_mut("properties")).and_then(Value::as_object_mut)
        else {
            continue;
        };
        for property in properties.values_mut() {
            without_nul(property);
        }
    }
}
