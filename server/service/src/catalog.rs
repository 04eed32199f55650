//! The catalog as people read it: search with flags (ownerless, owner mismatch, stale),
//! who depends on whom, `catalog-info.yaml` applied on push, and DORA metrics.

use slipway_api::{DoraMetrics, Page, Service};
use slipway_core::catalog::{Lifecycle, Tier};
use slipway_core::catalog_info::{self, CatalogInfo};
use slipway_core::dora;
use slipway_git::archive::{self, ObjectEnv};
use slipway_store::services::{CatalogQuery, ServiceRow};

use crate::clock::{now_ms, rfc3339};
use crate::lookup::find_service;
use crate::lookup::find_team;
use crate::pagination::{PageParams, PageRequest};
use crate::{Actor, AppState, Result, ServiceError};

/// A service without a run for this long is flagged stale.
pub const STALE_AFTER_DAYS: i64 = 90;

/// What the catalog page asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct CatalogSearch {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub lifecycle: String,
    /// Only flagged services.
    #[serde(default)]
    pub flagged: bool,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A catalog row with the reasons it is flagged.
#[derive(Debug, Clone)]
pub struct CatalogItem {
    pub service: Service,
    /// Its team has no members: nobody answers for it.
    pub ownerless: bool,
    /// `catalog-info.yaml` names another owner than the owning team.
    pub owner_mismatch: bool,
    /// No run for [`STALE_AFTER_DAYS`] days.
    pub stale: bool,
    pub last_run_at: Option<String>,
}

impl CatalogItem {
    pub fn flagged(&self) -> bool {
        self.ownerless || self.owner_mismatch || self.stale
    }
}

/// Whether a declared owner differs from the owning team.
pub fn owner_mismatch(row: &ServiceRow) -> bool {
    row.declared_owner.as_deref().is_some_and(|owner| owner != row.team)
}

pub async fn search(state: &AppState, _actor: &Actor, search: &CatalogSearch) -> Result<Page<CatalogItem>> {
    let page = PageRequest::parse(&PageParams { limit: search.limit, cursor: search.cursor.clone() })?;
    if !search.lifecycle.is_empty() {
        search.lifecycle.parse::<Lifecycle>()?;
    }
    if search.q.chars().count() > 100 {
        return Err(ServiceError::invalid("q", "the search text is longer than 100 characters"));
    }
    let now = now_ms();
    let stale_before = now - STALE_AFTER_DAYS * dora::DAY_MS;
    let query = CatalogQuery {
        text: search.q.trim(),
        team: search.team.trim(),
        lifecycle: &search.lifecycle,
        flagged: search.flagged,
        stale_before,
        after: &page.after,
        limit: page.fetch_limit(),
    };
    let rows = state.store.search_catalog(&query).await?;
    let (rows, next_cursor) = page.finish(rows, |e| e.service.name.clone());
    let items = rows
        .into_iter()
        .map(|entry| {
            let mismatch = owner_mismatch(&entry.service);
            let stale = entry.last_run_at.unwrap_or(entry.service.created_at) < stale_before;
            CatalogItem {
                ownerless: entry.team_members == 0,
                owner_mismatch: mismatch,
                stale,
                last_run_at: entry.last_run_at.map(rfc3339),
                service: crate::services::to_api(state, entry.service),
            }
        })
        .collect();
    Ok(Page { items, next_cursor })
}

/// The services that list `service` in their `depends_on`.
pub async fn dependents(state: &AppState, _actor: &Actor, service: &str) -> Result<Vec<String>> {
    Ok(state.store.dependents_of(service).await?)
}

