//! `ApiJson`: axum's JSON extractor with its rejections turned into problem+json that
//! names the offending field, so a client learns exactly what to fix.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ServiceError;

/// The largest JSON body the API accepts; bigger bodies get 413.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// A JSON request body or response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Parsed as a JSON value first: every request body is an object (serde would
        // also take a struct from an array, `[null, null]`), and a whole number may be
        // written `3.0`, which JSON Schema counts as an integer and serde refuses.
        let mut value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(rejection_to_error(rejection)),
        };
        if !value.is_object() {
            return Err(ServiceError::invalid("", "the body must be a JSON object, e.g. {\"name\": \"shop\"}"));
        }
        whole_numbers_as_integers(&mut value);
        if let Some(field) = nul_in(&value, "") {
            return Err(ServiceError::invalid(
                field.clone(),
                format!("{field} contains a NUL character (\\u0000), which no text may hold"),
            ));
        }
        serde_path_to_error::deserialize(value).map(ApiJson).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." { field_of(&err.inner().to_string()) } else { path.clone() };
            let text = if path == "." { err.inner().to_string() } else { format!("{path}: {}", err.inner()) };
            ServiceError::invalid(field, format!("the body does not match the expected shape: {text}"))
        })
    }
}

/// The path of the first string (or key) holding NUL: stored text cannot hold it
/// (PostgreSQL refuses it), so it is refused here for every field alike.
fn nul_in(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| nul_in(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            // Template parameters are checked against the template's own rules (422).
            if path.is_empty() && key == "parameters" {
                return None;
            }
            let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            if key.contains('\0') { Some(path) } else { nul_in(item, &path) }
        }),
        _ => None,
    }
}

/// Turns `3.0` into `3` wherever it appears, so an integer field takes it.
fn whole_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // A float with no fraction is a whole number; below 2^63 i64 holds it exactly.
            if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers_as_integers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers_as_integers),
        _ => {}
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn rejection_to_error(rejection: JsonRejection) -> ServiceError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ServiceError::PayloadTooLarge { limit: MAX_JSON_BODY };
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ServiceError::UnsupportedMediaType(
            "send the body as JSON with the header `Content-Type: application/json`".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(err) => {
            ServiceError::invalid("", format!("the body is not valid JSON: {}", source_text(&err)))
        }
        JsonRejection::JsonDataError(err) => {
            let text = source_text(&err);
            ServiceError::invalid(field_of(&text), format!("the body does not match the expected shape: {text}"))
        }
        other => ServiceError::invalid("", other.body_text()),
    }
}

/// The innermost error message (serde's), without axum's generic prefix.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut current: &dyn std::error::Error = err;
    while let Some(next) = current.source() {
        current = next;
    }
    // serde_path_to_error puts the path in the middle layer; show it when present.
    match err.source() {
        Some(middle) if middle.to_string() != current.to_string() => middle.to_string(),
        _ => current.to_string(),
    }
}

/// Finds the field a serde message is about: `unknown field `x``, `missing field `x``,
/// or a `path: message` prefix.
fn field_of(text: &str) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(name) = text.split(marker).nth(1).and_then(|rest| rest.split('`').next()) {
            return name.to_owned();
        }
    }
    match text.split_once(": ") {
        Some((path, _)) if !path.contains(' ') && path != "." => path.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn nul_is_found_wherever_it_is() {
        let value = serde_json::json!({"set": {"A": "ok", "B": "x\u{0}y"}});
        assert_eq!(super::nul_in(&value, "").as_deref(), Some("set.B"));
        assert_eq!(super::nul_in(&serde_json::json!({"a": ["", "\u{0}"]}), "").as_deref(), Some("a[1]"));
        assert_eq!(super::nul_in(&serde_json::json!({"a": "fine"}), ""), None);
    }

    #[test]
    fn whole_numbers_written_as_floats_become_integers() {
        let mut value = serde_json::json!({"replicas": 3.0, "list": [2.5, -0.0, 1e3, 1e16, 1e19], "name": "x"});
        super::whole_numbers_as_integers(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"replicas": 3, "list": [2.5, 0, 1000, 10_000_000_000_000_000_i64, 1e19], "name": "x"})
        );
        assert!(value["replicas"].is_i64());
    }

    #[test]
    fn finds_the_field_in_serde_messages() {
        assert_eq!(field_of("unknown field `nmae`, expected one of `name`, `team` at line 1 column 7"), "nmae");
        assert_eq!(field_of("missing field `team` at line 1 column 15"), "team");
        assert_eq!(field_of("links[0].url: invalid type: integer `3`, expected a string"), "links[0].url");
        assert_eq!(field_of("invalid type: map, expected a string"), "");
    }
}
