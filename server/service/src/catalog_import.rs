//! Importing Backstage descriptors (`slipway catalog import`): a batch of files becomes
//! a plan (which catalog-only services and entities are created, updated or skipped,
//! and why), answered as a dry run or written in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use slipway_api::{CatalogImport, ImportReport, ImportedEntity, ImportedFile};
use slipway_core::catalog::{Lifecycle, Tier};
use slipway_core::catalog_info::{self, Entity};
use slipway_core::policy::Action;
use slipway_store::catalog::{ImportBatch, ImportedService, NewEntity, Written};
use slipway_store::services::CatalogFields;

use crate::access::require_in_team;
use crate::clock::now_ms;
use crate::{Actor, AppState, Result, ServiceError};

/// The most files one request carries; the CLI sends larger imports in batches.
pub const MAX_FILES: usize = 1000;
const MAX_PATH_LEN: usize = 1024;

/// Where an entity of the plan goes, by index into the batch.
enum Slot {
    Service(usize),
    Entity(usize),
}

struct Planned {
    file: usize,
    entity: String,
    action: &'static str,
    detail: Option<String>,
    slot: Option<Slot>,
}

/// Plans an import and, with `apply`, writes it. Admins import for any team; others
/// only what belongs to teams they maintain (the rest is skipped, saying why).
pub async fn import(state: &AppState, actor: &Actor, req: CatalogImport) -> Result<ImportReport> {
    if req.files.is_empty() {
        return Err(ServiceError::invalid("files", "no descriptor files sent"));
    }
    if req.files.len() > MAX_FILES {
        return Err(ServiceError::invalid(
            "files",
            format!("{} files in one request; at most {MAX_FILES} (send more requests)", req.files.len()),
        ));
    }
    for file in &req.files {
        let chars = file.path.chars().count();
        if chars == 0 || chars > MAX_PATH_LEN || file.path.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "files.path",
                format!("a path is 1-{MAX_PATH_LEN} characters without control characters"),
            ));
        }
    }
    let directory = state.store.owner_directory().await?;
    // A team name wins over another team's alias of the same spelling.
    let mut owners: HashMap<String, (i64, String)> = HashMap::new();
    for (known, id, name) in directory.iter().filter(|(known, _, name)| *known == name.to_ascii_lowercase()) {
        owners.insert(known.clone(), (*id, name.clone()));
    }
    for (known, id, name) in &directory {
        owners.entry(known.clone()).or_insert_with(|| (*id, name.clone()));
    }
    let default_team = match &req.team {
        None => None,
        Some(team) => Some(crate::lookup::find_team(state, team).await.map(|t| (t.id, t.name))?),
    };
    let sent: HashSet<&str> = req.files.iter().map(|f| f.path.as_str()).collect();

    let mut reports: Vec<ImportedFile> = req
        .files
        .iter()
        .map(|f| ImportedFile { path: f.path.clone(), entities: Vec::new(), warnings: Vec::new(), error: None })
        .collect();
    let mut parsed: Vec<(usize, Entity)> = Vec::new();
    for (index, file) in req.files.iter().enumerate() {
        match catalog_info::parse(&file.path, &file.content) {
            Ok(p) => {
                reports[index].warnings.extend(p.warnings.iter().map(ToString::to_string));
                for target in &p.targets {
                    match catalog_info::resolve_target(&file.path, &target.target) {
                        Ok(path) if sent.contains(path.as_str()) => {}
                        Ok(path) => reports[index].warnings.push(format!(
                            "document {}: Location target {path} was not sent; import its file or directory too",
                            target.document
                        )),
                        Err(err) => reports[index].warnings.push(format!("document {}: {err}", target.document)),
                    }
                }
                parsed.extend(p.entities.into_iter().filter(|e| !e.is_kind("Location")).map(|e| (index, e)));
            }
            Err(err) => reports[index].error = Some(err.to_string()),
        }
    }

    let names: Vec<String> =
        parsed.iter().filter(|(_, e)| e.is_kind("Component")).map(|(_, e)| e.name.to_ascii_lowercase()).collect();
    let services: HashMap<String, (bool, i64)> =
        state.store.existing_services(&names).await?.into_iter().map(|(n, only, team)| (n, (only, team))).collect();
    let keys: Vec<(String, String, String)> = parsed
        .iter()
        .filter(|(_, e)| !e.is_kind("Component"))
        .map(|(_, e)| (e.kind.to_ascii_lowercase(), e.namespace.clone(), e.name.to_ascii_lowercase()))
        .collect();
    let entities: HashMap<(String, String, String), (bool, Option<i64>)> =
        state.store.existing_entities(&keys).await?.into_iter().collect();
    let team_names: HashMap<i64, String> = directory.iter().map(|(_, id, name)| (*id, name.clone())).collect();

    let mut may_write: BTreeMap<i64, bool> = BTreeMap::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut batch = ImportBatch::default();
    let mut plan: Vec<Planned> = Vec::new();
    for (file, e) in parsed {
        let reference = e.entity_ref();
        let key = reference.key();
        let mut planned = Planned { file, entity: reference.to_string(), action: "skip", detail: None, slot: None };
        if let Some(first) = seen.get(&key) {
            planned.detail = Some(format!("declared twice; the first is in {first}"));
            plan.push(planned);
            continue;
        }
        seen.insert(key, req.files[file].path.clone());
        // The owning team: the owner's team (group name or alias), else --team.
        let owner_team = e
            .owner
            .as_ref()
            .filter(|o| o.kind == "group")
            .and_then(|o| owners.get(&o.name.to_ascii_lowercase()).cloned())
            .or_else(|| default_team.clone());
        let Some((team_id, team)) = owner_team else {
            planned.detail = Some(match &e.owner {
                Some(owner) => format!(
                    "owner {owner} is not a team or a team's alias; create the team, have an admin add the \
                     alias (slipway teams set TEAM --alias {}), or pass --team",
                    owner.name
                ),
                None => "no spec.owner; pass --team".to_owned(),
            });
            plan.push(planned);
            continue;
        };
        let allowed = match may_write.get(&team_id) {
            Some(allowed) => *allowed,
            None => {
                let allowed = require_in_team(state, actor, team_id, Action::ManageTeamMembers).await.is_ok();
                may_write.insert(team_id, allowed);
                allowed
            }
        };
        if !allowed {
            planned.detail = Some(format!("only admins and maintainers of team {team:?} import for it"));
            plan.push(planned);
            continue;
        }
        if (e.is_kind("Group") || e.is_kind("User")) && !actor.is_admin {
            // Who a group or user is decides ownership elsewhere: the platform team's.
            planned.detail = Some("groups and users are imported by admins".to_owned());
        } else if e.is_kind("Component") {
            let name = e.name.to_ascii_lowercase();
            if e.namespace != "default" {
                planned.detail = Some("catalog-only services live in namespace default".to_owned());
            } else if let Err(err) = slipway_core::names::validate_name(&name) {
                planned.detail = Some(format!("{:?} cannot be a Slipway service name: it {err}", e.name));
            } else {
                match services.get(&name) {
                    Some((false, _)) => {
                        planned.detail =
                            Some("a service Slipway builds; its own pushed catalog-info.yaml describes it".to_owned());
                    }
                    Some((true, owner)) if *owner != team_id => {
                        let other = team_names.get(owner).cloned().unwrap_or_default();
                        planned.detail = Some(format!("a catalog-only service of team {other:?}"));
                    }
                    existing => {
                        let mut fields = CatalogFields {
                            lifecycle: Lifecycle::default().as_str().to_owned(),
                            tier: Tier::default().as_str().to_owned(),
                            ..CatalogFields::default()
                        };
                        let mut lines = Vec::new();
                        let (descriptor, declared) = crate::catalog::apply_component(&mut fields, &e, &mut lines);
                        reports[file]
                            .warnings
                            .extend(lines.into_iter().map(|l| l.trim_start_matches("warning: ").to_owned()));
                        planned.action = if existing.is_some() { "update" } else { "create" };
                        planned.detail = Some(format!("team {team}"));
                        planned.slot = Some(Slot::Service(batch.services.len()));
                        batch.services.push(ImportedService {
                            name,
                            team_id,
                            fields,
                            declared,
                            repo_url: repository_url(&e),
                            descriptor,
                        });
                    }
                }
            }
        } else {
            let entity: NewEntity = crate::backstage::new_entity(&e, Some(team_id));
            let key = (entity.kind.clone(), entity.namespace.clone(), entity.name.clone());
            match entities.get(&key) {
                Some((true, _)) => planned.detail = Some("declared by a service's pushed catalog-info.yaml".to_owned()),
                Some((false, Some(owner))) if *owner != team_id => {
                    let other = team_names.get(owner).cloned().unwrap_or_default();
                    planned.detail = Some(format!("an entity of team {other:?}"));
                }
                existing => {
                    planned.action = if existing.is_some() { "update" } else { "create" };
                    planned.slot = Some(Slot::Entity(batch.entities.len()));
                    batch.entities.push(entity);
                }
            }
        }
        plan.push(planned);
    }

    if req.apply && !(batch.services.is_empty() && batch.entities.is_empty()) {
        let written = state.store.import_catalog(&batch, now_ms()).await?;
        let services = batch.services.len();
        for planned in &mut plan {
            let index = match planned.slot {
                Some(Slot::Service(i)) => i,
                Some(Slot::Entity(i)) => services + i,
                None => continue,
            };
            if written.get(index) == Some(&Written::Refused) {
                planned.action = "skip";
                planned.detail = Some("changed by someone else while importing; run the import again".to_owned());
            }
        }
    }
    for planned in plan {
        reports[planned.file].entities.push(ImportedEntity {
            entity: planned.entity,
            action: planned.action.to_owned(),
            detail: planned.detail,
        });
    }
    Ok(ImportReport { applied: req.apply, files: reports })
}

/// Where a component's code lives, from the annotations Backstage uses for it.
fn repository_url(e: &Entity) -> Option<String> {
    let valid = |url: &str| {
        url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            && url.len() <= slipway_core::catalog::MAX_URL_LEN
    };
    if let Some(location) = e.annotations.get("backstage.io/source-location") {
        let url = location.strip_prefix("url:").unwrap_or(location).trim();
        if valid(url) {
            return Some(url.to_owned());
        }
    }
    if let Some(slug) = e.annotations.get("github.com/project-slug") {
        let url = format!("https://github.com/{}", slug.trim());
        if valid(&url) && slug.split('/').count() == 2 {
            return Some(url);
        }
    }
    None
}
