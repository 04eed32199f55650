//! `/templates`: every environment template and its versions with their parameters;
//! admins publish new versions and deprecate old ones here.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_service::{AppState, templates};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::{Form, change};
use crate::session::Viewer;
use crate::view::short_time;

struct VersionView {
    name: String,
    version: String,
    description: String,
    builtin: bool,
    deprecated: bool,
    published_by: String,
    published: String,
    parameters: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "templates.html")]
struct TemplatesPage {
    nav: Nav,
    versions: Vec<VersionView>,
    is_admin: bool,
}

pub async fn templates(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let mut versions = Vec::new();
    for summary in templates::list_templates(&state, actor).await? {
        let reference = format!("{}@{}", summary.name, summary.version);
        let detail = templates::get_template(&state, actor, &reference).await?;
        let parameters = detail
            .parameters
            .as_object()
            .map(|params| {
                params
                    .iter()
                    .map(|(name, p)| {
                        let kind = p.get("type").and_then(|t| t.as_str()).unwrap_or("string");
                        let default = p.get("default").map(|d| format!(" = {d}")).unwrap_or_default();
                        (name.clone(), format!("{kind}{default}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.push(VersionView {
            name: summary.name,
            version: summary.version,
            description: summary.description,
            builtin: summary.builtin,
            deprecated: summary.deprecated,
            published_by: summary.published_by,
            published: short_time(&summary.published_at),
            parameters,
        });
    }
    render(TemplatesPage { nav: Nav::new(&viewer, "templates"), versions, is_admin: viewer.is_admin() })
}

pub async fn publish(State(state): State<AppState>, viewer: Viewer, Form(fields): Form) -> Result<Response, PageError> {
    let work = async {
        let detail = templates::publish_template(&state, &viewer.actor, fields.get("source")).await?;
        Ok(Some(format!("/templates#{}-{}", detail.summary.name, detail.summary.version)))
    };
    change(&state, &viewer, &fields, "POST /templates", "/templates", "/templates".to_owned(), work).await
}

pub async fn deprecate(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, version)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = format!("/templates/{name}/{version}/deprecate");
    let work = async { templates::deprecate_template(&state, &viewer.actor, &name, &version).await.map(|_| None) };
    change(
        &state,
        &viewer,
        &fields,
        "POST /templates/{name}/{version}/deprecate",
        &target,
        "/templates".to_owned(),
        work,
    )
    .await
}
