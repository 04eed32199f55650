//! The API contract as the e2e tests see it: every answer `TestApp::call` gets is checked
//! against the operation its method and path name in `/api/openapi.json` (its status
//! listed, with the listed content type; an error's detail free of Rust debug output),
//! so a handler answering a status its operation does not list fails whichever test
//! reaches it.

use std::collections::BTreeMap;

use serde_json::Value;

/// One operation of the document: its method, path template and answers.
#[derive(Debug)]
struct Operation {
    method: String,
    /// Each path segment: `Some(literal)` or `None` for a `{parameter}`.
    segments: Vec<Option<String>>,
    /// Status → the content types it may carry (empty: no body).
    responses: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
pub struct Contract {
    operations: Vec<Operation>,
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('/').split('/').collect()
}

impl Contract {
    pub fn from_document(doc: &Value) -> Contract {
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("the document has paths") {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let Some(answers) = operation["responses"].as_object() else { continue };
                let responses = answers
                    .iter()
                    .map(|(status, response)| {
                        let types = response["content"].as_object().map(|c| c.keys().cloned().collect());
                        (status.clone(), types.unwrap_or_default())
                    })
                    .collect();
                let segments = segments(path)
                    .into_iter()
                    .map(|s| if s.starts_with('{') { None } else { Some(s.to_owned()) })
                    .collect();
                operations.push(Operation { method: method.to_uppercase(), segments, responses });
            }
        }
        Contract { operations }
    }

    /// The operation `method path` names: the one whose template matches with the most
    /// literal segments (`/templates/{name}/latest` before `/templates/{name}/{version}`).
    fn operation(&self, method: &str, path: &str) -> Option<&Operation> {
        let path = path.split('?').next().unwrap_or_default();
        let actual = segments(path);
        self.operations
            .iter()
            .filter(|op| op.method == method && op.segments.len() == actual.len())
            .filter(|op| op.segments.iter().zip(&actual).all(|(want, got)| want.as_deref().is_none_or(|w| w == *got)))
            .max_by_key(|op| op.segments.iter().filter(|s| s.is_some()).count())
    }

    /// Whether an answer keeps the contract; the error says what it broke.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &str) -> Result<(), String> {
        let Some(operation) = self.operation(method, path) else {
            // No such route: the router's own 404/405, which no operation describes.
            return if status == 404 || status == 405 {
                Ok(())
            } else {
                Err(format!("{method} {path} answered {status}, but the document has no such operation"))
            };
        };
        let Some(types) = operation.responses.get(&status.to_string()) else {
            let listed: Vec<&String> = operation.responses.keys().collect();
            return Err(format!("{method} {path} answered {status}, which its operation does not list ({listed:?})"));
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if !body.is_empty() && !types.iter().any(|t| t == essence) {
            return Err(format!("{method} {path} answered {status} as {essence:?}; the document says {types:?}"));
        }
        if status >= 400 {
            let detail = serde_json::from_str::<Value>(body).ok().and_then(|v| v["detail"].as_str().map(str::to_owned));
            if let Some(detail) = detail.filter(|d| shows_debug_output(d)) {
                return Err(format!("{method} {path}: the message shows Rust debug output: {detail}"));
            }
        }
        Ok(())
    }
}

/// `ServiceName("shop")` or `Foo { a: 1 }`: a value formatted for a programmer.
pub fn shows_debug_output(text: &str) -> bool {
    let after_word = |at: usize| text[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices("(\"").any(|(at, _)| after_word(at))
        || text
            .match_indices(" { ")
            .any(|(at, _)| text[..at].rsplit(' ').next().is_some_and(|w| w.starts_with(char::is_uppercase)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contract() -> Contract {
        Contract::from_document(&json!({"paths": {
            "/api/v1/templates/{name}/{version}": {"get": {"responses": {
                "200": {"content": {"application/json": {}}},
                "404": {"content": {"application/problem+json": {}}}}}},
            "/api/v1/templates/{name}/latest": {"get": {"responses": {"204": {}}}}
        }}))
    }

    #[test]
    fn an_answer_is_held_to_the_operation_its_path_names() {
        let c = contract();
        assert_eq!(c.check("GET", "/api/v1/templates/web/1.0.0", 200, "application/json", "{}"), Ok(()));
        assert!(c.check("GET", "/api/v1/templates/web/1.0.0", 409, "application/problem+json", "{}").is_err());
        assert!(c.check("GET", "/api/v1/templates/web/1.0.0?x=1", 404, "application/json", "{}").is_err());
        assert_eq!(c.check("GET", "/api/v1/templates/web/latest", 204, "", ""), Ok(()));
        assert!(c.check("GET", "/api/v1/templates/web/latest", 200, "application/json", "{}").is_err());
        assert_eq!(c.check("DELETE", "/api/v1/nothing", 404, "application/problem+json", "{}"), Ok(()));
        assert!(c.check("DELETE", "/api/v1/nothing", 500, "application/problem+json", "{}").is_err());
    }

    #[test]
    fn debug_output_in_a_message_is_caught() {
        assert!(shows_debug_output("service ServiceName(\"shop\") already exists"));
        assert!(shows_debug_output("got Spec { replicas: 2 }"));
        assert!(!shows_debug_output("service \"shop\" already exists (see \"slipway services\")"));
        assert!(!shows_debug_output("use { and } in templates"));
    }
}
