//! `/catalog` (every service with owner, lifecycle and tier; search, filters, flags) and
//! `/teams/{team}` (members, services, on-call, DORA metrics).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_api::{Service, Team};
use slipway_core::catalog::Lifecycle;
use slipway_service::catalog::{CatalogItem, CatalogSearch};
use slipway_service::pagination::PageParams;
use slipway_service::services::ListServices;
use slipway_service::{AppState, ServiceError, catalog, quotas, services, teams};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::Query;
use crate::session::Viewer;
use crate::view::{DoraView, next_link};

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    nav: Nav,
    items: Vec<CatalogItem>,
    teams: Vec<String>,
    lifecycles: &'static [&'static str],
    q: String,
    team: String,
    lifecycle: String,
    flagged: bool,
    next: Option<String>,
    groups: Vec<catalog::EntityGroup>,
}

pub async fn catalog(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(mut search): Query<CatalogSearch>,
) -> Result<Response, PageError> {
    search.limit = Some(search.limit.unwrap_or(50));
    let page = catalog::search(&state, &viewer.actor, &search).await?;
    let teams = teams::list_teams(&state, &viewer.actor, &PageParams { limit: Some(200), cursor: None }).await?;
    let flagged = if search.flagged { "true" } else { "" };
    let groups = catalog::entity_groups(&state, &viewer.actor).await?;
    let next = next_link(
        "/catalog",
        &[("q", &search.q), ("team", &search.team), ("lifecycle", &search.lifecycle), ("flagged", flagged)],
        page.next_cursor.as_deref(),
    );
    render(CatalogPage {
        nav: Nav::new(&viewer, "catalog"),
        items: page.items,
        teams: teams.items.into_iter().map(|t| t.name).collect(),
        lifecycles: Lifecycle::ALL,
        q: search.q,
        team: search.team,
        lifecycle: search.lifecycle,
        flagged: search.flagged,
        next,
        groups,
    })
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    nav: Nav,
    team: Team,
    services: Vec<Service>,
    next: Option<String>,
    dora: DoraView,
    dora_path: String,
    windows: &'static [u32],
    is_admin: bool,
    csrf: String,
    quota: Option<slipway_api::TeamQuota>,
}

#[derive(Debug, serde::Deserialize)]
pub struct TeamQuery {
    days: Option<u32>,
    cursor: Option<String>,
}

pub async fn team(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<TeamQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let team = teams::get_team(&state, actor, &name).await?;
    let list = ListServices { team: Some(team.name.clone()), limit: Some(50), cursor: query.cursor };
    let page = services::list_services(&state, actor, &list).await?;
    let days = query.days.filter(|d| slipway_core::dora::WINDOWS.contains(d)).unwrap_or(30);
    let dora = catalog::team_metrics(&state, actor, &team.name, Some(days)).await?;
    // Quotas are shown to the team and to admins; others see the page without them.
    let quota = match quotas::get_quota(&state, actor, &team.name).await {
        Ok(quota) => Some(quota),
        Err(ServiceError::Forbidden(_)) => None,
        Err(err) => return Err(err.into()),
    };
    let days_text = days.to_string();
    render(TeamPage {
        nav: Nav::new(&viewer, "catalog"),
        next: next_link(&format!("/teams/{}", team.name), &[("days", &days_text)], page.next_cursor.as_deref()),
        services: page.items,
        dora: DoraView::new(&dora),
        dora_path: format!("/teams/{}", team.name),
        windows: slipway_core::dora::WINDOWS,
        is_admin: viewer.is_admin(),
        csrf: viewer.csrf.clone(),
        quota,
        team,
    })
}
