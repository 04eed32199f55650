//! How a portal request fails: a friendly page with the right status (401 sends the
//! browser to sign in, 403, 404, a form's own errors), never internal text.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use slipway_service::ServiceError;

#[derive(Debug)]
pub enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page, then come back.
    SignIn {
        next: String,
        expired: bool,
    },
    /// A form without a valid CSRF token.
    Csrf,
    Service(ServiceError),
    Render(askama::Error),
}

impl From<ServiceError> for PageError {
    fn from(err: ServiceError) -> Self {
        PageError::Service(err)
    }
}

impl From<askama::Error> for PageError {
    fn from(err: askama::Error) -> Self {
        PageError::Render(err)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

/// `/login?next=/services/shop`, with `next` encoded.
pub fn login_url(next: &str, expired: bool) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", next);
    if expired {
        query.append_pair("expired", "1");
    }
    format!("/login?{}", query.finish())
}

pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let page = ErrorPage { status: status.as_u16(), title, detail };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(%err, "rendering the error page");
            (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], detail.to_owned()).into_response()
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next, expired } => Redirect::to(&login_url(&next, expired)).into_response(),
            PageError::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "It was not sent from a page of this Slipway, or the page is older than your session. \
                 Go back, reload the page and try again.",
            ),
            PageError::Service(err) => {
                let status = err.status();
                if status.is_server_error() {
                    tracing::error!(err = %slipway_service::error::chain(&err), "portal request failed");
                }
                let title = match status {
                    StatusCode::UNAUTHORIZED => "Sign in to continue",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::CONFLICT => "That conflicts with what exists",
                    StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
                    s if s.is_client_error() => "That did not work",
                    _ => "Something went wrong",
                };
                error_page(status, title, &err.problem().detail)
            }
            PageError::Render(err) => {
                tracing::error!(%err, "rendering a portal page");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "something went wrong on the server; it has been logged, try again later",
                )
            }
        }
    }
}

/// A page not found by the router.
pub async fn not_found() -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", "There is no page at this address.")
}