/// Reads `catalog-info.yaml` at a pushed commit and applies it to the service. Answers
/// the lines to show the pusher: a refusal of the file, or an owner mismatch. A bad file
/// never rejects the push; the catalog keeps what it had.
pub async fn sync_from_push(state: &AppState, service: &str, commit: &str, env: &ObjectEnv) -> Vec<String> {
    let service = match state.store.service_by_name(service).await {
        Ok(service) => service,
        Err(err) => {
            tracing::error!(%err, "loading a service to apply its catalog-info.yaml");
            return Vec::new();
        }
    };
    let repo = slipway_git::repos::path(&state.settings.repos_dir, &service.name);
    let max = crate::enqueue::commit::MAX_DESCRIPTOR_BYTES;
    let bytes = match archive::read_file(&state.settings.git, &repo, commit, catalog_info::FILE, max, env).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Vec::new(),
        Err(archive::ArchiveError::TooLarge { size, max, .. }) => {
            return vec![format!(
                "warning: {} is {size} bytes; at most {} KiB is read; the catalog is unchanged",
                catalog_info::FILE,
                max / 1024
            )];
        }
        Err(err) => {
            tracing::warn!(%err, service = %service.name, "reading catalog-info.yaml");
            return vec![format!("warning: {} could not be read; the catalog is unchanged", catalog_info::FILE)];
        }
    };
    let info = match catalog_info::parse(&String::from_utf8_lossy(&bytes)) {
        Ok(info) => info,
        Err(err) => return vec![format!("warning: {err}; the catalog is unchanged")],
    };
    let mut fields = service.catalog.clone();
    apply(&mut fields, &info);
    let declared = info.owner.as_deref();
    if let Err(err) = state.store.sync_catalog_info(service.id, &fields, declared, now_ms()).await {
        tracing::error!(%err, service = %service.name, "applying catalog-info.yaml");
        return vec!["warning: the catalog could not be updated from catalog-info.yaml".to_owned()];
    }
    let mut lines = vec![format!("-----> Catalog updated from {}", catalog_info::FILE)];
    if let Some(owner) = declared.filter(|owner| *owner != service.team) {
        lines.push(format!(
            "warning: {} names owner {owner:?}, but {} is owned by team {:?}; the owner was not changed. \
             Fix spec.owner, or ask an admin to move the service",
            catalog_info::FILE,
            service.name,
            service.team
        ));
    }
    lines
}

fn apply(fields: &mut slipway_store::services::CatalogFields, info: &CatalogInfo) {
    if let Some(description) = &info.description {
        fields.description = description.clone();
    }
    if let Some(links) = &info.links {
        fields.links = links.clone();
    }
    if let Some(lifecycle) = info.lifecycle {
        fields.lifecycle = lifecycle.as_str().to_owned();
    }
    if let Some(depends_on) = &info.depends_on {
        fields.depends_on = depends_on.clone();
    }
    if fields.tier.is_empty() {
        fields.tier = Tier::default().as_str().to_owned();
    }
}

fn check_days(days: Option<u32>) -> Result<u32> {
    let days = days.unwrap_or(30);
    if dora::WINDOWS.contains(&days) {
        Ok(days)
    } else {
        Err(ServiceError::invalid("days", format!("days must be one of 7, 30 or 90, not {days}")))
    }
}

fn to_api(scope: &str, name: &str, m: dora::Metrics) -> DoraMetrics {
    DoraMetrics {
        scope: scope.to_owned(),
        name: name.to_owned(),
        days: m.days,
        deployments: m.deployments,
        deployments_per_day: m.deployments_per_day,
        lead_time_ms: m.lead_time_ms,
        change_failure_rate: m.change_failure_rate,
        failures: m.failures,
        time_to_restore_ms: m.time_to_restore_ms,
        daily_deployments: m.daily_deployments,
    }
}

/// Whose deploys the metrics count.
enum Scope {
    Service(i64),
    Team(i64),
}

async fn metrics(state: &AppState, scope: Scope, days: u32) -> Result<dora::Metrics> {
    let now = now_ms();
    // Read one window further back so an outage that began before the window is seen.
    let since = now - 2 * i64::from(days) * dora::DAY_MS;
    let rows = match scope {
        Scope::Service(id) => state.store.deploy_events_of_service(id, since).await?,
        Scope::Team(id) => state.store.deploy_events_of_team(id, since).await?,
    };
    let events: Vec<dora::Event> = rows
        .into_iter()
        .map(|e| dora::Event {
            environment: e.environment_id,
            trigger: e.trigger,
            status: e.status,
            deployed: e.deployed,
            commit_at: e.commit_at,
            created_at: e.created_at,
            finished_at: e.finished_at,
        })
        .collect();
    Ok(dora::compute(&events, now, days))
}

/// DORA metrics of one service over `days` (7, 30 or 90; default 30).
pub async fn service_metrics(
    state: &AppState,
    _actor: &Actor,
    service: &str,
    days: Option<u32>,
) -> Result<DoraMetrics> {
    let days = check_days(days)?;
    let service = find_service(state, service).await?;
    Ok(to_api("service", &service.name, metrics(state, Scope::Service(service.id), days).await?))
}

/// DORA metrics of every service of a team.
pub async fn team_metrics(state: &AppState, _actor: &Actor, team: &str, days: Option<u32>) -> Result<DoraMetrics> {
    let days = check_days(days)?;
    let team = find_team(state, team).await?;
    Ok(to_api("team", &team.name, metrics(state, Scope::Team(team.id), days).await?))
}
