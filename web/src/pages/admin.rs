//! `/admin`: users, teams and memberships, clusters, quotas and the audit log with
//! filters, for platform admins; the membership and quota forms of team pages.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use slipway_api::{AddCluster, AddMember, AuditEntry, Cluster, CreateTeam, CreateUser, SetQuota, Team, User};
use slipway_core::policy::Action;
use slipway_service::access::require_platform;
use slipway_service::audit::AuditQuery;
use slipway_service::pagination::PageParams;
use slipway_service::{AppState, ServiceError, audit, clusters, quotas, teams, users};

use super::{Nav, render};
use crate::error::PageError;
use crate::form::{Fields, Form, Query, change};
use crate::session::Viewer;
use crate::view::{next_link, short_time};

struct AuditRow {
    at: String,
    entry: AuditEntry,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    nav: Nav,
    users: Vec<User>,
    teams: Vec<Team>,
    clusters: Vec<Cluster>,
    audit: Vec<AuditRow>,
    audit_actor: String,
    audit_outcome: String,
    next_audit: Option<String>,
    next_users: Option<String>,
    next_teams: Option<String>,
}

/// The admin page's query: a cursor per list, and the audit log's filters.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminQuery {
    users: Option<String>,
    teams: Option<String>,
    cursor: Option<String>,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    outcome: String,
}

/// Rows per list on the admin page.
const ADMIN_PAGE: u32 = 50;

pub async fn admin(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AdminQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    require_platform(actor, Action::AdministerPlatform)?;
    let page = |cursor: &Option<String>| PageParams { limit: Some(ADMIN_PAGE), cursor: cursor.clone() };
    let users = users::list_users(&state, actor, &page(&query.users)).await?;
    let teams = teams::list_teams(&state, actor, &page(&query.teams)).await?;
    let clusters = clusters::list_clusters(&state, actor).await?;
    let audit_query = AuditQuery {
        limit: Some(ADMIN_PAGE),
        cursor: query.cursor.clone(),
        actor: query.actor.clone(),
        outcome: query.outcome.clone(),
    };
    let audit = audit::list_audit(&state, actor, &audit_query).await?;
    let filters = [("actor", query.actor.as_str()), ("outcome", query.outcome.as_str())];
    let next_audit = next_link("/admin", &filters, audit.next_cursor.as_deref()).map(|link| format!("{link}#audit"));
    let next_users =
        next_link("/admin", &[], users.next_cursor.as_deref()).map(|l| l.replace("cursor=", "users=") + "#users");
    let next_teams =
        next_link("/admin", &[], teams.next_cursor.as_deref()).map(|l| l.replace("cursor=", "teams=") + "#teams");
    render(AdminPage {
        nav: Nav::new(&viewer, "admin"),
        users: users.items,
        teams: teams.items,
        clusters,
        audit: audit.items.into_iter().map(|entry| AuditRow { at: short_time(&entry.at), entry }).collect(),
        audit_actor: query.actor,
        audit_outcome: query.outcome,
        next_audit,
        next_users,
        next_teams,
    })
}

pub async fn create_user(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let work = async {
        let req = CreateUser {
            username: fields.required("username")?,
            password: fields.get("password").to_owned(),
            admin: fields.get("admin") == "true",
        };
        users::create_user(&state, &viewer.actor, req).await.map(|_| None)
    };
    change(&state, &viewer, &fields, "POST /admin/users", "/admin/users", "/admin#users".to_owned(), work).await
}

pub async fn create_team(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let work = async {
        let team = teams::create_team(&state, &viewer.actor, CreateTeam { name: fields.required("name")? }).await?;
        Ok(Some(format!("/teams/{}", team.name)))
    };
    change(&state, &viewer, &fields, "POST /admin/teams", "/admin/teams", "/admin#teams".to_owned(), work).await
}

pub async fn add_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = format!("/teams/{team}/members");
    let work = async {
        let req = AddMember { username: fields.required("username")?, role: fields.optional("role") };
        teams::add_member(&state, &viewer.actor, &team, req).await.map(|_| None)
    };
    change(&state, &viewer, &fields, "POST /teams/{team}/members", &target, format!("/teams/{team}"), work).await
}

pub async fn remove_member(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((team, user)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = format!("/teams/{team}/members/{user}/remove");
    let work = async { teams::remove_member(&state, &viewer.actor, &team, &user).await.map(|_| None) };
    change(
        &state,
        &viewer,
        &fields,
        "POST /teams/{team}/members/{user}/remove",
        &target,
        format!("/teams/{team}"),
        work,
    )
    .await
}

/// A quota field: blank is unlimited.
fn limit<T: std::str::FromStr>(fields: &Fields, name: &str) -> Result<Option<T>, ServiceError> {
    match fields.optional(name) {
        None => Ok(None),
        Some(text) => text.parse::<T>().map(Some).map_err(|_| {
            ServiceError::invalid(name, format!("{name} {text:?} is not a whole number (blank: unlimited)"))
        }),
    }
}

pub async fn set_quota(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(team): Path<String>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = format!("/teams/{team}/quota");
    let work = async {
        let req = SetQuota {
            max_environments: limit(&fields, "max_environments")?,
            max_previews: limit(&fields, "max_previews")?,
            max_replicas: limit(&fields, "max_replicas")?,
            max_memory_mb: limit(&fields, "max_memory_mb")?,
        };
        quotas::set_quota(&state, &viewer.actor, &team, req).await.map(|_| None)
    };
    change(&state, &viewer, &fields, "POST /teams/{team}/quota", &target, format!("/teams/{team}"), work).await
}

pub async fn add_cluster(
    State(state): State<AppState>,
    viewer: Viewer,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let work = async {
        let req = AddCluster {
            name: fields.required("name")?,
            kubeconfig: fields.get("kubeconfig").to_owned(),
            context: fields.optional("context"),
            base_domain: fields.optional("base_domain"),
            ingress_class: fields.optional("ingress_class"),
        };
        clusters::add_cluster(&state, &viewer.actor, req).await.map(|_| None)
    };
    change(&state, &viewer, &fields, "POST /admin/clusters", "/admin/clusters", "/admin#clusters".to_owned(), work)
        .await
}

pub async fn remove_cluster(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = format!("/admin/clusters/{name}/remove");
    let work = async { clusters::remove_cluster(&state, &viewer.actor, &name).await.map(|_| None) };
    change(&state, &viewer, &fields, "POST /admin/clusters/{name}/remove", &target, "/admin#clusters".to_owned(), work)
        .await
}
