//! `/services/{service}`: owner, catalog links, on-call, dependencies both ways,
//! environments with release and health, releases with rollback, config (secrets
//! masked), runs, and DORA metrics with a chart.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_api::{ConfigVar, CreateService, Release, Service};
use slipway_service::pagination::PageParams;
use slipway_service::{AppState, catalog, config, environments, runs, services};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::{Form, Query, change};
use crate::session::Viewer;
use crate::view::{DoraView, EnvRow, RunRow, next_link, short_time};

/// Releases shown per environment on the service page (the environment page shows all).
const RELEASES_SHOWN: usize = 5;

#[derive(Debug)]
pub struct ReleaseView {
    pub version: u32,
    pub commit: String,
    pub image: String,
    pub config_version: u32,
    pub created_by: String,
    pub created: String,
    pub current: bool,
    pub run: Option<i64>,
}

impl From<&Release> for ReleaseView {
    fn from(r: &Release) -> Self {
        ReleaseView {
            version: r.version,
            commit: r.commit.chars().take(10).collect(),
            image: r.image.clone(),
            config_version: r.config_version,
            created_by: r.created_by.clone(),
            created: short_time(&r.created_at),
            current: r.current,
            run: r.run,
        }
    }
}

/// A config var as shown: a secret's value is never on a page.
#[derive(Debug)]
pub struct VarView {
    pub key: String,
    pub value: String,
    pub secret: bool,
}

impl From<&ConfigVar> for VarView {
    fn from(v: &ConfigVar) -> Self {
        VarView {
            key: v.key.clone(),
            value: if v.secret { "••••••••".to_owned() } else { v.value.clone().unwrap_or_default() },
            secret: v.secret,
        }
    }
}

#[derive(Debug)]
pub struct EnvDetail {
    pub env: EnvRow,
    pub releases: Vec<ReleaseView>,
    pub vars: Vec<VarView>,
    pub config_version: u32,
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    nav: Nav,
    service: Service,
    mismatch: Option<String>,
    dependents: Vec<String>,
    environments: Vec<EnvDetail>,
    runs: Vec<RunRow>,
    next_runs: Option<String>,
    dora: DoraView,
    dora_path: String,
    windows: &'static [u32],
    can_change: bool,
}

#[derive(Debug, serde::Deserialize)]
pub struct ServiceQuery {
    days: Option<u32>,
    cursor: Option<String>,
}

pub async fn service(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<ServiceQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let service = services::get_service(&state, actor, &name).await?;
    let can_change = services::may_change(&state, actor, &service).await?;
    let mut details = Vec::new();
    for env in environments::list_environments(&state, actor, &service.name).await? {
        let releases = environments::list_releases(&state, actor, &service.name, &env.name).await?;
        // Config is read by the owning team only (it may hold internal endpoints).
        let config =
            if can_change { Some(config::get_config(&state, actor, &service.name, &env.name).await?) } else { None };
        details.push(EnvDetail {
            env: EnvRow::new(&service.name, &env),
            releases: releases.iter().take(RELEASES_SHOWN).map(ReleaseView::from).collect(),
            vars: config.as_ref().map(|c| c.vars.iter().map(VarView::from).collect()).unwrap_or_default(),
            config_version: config.map_or(0, |c| c.version),
        });
    }
    let page = PageParams { limit: Some(20), cursor: query.cursor };
    let runs = runs::list_runs(&state, actor, &service.name, &page).await?;
    let days = query.days.filter(|d| slipway_core::dora::WINDOWS.contains(d)).unwrap_or(30);
    let dora = catalog::service_metrics(&state, actor, &service.name, Some(days)).await?;
    let dependents = catalog::dependents(&state, actor, &service.name).await?;
    let mismatch = service.declared_owner.clone().filter(|_| service.owner_mismatch);
    let path = format!("/services/{}", service.name);
    let days_text = days.to_string();
    render(ServicePage {
        nav: Nav::new(&viewer, "catalog"),
        mismatch,
        dependents,
        environments: details,
        runs: runs.items.iter().map(RunRow::from).collect(),
        next_runs: next_link(&path, &[("days", &days_text)], runs.next_cursor.as_deref()),
        dora: DoraView::new(&dora),
        dora_path: path.clone(),
        windows: slipway_core::dora::WINDOWS,
        can_change,
        service,
    })
}

/// Creates a service owned by one of the caller's teams (the dashboard's form).
pub async fn create(State(state): State<AppState>, viewer: Viewer, Form(fields): Form) -> Result<Response, PageError> {
    let work = async {
        let req = CreateService {
            name: fields.required("name")?,
            team: fields.required("team")?,
            description: fields.optional("description"),
            ..CreateService::default()
        };
        let service = services::create_service(&state, &viewer.actor, req).await?;
        Ok(Some(format!("/services/{}", service.name)))
    };
    change(&state, &viewer, &fields, "POST /services", "/services", "/".to_owned(), work).await
}
