//! `/`: the signed-in user's teams, their services with each environment's health and
//! current release, and the newest runs.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use slipway_service::pagination::PageParams;
use slipway_service::{AppState, environments, runs, services, users};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::Query;
use crate::session::Viewer;
use crate::view::{EnvRow, RunRow, next_link};

/// Services shown per page.
const PAGE: u32 = 20;

struct ServiceCard {
    name: String,
    team: String,
    description: String,
    environments: Vec<EnvRow>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    nav: Nav,
    teams: Vec<slipway_api::Membership>,
    services: Vec<ServiceCard>,
    runs: Vec<RunRow>,
    next: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
pub struct DashboardQuery {
    cursor: Option<String>,
}

pub async fn dashboard(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<DashboardQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let me = users::current_user(&state, actor).await?;
    let page =
        services::list_my_services(&state, actor, &PageParams { limit: Some(PAGE), cursor: query.cursor }).await?;
    let mut cards = Vec::with_capacity(page.items.len());
    for service in page.items {
        let envs = environments::list_environments(&state, actor, &service.name).await?;
        cards.push(ServiceCard {
            environments: envs.iter().map(|e| EnvRow::new(&service.name, e)).collect(),
            name: service.name,
            team: service.team,
            description: service.description,
        });
    }
    let recent = runs::recent_runs_of_mine(&state, actor, 15).await?;
    render(Dashboard {
        nav: Nav::new(&viewer, "dashboard"),
        teams: me.teams,
        services: cards,
        runs: recent.iter().map(RunRow::from).collect(),
        next: next_link("/", &[], page.next_cursor.as_deref()),
    })
}
