//! The catalog as people read it: search with flags (ownerless, owner mismatch, stale),
//! who depends on whom, `catalog-info.yaml` applied on push, and DORA metrics.

use slipway_api::{DoraMetrics, Page, Service};
use slipway_core::catalog::{Descriptor, Tier};
use slipway_core::catalog_info::{self, Entity, EntityRef};
use slipway_core::dora;
use slipway_git::archive::{self, ObjectEnv};
use slipway_store::catalog::{DeclaredOwner, DescriptorSync, NewEntity};
use slipway_store::services::{CatalogFields, CatalogQuery, ServiceRow};

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

/// Whether a declared owner is neither the owning team, one of its aliases, nor (for
/// `user:X`) one of its members; worked out by the store.
pub fn owner_mismatch(row: &ServiceRow) -> bool {
    row.owner_mismatch
}

pub async fn search(state: &AppState, _actor: &Actor, search: &CatalogSearch) -> Result<Page<CatalogItem>> {
    let page = PageRequest::parse(&PageParams { limit: search.limit, cursor: search.cursor.clone() })?;
    if !search.lifecycle.is_empty() {
        slipway_core::catalog::validate_lifecycle(&search.lifecycle)?;
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

/// Reads `catalog-info.yaml` at a pushed commit (and the files its `Location`
/// documents point at, inside the same commit) and applies it to the service. Answers
/// the lines to show the pusher: what was applied, fields ignored, an owner mismatch;
/// printed once per change of the files, not on every push. A bad file never rejects
/// the push; the catalog keeps what it had.
pub async fn sync_from_push(state: &AppState, service: &str, commit: &str, env: &ObjectEnv) -> Vec<String> {
    let service = match state.store.service_by_name(service).await {
        Ok(service) => service,
        Err(err) => {
            tracing::error!(%err, "loading a service to apply its catalog-info.yaml");
            return Vec::new();
        }
    };
    let repo = slipway_git::repos::path(&state.settings.repos_dir, &service.name);
    let mut lines = Vec::new();
    // Every file read, parsed once; `failed` when one could not be read or parsed, so
    // the catalog keeps what it had rather than losing what that file declared.
    let mut files: Vec<(String, String)> = Vec::new();
    let mut entities = Vec::new();
    let mut failed = false;
    // Paths tried, read or not, so a target named twice (or missing) costs one read; and
    // one budget for the whole push, however many documents name targets.
    let mut tried: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut queue = std::collections::VecDeque::from([catalog_info::FILE.to_owned()]);
    while let Some(path) = queue.pop_front() {
        if !tried.insert(path.clone()) {
            continue;
        }
        let max = crate::enqueue::commit::MAX_DESCRIPTOR_BYTES;
        let text = match archive::read_file(&state.settings.git, &repo, commit, &path, max, env).await {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) if tried.len() == 1 => return Vec::new(),
            Ok(None) => {
                lines.push(format!("warning: Location target {path} is not in this commit"));
                failed = true;
                continue;
            }
            Err(archive::ArchiveError::TooLarge { size, max, .. }) => {
                lines.push(format!("warning: {path} is {size} bytes; at most {} KiB is read", max / 1024));
                failed = true;
                continue;
            }
            Err(err) => {
                tracing::warn!(%err, service = %service.name, path, "reading a descriptor");
                lines.push(format!("warning: {path} could not be read"));
                failed = true;
                continue;
            }
        };
        match catalog_info::parse(&path, &text) {
            Ok(parsed) => {
                for target in &parsed.targets {
                    match catalog_info::resolve_target(&path, &target.target) {
                        Ok(next) if tried.len() + queue.len() <= catalog_info::MAX_LOCATION_FILES => {
                            queue.push_back(next)
                        }
                        Ok(_) => {
                            lines.push(format!(
                                "warning: {path} document {}: more than {} files through Location targets; the rest are not read",
                                target.document,
                                catalog_info::MAX_LOCATION_FILES
                            ));
                            break;
                        }
                        Err(err) => lines.push(format!("warning: {path} document {}: {err}", target.document)),
                    }
                }
                lines.extend(parsed.warnings.iter().map(|w| format!("warning: {w}")));
                entities.extend(parsed.entities);
            }
            Err(err) => {
                lines.push(format!("warning: {err}"));
                failed = true;
            }
        }
        files.push((path, text));
    }
    let digest = descriptor_digest(&files);
    match state.store.descriptor_digest(service.id).await {
        Ok(Some(last)) if last == digest => return Vec::new(), // applied and reported before
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, service = %service.name, "reading the last descriptor digest"),
    }
    if failed {
        // Reported once; the next change of the files is tried again.
        if let Err(err) = state.store.set_descriptor_digest(service.id, &digest).await {
            tracing::warn!(%err, service = %service.name, "recording a descriptor digest");
        }
        lines.push("warning: the catalog is unchanged until the descriptor files can all be read".to_owned());
        return lines;
    }
    let mut fields = service.catalog.clone();
    let mut descriptor = service.descriptor.clone();
    let mut declared = service_declared_owner(&service);
    let components: Vec<&Entity> = entities.iter().filter(|e| e.is_kind("Component")).collect();
    let chosen = components
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(&service.name))
        .or((components.len() == 1).then_some(0));
    match chosen {
        Some(at) => {
            let component = components[at];
            let (d, owner) = apply_component(&mut fields, component, &mut lines);
            descriptor = d;
            declared = owner;
        }
        None if components.is_empty() => lines.push(format!(
            "warning: {} declares no Component; the service's catalog fields are unchanged",
            catalog_info::FILE
        )),
        None => lines.push(format!(
            "warning: {} declares {} Components and none is named {:?}; the service's catalog fields are unchanged",
            catalog_info::FILE,
            components.len(),
            service.name
        )),
    }
    let chosen_ref = chosen.map(|at| components[at].entity_ref().key());
    let owners = match TeamOwners::load(state, &service).await {
        Ok(owners) => owners,
        Err(err) => {
            tracing::error!(%err, service = %service.name, "loading the team's aliases and members");
            return vec!["warning: the catalog could not be updated from catalog-info.yaml".to_owned()];
        }
    };
    let mut others: Vec<NewEntity> = Vec::new();
    for e in entities.iter().filter(|e| Some(e.entity_ref().key()) != chosen_ref && !e.is_kind("Location")) {
        let label = format!("{} {:?} (document {})", e.kind, e.name, e.document);
        if e.is_kind("Component") {
            lines.push(format!("warning: {label}: a repository describes its own service only; not stored"));
        } else if e.is_kind("Group") || e.is_kind("User") {
            lines.push(format!(
                "warning: {label}: groups and users come from the platform team (import), not from a push; not stored"
            ));
        } else if !e.owner.as_ref().is_some_and(|o| owners.owns(o)) {
            lines.push(format!(
                "warning: {label}: spec.owner must be team {:?}, one of its aliases or members, for a push to declare it; not stored",
                service.team
            ));
        } else {
            others.push(crate::backstage::new_entity(e, Some(service.team_id)));
        }
    }
    let sync = DescriptorSync {
        fields: &fields,
        declared: declared.as_ref(),
        descriptor: &descriptor,
        digest: &digest,
        entities: &others,
    };
    match state.store.sync_descriptor(service.id, &sync, now_ms()).await {
        Ok(refused) => {
            for key in refused {
                lines.push(format!(
                    "warning: {key} is already declared elsewhere (another service or an import); not changed"
                ));
            }
        }
        Err(err) => {
            tracing::error!(%err, service = %service.name, "applying catalog-info.yaml");
            return vec!["warning: the catalog could not be updated from catalog-info.yaml".to_owned()];
        }
    }
    let mut out = vec![format!(
        "-----> Catalog updated from {} ({} entities)",
        files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(", "),
        entities.iter().filter(|e| !e.is_kind("Location")).count()
    )];
    out.append(&mut lines);
    if let Ok(row) = state.store.service_by_name(&service.name).await
        && row.owner_mismatch
    {
        out.push(format!(
            "warning: {} names owner {:?}, which is not team {:?}, one of its aliases, or one of its members; \
             the owner was not changed. Fix spec.owner, or ask an admin to add the alias \
             (slipway teams set {} --alias NAME) or to move the service",
            catalog_info::FILE,
            row.declared_owner.unwrap_or_default(),
            service.team,
            service.team
        ));
    }
    out
}

