//! Portal forms: URL-encoded bodies that must carry the session's CSRF token, and the
//! audit entry every change through a form leaves.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use slipway_service::{AppState, ServiceError, audit};

use crate::error::PageError;
use crate::session::Viewer;

/// A form's fields, in order of name. Repeated names keep the last value.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub BTreeMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }

    /// A field that must be present and not blank.
    pub fn required(&self, name: &str) -> Result<String, ServiceError> {
        let value = self.get(name).trim();
        if value.is_empty() {
            return Err(ServiceError::invalid(name, format!("{name} is required")));
        }
        Ok(value.to_owned())
    }

    /// An optional field: `None` when blank.
    pub fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim().to_owned()).filter(|v| !v.is_empty())
    }
}

/// A URL-encoded form body.
#[derive(Debug)]
pub struct Form(pub Fields);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, state).await.map_err(|e| {
            PageError::Service(ServiceError::invalid("form", format!("the form could not be read: {}", e.body_text())))
        })?;
        Ok(Form(Fields(pairs.into_iter().collect())))
    }
}

/// Checks the CSRF token of a form sent by `viewer`; a refusal is recorded in the audit
/// log under `action` and `target`, as the change itself would have been.
pub async fn require_csrf(
    state: &AppState,
    viewer: &Viewer,
    form: &Fields,
    action: &str,
    target: &str,
) -> Result<(), PageError> {
    let checked = viewer.check_csrf(state, form.get("csrf_token"));
    if checked.is_err() {
        audit::record(state, viewer.username(), action, target, StatusCode::FORBIDDEN).await;
    }
    checked
}

/// Runs a change made through a form: checks CSRF, records it in the audit log as the
/// API does, and answers a redirect to `back` on success.
pub async fn change<F>(
    state: &AppState,
    viewer: &Viewer,
    fields: &Fields,
    action: &str,
    target: &str,
    back: String,
    work: F,
) -> Result<Response, PageError>
where
    F: std::future::Future<Output = Result<Option<String>, ServiceError>>,
{
    require_csrf(state, viewer, fields, action, target).await?;
    let result = work.await;
    let status = match &result {
        Ok(_) => StatusCode::SEE_OTHER,
        Err(err) => err.status(),
    };
    audit::record(state, viewer.username(), action, target, status).await;
    let redirect = result?.unwrap_or(back);
    Ok(Redirect::to(&redirect).into_response())
}

/// A page's query string, refused with the error page (400, naming what is wrong) rather
/// than axum's plain-text rejection.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(PageError::Service(ServiceError::invalid(
                "query",
                format!("the address's query is not valid: {}", rejection.body_text()),
            ))),
        }
    }
}
