//! `/templates`: every environment template and its versions with their parameters;
//! admins publish new versions and deprecate old ones here.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_service::{AppState, templates};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::{Form, Query, change};
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
    name: String,
    next: Option<String>,
}

/// Template versions per page.
const PAGE: usize = 25;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesQuery {
    /// Only this template's versions.
    #[serde(default)]
    name: String,
    /// The `NAME@VERSION` the previous page ended with.
    after: Option<String>,
}

pub async fn templates(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<TemplatesQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let reference = |t: &slipway_api::TemplateSummary| format!("{}@{}", t.name, t.version);
    // Few enough to list whole (a version per publish); the page shows a slice of them.
    let all: Vec<_> = templates::list_templates(&state, actor)
        .await?
        .into_iter()
        .filter(|t| query.name.is_empty() || t.name == query.name)
        .collect();
    let start = match &query.after {
        Some(after) => all.iter().position(|t| reference(t) == *after).map_or(0, |i| i + 1),
        None => 0,
    };
    let shown: Vec<_> = all.into_iter().skip(start).take(PAGE + 1).collect();
    let next = (shown.len() > PAGE).then(|| {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        if !query.name.is_empty() {
            url.append_pair("name", &query.name);
        }
        url.append_pair("after", &reference(&shown[PAGE - 1]));
        format!("/templates?{}", url.finish())
    });
    let mut versions = Vec::new();
    for summary in shown.into_iter().take(PAGE) {
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
    render(TemplatesPage {
        nav: Nav::new(&viewer, "templates"),
        versions,
        is_admin: viewer.is_admin(),
        name: query.name,
        next,
    })
}

pub async fn publish(State(state): State<AppState>, viewer: Viewer, Form(fields): Form) -> Result<Response, PageError> {
    let work = async {
        let detail = templates::publish_template(&state, &viewer.actor, fields.get("source")).await?;
        let (name, version) = (&detail.summary.name, &detail.summary.version);
        Ok(Some(format!("/templates?name={name}#{name}-{version}")))
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
