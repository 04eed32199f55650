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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
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
    fn finds_the_field_in_serde_messages() {
        assert_eq!(field_of("unknown field `nmae`, expected one of `name`, `team` at line 1 column 7"), "nmae");
        assert_eq!(field_of("missing field `team` at line 1 column 15"), "team");
        assert_eq!(field_of("links[0].url: invalid type: integer `3`, expected a string"), "links[0].url");
        assert_eq!(field_of("invalid type: map, expected a string"), "");
    }
}
