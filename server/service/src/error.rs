//! The one error type of the use-case layer and its single mapping to HTTP: every API
//! error leaves here as `application/problem+json`. Internal causes are logged with a
//! reference and never sent to the client.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use slipway_api::Problem;
use slipway_core::NameError;
use slipway_core::catalog::CatalogError;
use slipway_store::StoreError;

/// Everything a use case can answer instead of a result. Choose the variant by what the
/// client should do next: sign in, ask someone, fix the input, or retry later.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No credentials, or credentials that do not verify: the client must sign in.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but the policy refuses.
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} {name:?} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// A relation that does not hold (a user who is not a team's member): 404 with a
    /// message saying what is missing.
    #[error("{0}")]
    Absent(String),
    #[error("{0}")]
    Conflict(String),
    /// Input that breaks a rule; `field` names the request field.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Template parameters (or the spec they render) that break a template's rules.
    #[error("{message}")]
    InvalidParameters { field: String, message: String },
    /// A team quota the change would exceed.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts; retry after the given number of seconds.
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// The server is at a bound it keeps (e.g. password hashes at once); retry after the
    /// given number of seconds.
    #[error("the server is busy; try again in {retry_after_secs} seconds")]
    Busy { retry_after_secs: u64 },
    /// Something the server depends on (the container engine, an add-on image) failed;
    /// the message says what, and nothing was left half-done.
    #[error("{0}")]
    Unavailable(String),
    /// A failure of ours: what was being done, and its cause with the cause's own
    /// chain. Logged whole; the client sees only a generic message.
    #[error("internal error: {context}")]
    Internal { context: String, source: Option<Box<dyn std::error::Error + Send + Sync>> },
}

impl ServiceError {
    /// A failure of ours with no cause beyond the description.
    pub fn internal(context: impl Into<String>) -> Self {
        ServiceError::Internal { context: context.into(), source: None }
    }

    /// A failure of ours while doing `context`, caused by `source`.
    pub fn internal_from(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        ServiceError::Internal { context: context.into(), source: Some(Box::new(source)) }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: field.into(), message: message.into() }
    }

    pub fn invalid_name(field: &str, value: &str, err: NameError) -> Self {
        ServiceError::invalid(field, format!("{field} {value:?} {err}"))
    }

    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        ServiceError::NotFound { kind, name: name.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::NotFound { .. } | ServiceError::Absent(_) => StatusCode::NOT_FOUND,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ServiceError::InvalidParameters { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ServiceError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::Unavailable(_) | ServiceError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document sent to the client.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ServiceError::Internal { .. } => {
                "something went wrong on the server; it has been logged, try again later".to_owned()
            }
            other => other.to_string(),
        };
        let field = match self {
            ServiceError::Invalid { field, .. } | ServiceError::InvalidParameters { field, .. }
                if !field.is_empty() =>
            {
                Some(field.clone())
            }
            _ => None,
        };
        Problem {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<StoreError> for ServiceError {
    /// Store errors that reach here unhandled are ours: a use case turns the expected
    /// ones (not found, conflict) into precise errors before they get this far. A quota
    /// refusal is the one store answer every caller passes on as it is. A row that
    /// vanished under a write (`NotFound` from an update, `InUse` from an insert whose
    /// parent was deleted) is a race with another request that deleted what this one had
    /// just read (a service, an environment): the client's view is stale, which is a 409,
    /// not a server error. Logged, in case it ever is a bug of ours instead.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Quota(over) => ServiceError::QuotaExceeded(quota_message(&over)),
            StoreError::HostTaken { host, service, environment } => {
                ServiceError::Conflict(host_taken_message(&host, &service, &environment))
            }
            StoreError::NotFound | StoreError::InUse => {
                tracing::warn!(%err, "a record this request read was deleted by another request before it wrote");
                ServiceError::Conflict(
                    "what this request changes was deleted or changed by another request meanwhile; \
                     reload it and try again"
                        .to_owned(),
                )
            }
            err => ServiceError::internal_from("the database", err),
        }
    }
}

/// Why a service or environment cannot have the host name `<service>-<environment>`.
pub fn host_taken_message(host: &str, service: &str, environment: &str) -> String {
    format!(
        "the name {host} (its URL {host}.<domain> and its namespace slipway-{host}) is taken by environment \
         {environment:?} of service {service:?}; choose another name"
    )
}

/// A unique-constraint refusal of a new environment `environment` of `service`: another
/// environment took its host name at the same moment (the index decided), or the
/// service already has one of that name (`otherwise`).
pub async fn environment_clash(
    store: &slipway_store::Store,
    service: &str,
    environment: &str,
    otherwise: String,
) -> ServiceError {
    let host = format!("{service}-{environment}");
    match store.host_owner(&host).await {
        Ok(Some((s, e))) if (s.as_str(), e.as_str()) != (service, environment) => {
            ServiceError::Conflict(host_taken_message(&host, &s, &e))
        }
        _ => ServiceError::Conflict(otherwise),
    }
}

/// `quota max_replicas of the team is 4: 3 in use, this needs 2 more`.
pub fn quota_message(over: &slipway_store::environments::QuotaExceeded) -> String {
    let unit = if over.quota == "max_memory_mb" { " MiB" } else { "" };
    format!(
        "quota {} of the team is {}{unit}: {}{unit} in use, this needs {}{unit} more; ask a platform admin to raise it \
         (slipway quotas set TEAM), or scale down or destroy an environment",
        over.quota, over.limit, over.used, over.requested
    )
}

impl From<CatalogError> for ServiceError {
    fn from(err: CatalogError) -> Self {
        ServiceError::invalid(err.field(), err.to_string())
    }
}

/// An error and its sources, each after a colon: what the log shows of a failure. A
/// cause whose text its error already shows (`"applying X: {source}"`) is not repeated.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        if let ServiceError::Internal { .. } = &self {
            tracing::error!(cause = %chain(&self), "request failed");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        if let ServiceError::RateLimited { retry_after_secs } | ServiceError::Busy { retry_after_secs } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after_secs));
        }
        if matches!(self, ServiceError::Unauthenticated(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"slipway\""));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_for_the_log_and_shows_the_client_nothing_of_it() {
        let cause = StoreError::Corrupt("run 7 has status \"compiling\"".into());
        let err = ServiceError::from(cause);
        let source = std::error::Error::source(&err).expect("the store's error is kept as the source");
        assert!(source.to_string().contains("compiling"));
        assert_eq!(chain(&err), "internal error: the database: stored data is invalid: run 7 has status \"compiling\"");
        let problem = err.problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("compiling") && !problem.detail.contains("database"), "{}", problem.detail);
    }
}