/// The names that are a service's team as an owner: its name and aliases (groups), its
/// members (users); all lower case.
struct TeamOwners {
    groups: Vec<String>,
    users: Vec<String>,
}

impl TeamOwners {
    async fn load(state: &AppState, service: &ServiceRow) -> Result<TeamOwners> {
        let mut groups = state.store.team_aliases(service.team_id).await?;
        groups.push(service.team.to_ascii_lowercase());
        let users = state
            .store
            .list_members(service.team_id)
            .await?
            .into_iter()
            .map(|m| m.username.to_ascii_lowercase())
            .collect();
        Ok(TeamOwners { groups, users })
    }

    fn owns(&self, owner: &EntityRef) -> bool {
        let name = owner.name.to_ascii_lowercase();
        match owner.kind.as_str() {
            "group" => self.groups.contains(&name),
            "user" => self.users.contains(&name),
            _ => false,
        }
    }
}

fn service_declared_owner(row: &ServiceRow) -> Option<DeclaredOwner> {
    let display = row.declared_owner.clone()?;
    let owner = EntityRef::parse(&display, "group").ok()?;
    Some(DeclaredOwner { display, kind: owner.kind, name: owner.name.to_ascii_lowercase() })
}

/// A SHA-256 over the files read, so a descriptor is applied and reported once per change.
fn descriptor_digest(files: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for (path, text) in files {
        hash.update((path.len() as u64).to_le_bytes());
        hash.update(path.as_bytes());
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// What a Component sets of a service's catalog. Fields the descriptor is silent on keep
/// their values; dependencies on resources never clear the service's component
/// dependencies. Answers the descriptor fields and the declared owner.
pub(crate) fn apply_component(
    fields: &mut CatalogFields,
    e: &Entity,
    lines: &mut Vec<String>,
) -> (Descriptor, Option<DeclaredOwner>) {
    if let Some(description) = &e.description {
        fields.description = description.clone();
    }
    if !e.links.is_empty() {
        fields.links = e.links.clone();
    }
    if let Some(lifecycle) = &e.lifecycle {
        fields.lifecycle = lifecycle.clone();
    }
    let mut components = Vec::new();
    for dep in e.component_dependencies() {
        let name = dep.name.to_ascii_lowercase();
        match slipway_core::names::validate_name(&name) {
            Ok(()) if dep.namespace == "default" => components.push(name),
            _ => lines.push(format!(
                "warning: document {} ({} {:?}): spec.dependsOn: {dep} is not a Slipway service name; kept out of depends_on",
                e.document, e.kind, e.name
            )),
        }
    }
    if !components.is_empty() {
        components.truncate(slipway_core::catalog::MAX_DEPENDENCIES);
        fields.depends_on = components;
    }
    if fields.tier.is_empty() {
        fields.tier = Tier::default().as_str().to_owned();
    }
    let descriptor = Descriptor {
        title: e.title.clone(),
        tags: e.tags.clone(),
        annotations: e.annotations.clone(),
        spec_type: e.spec_type.clone(),
        system: e.system.as_ref().map(ToString::to_string),
        provides_apis: e.provides_apis.iter().map(ToString::to_string).collect(),
        consumes_apis: e.consumes_apis.iter().map(ToString::to_string).collect(),
        resources: e.other_dependencies().map(ToString::to_string).collect(),
    };
    let declared = e.owner.as_ref().map(|o| DeclaredOwner {
        display: o.to_string(),
        kind: o.kind.clone(),
        name: o.name.to_ascii_lowercase(),
    });
    (descriptor, declared)
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

/// Entities of one kind the portal's catalog lists below the services.
#[derive(Debug, Clone)]
pub struct EntityGroup {
    /// Lower case: `system`, `api`, `resource`.
    pub kind: &'static str,
    pub heading: &'static str,
    pub entities: Vec<EntitySummary>,
}

/// What the portal shows of a stored entity.
#[derive(Debug, Clone, Default)]
pub struct EntitySummary {
    pub reference: String,
    pub name: String,
    pub title: Option<String>,
    pub owner: String,
    pub spec_type: String,
    pub lifecycle: String,
    pub description: String,
}

/// The most entities of each kind the catalog page lists.
pub const ENTITIES_SHOWN: i64 = 100;

/// Systems, APIs and resources for the catalog page.
pub async fn entity_groups(state: &AppState, _actor: &Actor) -> Result<Vec<EntityGroup>> {
    let mut groups = Vec::new();
    for (kind, heading) in [("system", "Systems"), ("api", "APIs"), ("resource", "Resources")] {
        let rows = state.store.stored_entities_of_kind(kind, ENTITIES_SHOWN).await?;
        let entities = rows
            .iter()
            .filter_map(|text| serde_json::from_str::<serde_json::Value>(text).ok())
            .map(|e| {
                let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
                let m = &e["metadata"];
                let s = &e["spec"];
                EntitySummary {
                    reference: format!("{kind}:{}/{}", text(&m["namespace"]), text(&m["name"])),
                    name: text(&m["name"]),
                    title: m["title"].as_str().map(str::to_owned),
                    owner: text(&s["owner"]),
                    spec_type: text(&s["type"]),
                    lifecycle: text(&s["lifecycle"]),
                    description: text(&m["description"]),
                }
            })
            .collect();
        groups.push(EntityGroup { kind, heading, entities });
    }
    Ok(groups)
}
