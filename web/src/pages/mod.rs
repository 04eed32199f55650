//! The page handlers, one module per area. Each parses its input, calls the use cases
//! of `slipway-service` and renders one template.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::error::PageError;
use crate::session::Viewer;

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod dashboard;
pub mod environments;
pub mod runs;
pub mod services;
pub mod templates;

/// What the layout needs: who is signed in and the token the sign-out form carries.
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub admin: bool,
    pub csrf: String,
    /// The section the page belongs to, highlighted in the menu.
    pub section: &'static str,
}

impl Nav {
    pub fn new(viewer: &Viewer, section: &'static str) -> Nav {
        Nav { user: viewer.username().to_owned(), admin: viewer.is_admin(), csrf: viewer.csrf.clone(), section }
    }
}

/// Renders a page with status 200.
pub fn render(page: impl Template) -> Result<Response, PageError> {
    Ok(Html(page.render()?).into_response())
}

/// Renders a page with another status (a form shown again with its errors).
pub fn render_with(status: axum::http::StatusCode, page: impl Template) -> Result<Response, PageError> {
    Ok((status, Html(page.render()?)).into_response())
}
