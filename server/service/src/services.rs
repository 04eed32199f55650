//! Services and their catalog metadata.

use slipway_api::{CreateService, Link, Page, Service, UpdateService};
use slipway_core::catalog::{self, Lifecycle, Tier};
use slipway_core::policy::Action;
use slipway_core::{ServiceName, TeamName};
use slipway_git::repos;
use slipway_store::StoreError;
use slipway_store::environments::NewEnvironment;
use slipway_store::services::{CatalogFields, ServiceRow};

use crate::access::require_in_team;
use crate::clock::{now_ms, rfc3339};
use crate::lookup::find_service;
use crate::lookup::find_team;
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

/// Every new service gets this environment, tracking this branch, so "create, push" works.
pub const DEFAULT_ENVIRONMENT: &str = "production";
pub const DEFAULT_BRANCH: &str = "main";

/// Query parameters of the service list.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListServices {
    pub team: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub(crate) fn to_api(state: &AppState, row: ServiceRow) -> Service {
    let git_url = (!row.catalog_only).then(|| format!("{}/git/{}.git", state.settings.public_url, row.name));
    let d = row.descriptor;
    Service {
        name: row.name,
        team: row.team,
        description: row.catalog.description,
        lifecycle: row.catalog.lifecycle,
        tier: row.catalog.tier,
        on_call: row.catalog.on_call,
        links: row.catalog.links.into_iter().map(|l| Link { name: l.name, url: l.url }).collect(),
        depends_on: row.catalog.depends_on,
        preview_template: row.catalog.preview_template,
        declared_owner: row.declared_owner,
        owner_mismatch: row.owner_mismatch,
        catalog_only: row.catalog_only,
        repo_url: row.repo_url,
        git_url,
        title: d.title,
        spec_type: d.spec_type,
        system: d.system,
        tags: d.tags,
        provides_apis: d.provides_apis,
        consumes_apis: d.consumes_apis,
        resources: d.resources,
        annotations: d.annotations,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

/// Applies a partial update to catalog fields, validating each field present.
fn apply(fields: &mut CatalogFields, update: UpdateService) -> Result<()> {
    if let Some(description) = update.description {
        catalog::validate_description(&description)?;
        fields.description = description;
    }
    if let Some(lifecycle) = update.lifecycle {
        catalog::validate_lifecycle(&lifecycle)?;
        fields.lifecycle = lifecycle.trim().to_owned();
    }
    if let Some(tier) = update.tier {
        fields.tier = tier.parse::<Tier>()?.as_str().to_owned();
    }
    if let Some(on_call) = update.on_call {
        catalog::validate_on_call(&on_call)?;
        fields.on_call = on_call;
    }
    if let Some(links) = update.links {
        let links: Vec<catalog::Link> = links.into_iter().map(|l| catalog::Link { name: l.name, url: l.url }).collect();
        catalog::validate_links(&links)?;
        fields.links = links;
    }
    if let Some(deps) = update.depends_on {
        catalog::validate_dependencies(&deps)?;
        fields.depends_on = deps;
    }
    if let Some(template) = update.preview_template {
        fields.preview_template = if template.is_empty() {
            None
        } else {
            slipway_core::template::parse_reference(&template)
                .map_err(|e| ServiceError::invalid("preview_template", e))?;
            Some(template)
        };
    }
    Ok(())
}

pub async fn create_service(state: &AppState, actor: &Actor, req: CreateService) -> Result<Service> {
    let name = ServiceName::parse(&req.name).map_err(|e| ServiceError::invalid_name("name", &req.name, e))?;
    let team_name = TeamName::parse(&req.team).map_err(|e| ServiceError::invalid_name("team", &req.team, e))?;
    let team = find_team(state, team_name.as_str()).await?;
    require_in_team(state, actor, team.id, Action::CreateService).await?;
    let mut fields = CatalogFields {
        lifecycle: Lifecycle::default().as_str().to_owned(),
        tier: Tier::default().as_str().to_owned(),
        ..CatalogFields::default()
    };
    apply(
        &mut fields,
        UpdateService {
            description: req.description,
            lifecycle: req.lifecycle,
            tier: req.tier,
            on_call: req.on_call,
            links: req.links,
            depends_on: req.depends_on,
            preview_template: None,
        },
    )?;
    crate::clusters::check_runtime(state, &state.settings.default_runtime).await?;
    // "Create, push" ends live: the first environment comes from the default template.
    let (template, values, spec) = crate::environments::first_environment(state).await?;
    let shape = crate::environments::OwnedShape::new(&template, &values, &spec)?;
    let first = NewEnvironment {
        name: DEFAULT_ENVIRONMENT,
        branch: DEFAULT_BRANCH,
        shape: shape.borrow(),
        preview: false,
        expires_at: None,
        idle_ttl_ms: None,
        runtime: &state.settings.default_runtime,
        created_by: &actor.username,
    };
    let _repository = state.service_names.lock(name.as_str()).await;
    let row = match state.store.create_service(name.as_str(), team.id, &fields, Some(&first), now_ms()).await {
        Ok(row) => row,
        Err(StoreError::Conflict) => {
            let otherwise = format!("service {name:?} already exists");
            return Err(
                crate::error::environment_clash(&state.store, name.as_str(), DEFAULT_ENVIRONMENT, otherwise).await
            );
        }
        Err(err) => return Err(err.into()),
    };
    let settings = &state.settings;
    if let Err(err) = repos::init(&settings.git, &settings.repos_dir, name.as_str()).await {
        // Undo the row so that a retry starts clean rather than half-provisioned.
        if let Err(undo) = state.store.delete_service(row.id).await {
            tracing::error!(%undo, service = %name, "removing a service whose repository could not be created");
        }
        return Err(ServiceError::internal(format!("creating the git repository of {name}: {err}")));
    }
    Ok(to_api(state, row))
}

pub async fn list_services(state: &AppState, _actor: &Actor, query: &ListServices) -> Result<Page<Service>> {
    let page = PageRequest::parse(&PageParams { limit: query.limit, cursor: query.cursor.clone() })?;
    let team = match query.team.as_deref() {
        Some(team) => find_team(state, team).await?.name,
        None => String::new(),
    };
    let rows = state.store.list_services(&team, &page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |s| s.name.clone());
    Ok(Page { items: rows.into_iter().map(|r| to_api(state, r)).collect(), next_cursor })
}

/// The services of the caller's teams, by name.
pub async fn list_my_services(state: &AppState, actor: &Actor, params: &PageParams) -> Result<Page<Service>> {
    let page = PageRequest::parse(params)?;
    let rows = state.store.services_of_member(actor.user_id, &page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |s| s.name.clone());
    Ok(Page { items: rows.into_iter().map(|r| to_api(state, r)).collect(), next_cursor })
}

/// Whether the caller may change a service: a member of its team, or an admin.
pub async fn may_change(state: &AppState, actor: &Actor, service: &Service) -> Result<bool> {
    let team = find_team(state, &service.team).await?;
    match require_in_team(state, actor, team.id, Action::ChangeService).await {
        Ok(()) => Ok(true),
        Err(ServiceError::Forbidden(_)) => Ok(false),
        Err(err) => Err(err),
    }
}

pub async fn get_service(state: &AppState, _actor: &Actor, name: &str) -> Result<Service> {
    find_service(state, name).await.map(|row| to_api(state, row))
}

pub async fn update_service(state: &AppState, actor: &Actor, name: &str, update: UpdateService) -> Result<Service> {
    let row = find_service(state, name).await?;
    require_in_team(state, actor, row.team_id, Action::ChangeService).await?;
    let mut fields = row.catalog.clone();
    apply(&mut fields, update)?;
    if let Some(template) = &fields.preview_template
        && fields.preview_template != row.catalog.preview_template
    {
        // The template must exist now, not fail at the first branch push.
        crate::templates::find_template(state, template, true).await.map_err(|e| match e {
            ServiceError::NotFound { .. } => ServiceError::Absent(format!("preview_template: {e}")),
            ServiceError::Conflict(_) => ServiceError::Conflict(format!("preview_template: {e}")),
            other => other,
        })?;
    }
    match state.store.update_service(row.id, &fields, now_ms()).await {
        Ok(()) => get_service(state, actor, name).await,
        // Deleted (and perhaps created again) since it was read: this request's service is gone.
        Err(StoreError::NotFound) => Err(ServiceError::not_found("service", name)),
        Err(err) => Err(err.into()),
    }
}

pub async fn delete_service(state: &AppState, actor: &Actor, name: &str) -> Result<()> {
    let row = find_service(state, name).await?;
    require_in_team(state, actor, row.team_id, Action::ChangeService).await?;
    // The replicas go first: nothing would ever stop them once the records are gone.
    for env in state.store.list_environments(row.id).await? {
        state
            .engine
            .destroy_environment(env.id, &env.service, &env.name)
            .await
            .map_err(|e| ServiceError::internal_from(format!("stopping the replicas of {}", env.name), e))?;
    }
    let _repository = state.service_names.lock(name).await;
    match state.store.delete_service(row.id).await {
        Ok(()) => {
            if let Err(err) = repos::remove(&state.settings.repos_dir, name).await {
                tracing::error!(%err, service = name, "removing the git repository of a deleted service");
            }
            Ok(())
        }
        Err(StoreError::NotFound) => Err(ServiceError::not_found("service", name)),
        Err(err) => Err(err.into()),
    }
}
