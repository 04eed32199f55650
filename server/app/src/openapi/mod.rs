//! The OpenAPI document's frame: title, security scheme and tags. Paths and schemas are
//! collected from the handlers by `utoipa_axum` as routes are registered.

mod rules;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway API", description = "Self-hosted internal developer platform: services, teams, environments and pipelines."),
    modifiers(&BearerAuth),
    tags(
        (name = "session", description = "Signing in"),
        (name = "users", description = "User accounts"),
        (name = "teams", description = "Teams and memberships"),
        (name = "services", description = "Services and their catalog metadata"),
        (name = "tokens", description = "The caller's API tokens"),
        (name = "audit", description = "The audit log"),
        (name = "environments", description = "Environments, releases, rollback, scale and promote"),
        (name = "runs", description = "Pipeline runs: builds triggered by pushes and deploys"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session token from POST /api/v1/login, or an API token (slp_…)"))
                    .build(),
            ),
        );
    }
}

/// The statuses every operation of a kind can answer, whatever its handler: added to the
/// document from what the operation takes (a token, a body, path and query parameters),
/// because the extractors answer them before the handler runs. Handlers list the rest.
const PROBLEM: &str = "#/components/schemas/Problem";

/// Completes the document utoipa collected from the handlers: the statuses the
/// extractors answer (401 without a valid token, 400/413/415 for a body, 404 for a path
/// naming something, 400 for query parameters), and every error as
/// `application/problem+json` (utoipa writes every body as `application/json`).
pub fn complete(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    rules::apply(&mut doc);
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, operation) in item.iter_mut() {
            let Some(operation) = operation.as_object_mut() else { continue };
            complete_operation(path, method, operation);
        }
    }
    doc
}

fn complete_operation(path: &str, method: &str, operation: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::Value;
    let secured = operation.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let has_body = operation.contains_key("requestBody");
    let params = operation.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let in_path = |p: &&Value| p["in"] == "path";
    let has_query = params.iter().any(|p| p["in"] == "query");
    // A path parameter that is not any string (a number, a name's pattern) can be refused.
    let typed_path =
        params.iter().filter(in_path).any(|p| p["schema"]["type"] != "string" || p["schema"].get("pattern").is_some());
    let names_something = path.contains('{');
    let mut added: Vec<(&str, &str)> = Vec::new();
    if secured {
        added.push(("401", "No valid token: sign in (POST /api/v1/login) or send an API token"));
    }
    if has_body {
        added.push(("400", "The body is not valid JSON, does not match the schema, or breaks a rule"));
        added.push(("413", "The body is larger than 64 KiB"));
        added.push(("415", "The body is not sent as application/json"));
    }
    if has_query || typed_path {
        added.push(("400", "A path or query parameter is not valid"));
    }
    if names_something {
        added.push(("404", "Something the path names does not exist, or the caller may not see it"));
        if method != "get" {
            // A write that read what the path names, then lost it to another request's
            // delete before it wrote (see `ServiceError::from(StoreError)`).
            added.push(("409", "Another request changed or deleted what this one acts on meanwhile"));
        }
    }
    let responses = operation.entry("responses").or_insert_with(|| Value::Object(Default::default()));
    let Some(responses) = responses.as_object_mut() else { return };
    for (status, description) in added {
        responses.entry(status).or_insert_with(|| serde_json::json!({ "description": description }));
    }
    for (status, response) in responses.iter_mut() {
        if !status.starts_with('4') && !status.starts_with('5') {
            // OpenAPI requires a description; utoipa leaves an empty one out.
            if let Some(response) = response.as_object_mut() {
                response.entry("description").or_insert_with(|| Value::String(default_description(status)));
            }
            continue;
        }
        // Every error is a problem document, whatever the handler's annotation said.
        let description = response["description"].as_str().unwrap_or_default().to_owned();
        let description = if description.is_empty() { default_description(status) } else { description };
        *response = serde_json::json!({
            "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": PROBLEM } } }
        });
    }
}

fn default_description(status: &str) -> String {
    status
        .parse::<u16>()
        .ok()
        .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_owned()
}
