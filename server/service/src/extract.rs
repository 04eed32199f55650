//! `ApiPath` and `ApiQuery`: axum's path and query extractors with their rejections
//! turned into problem documents that name the parameter, as `ApiJson` does for bodies
//! (axum's own rejections are `text/plain`, which the API contract never answers).

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ServiceError;

/// Path parameters, e.g. `ApiPath((service, env)): ApiPath<(String, String)>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

/// Query parameters into a struct that refuses unknown keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Stored text cannot hold NUL (PostgreSQL refuses it, even in a lookup).
        if parts.uri.path().contains("%00") {
            return Err(ServiceError::invalid("", "the path contains a NUL character (%00), which no name may hold"));
        }
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Stored text cannot hold NUL (PostgreSQL refuses it): refused for every parameter.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ServiceError::invalid(
                "",
                "the query string contains a NUL character (%00), which no text may hold",
            ));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(query_error(&rejection)),
        }
    }
}

/// What a path segment should have been, in words (`i64` → a whole number).
fn expected(type_name: &str) -> &'static str {
    match type_name {
        "i64" | "i32" | "u64" | "u32" | "u16" | "usize" => "a whole number",
        "bool" => "true or false",
        _ => "a valid value",
    }
}

fn path_error(rejection: PathRejection) -> ServiceError {
    let PathRejection::FailedToDeserializePathParams(err) = rejection else {
        // The route and its extractor disagree: a bug of ours, not the client's.
        return ServiceError::internal(format!("extracting path parameters: {}", rejection.body_text()));
    };
    match err.into_kind() {
        ErrorKind::ParseErrorAtKey { key, value, expected_type } => {
            ServiceError::invalid(&key, format!("{key} {value:?} in the path is not {}", expected(expected_type)))
        }
        ErrorKind::ParseErrorAtIndex { value, expected_type, .. } | ErrorKind::ParseError { value, expected_type } => {
            ServiceError::invalid("", format!("{value:?} in the path is not {}", expected(expected_type)))
        }
        ErrorKind::InvalidUtf8InPathParam { key } => {
            ServiceError::invalid(&key, format!("{key} in the path is not valid UTF-8 once percent-decoded"))
        }
        ErrorKind::DeserializeError { key, value, message } => {
            ServiceError::invalid(&key, format!("{key} {value:?} in the path: {message}"))
        }
        other => ServiceError::internal(format!("extracting path parameters: {other}")),
    }
}

fn query_error(rejection: &QueryRejection) -> ServiceError {
    // serde_urlencoded's message without axum's prefix, e.g. "unknown field `x`, expected
    // one of `limit`, `cursor`" or "limit: invalid digit found in string".
    let text = rejection.body_text();
    let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    let field = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|marker| text.split(marker).nth(1).and_then(|rest| rest.split('`').next()))
        .or_else(|| text.split_once(": ").map(|(key, _)| key).filter(|key| !key.contains(' ')))
        .unwrap_or_default()
        .to_owned();
    ServiceError::invalid(field, format!("the query string is not valid: {text}"))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    async fn problem(uri: &str) -> (StatusCode, String, serde_json::Value) {
        let app = Router::new()
            .route("/runs/{id}", get(|ApiPath(id): ApiPath<i64>| async move { id.to_string() }))
            .route("/list", get(|ApiQuery(_): ApiQuery<Page>| async { "ok" }))
            .route("/names/{name}", get(|ApiPath(name): ApiPath<String>| async move { name }));
        let response = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_path_segment_of_the_wrong_type_is_a_problem_naming_it() {
        let (status, content_type, body) = problem("/runs/abc").await;
        assert_eq!((status, content_type.as_str()), (StatusCode::BAD_REQUEST, "application/problem+json"));
        assert_eq!(body["detail"], "\"abc\" in the path is not a whole number", "{body}");
    }

    #[tokio::test]
    async fn nul_in_a_path_or_query_is_refused_before_anything_looks_it_up() {
        let (status, _, body) = problem("/names/a%00b").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");
        let (status, _, body) = problem("/list?limit=1%00").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    #[tokio::test]
    async fn an_unknown_or_malformed_query_parameter_is_a_problem_naming_it() {
        let (status, content_type, body) = problem("/list?limt=3").await;
        assert_eq!((status, content_type.as_str()), (StatusCode::BAD_REQUEST, "application/problem+json"));
        assert_eq!(body["field"], "limt", "{body}");
        let (status, _, body) = problem("/list?limit=lots").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "limit", "{body}");
        assert!(body["detail"].as_str().unwrap().starts_with("the query string is not valid: limit"), "{body}");
    }
}
