//! Environment templates: the built-ins loaded at start, and listing, showing, publishing
//! (admins) and deprecating versions. A published version never changes; environments
//! find a template by `NAME` (its newest version that is not deprecated) or
//! `NAME@VERSION`.

use slipway_api::{TemplateDetail, TemplateSummary};
use slipway_core::policy::Action;
use slipway_core::template::{Template, TemplateError, Version, parse_reference};
use slipway_store::templates::{NewTemplate, TemplateRow};
use slipway_store::{Store, StoreError};

use crate::access::require_platform;
use crate::clock::{now_ms, rfc3339};
use crate::{Actor, AppState, Result, ServiceError};

/// The template every new service's `production` environment is made from.
pub const DEFAULT_TEMPLATE: &str = "web";

/// The built-in templates (the repository's `templates/`), compiled into slipwayd.
pub const BUILTIN: &[(&str, &str)] = &[
    ("web", include_str!("../../../templates/web.yaml")),
    ("worker", include_str!("../../../templates/worker.yaml")),
    ("web-postgres", include_str!("../../../templates/web-postgres.yaml")),
    ("static", include_str!("../../../templates/static.yaml")),
    ("preview", include_str!("../../../templates/preview.yaml")),
];

/// Publishes each built-in version the database lacks. A built-in whose stored text
/// differs keeps the stored one (published versions never change) and is logged: bump
/// its version instead.
pub async fn load_builtin_templates(store: &Store) -> Result<(), String> {
    for (name, source) in BUILTIN {
        let template = Template::parse(source).map_err(|e| format!("built-in template {name}: {e}"))?;
        let version = template.version.to_string();
        match store.insert_template(&new_template(&template, &version, source, "slipway"), now_ms()).await {
            Ok(()) => tracing::info!(template = %name, %version, "published built-in template"),
            Err(StoreError::Conflict) => {
                let stored = store.template_version(name, &version).await.map_err(|e| e.to_string())?;
                if stored.source != *source {
                    tracing::warn!(template = %name, %version,
                        "the built-in template differs from the published version of the same number; \
                         the published one stays (give the change a new version)");
                }
            }
            Err(err) => return Err(format!("publishing built-in template {name}: {err}")),
        }
    }
    Ok(())
}

/// The row publishing `template` writes (a built-in unless the caller says otherwise).
fn new_template<'a>(template: &'a Template, version: &'a str, source: &'a str, by: &'a str) -> NewTemplate<'a> {
    NewTemplate {
        name: &template.name,
        version,
        major: template.version.major,
        minor: template.version.minor,
        patch: template.version.patch,
        description: &template.description,
        source,
        builtin: true,
        published_by: by,
    }
}

fn summary(row: &TemplateRow) -> TemplateSummary {
    TemplateSummary {
        name: row.name.clone(),
        version: row.version.clone(),
        description: row.description.clone(),
        builtin: row.builtin,
        deprecated: row.deprecated,
        published_by: row.published_by.clone(),
        published_at: rfc3339(row.published_at),
    }
}

fn detail(row: TemplateRow) -> Result<TemplateDetail> {
    let template = parse_stored(&row)?;
    Ok(TemplateDetail {
        summary: summary(&row),
        parameters: serde_json::to_value(&template.parameters)
            .map_err(|e| ServiceError::internal_from("encoding JSON", e))?,
        source: row.source,
    })
}

pub(crate) fn parse_stored(row: &TemplateRow) -> Result<Template> {
    Template::parse(&row.source).map_err(|e| {
        ServiceError::internal_from(format!("stored template {}@{} does not parse", row.name, row.version), e)
    })
}

/// Finds a template by reference; `for_new` refuses deprecated versions (existing
/// environments keep running theirs).
pub(crate) async fn find_template(state: &AppState, reference: &str, for_new: bool) -> Result<(TemplateRow, Template)> {
    let (name, version) = parse_reference(reference).map_err(|e| ServiceError::invalid("template", e))?;
    let row = match version {
        Some(version) => state.store.template_version(&name, &version.to_string()).await,
        None => state.store.latest_template(&name).await,
    };
    let row = match row {
        Ok(row) => row,
        Err(StoreError::NotFound) => return Err(ServiceError::not_found("template", reference)),
        Err(err) => return Err(err.into()),
    };
    if for_new && row.deprecated {
        let newest = state.store.latest_template(&row.name).await.ok();
        let hint = newest.map_or_else(String::new, |n| format!("; use {}@{}", n.name, n.version));
        return Err(ServiceError::Conflict(format!("template {}@{} is deprecated{hint}", row.name, row.version)));
    }
    let template = parse_stored(&row)?;
    Ok((row, template))
}

pub async fn list_templates(state: &AppState, _actor: &Actor) -> Result<Vec<TemplateSummary>> {
    Ok(state.store.list_templates().await?.iter().map(summary).collect())
}

/// One page of every version of every template, by name then version; the cursor is
/// the last version's `name@major.minor.patch`.
pub async fn list_templates_page(
    state: &AppState,
    _actor: &Actor,
    params: &crate::pagination::PageParams,
) -> Result<slipway_api::Page<TemplateSummary>> {
    let page = crate::pagination::PageRequest::parse(params)?;
    let after = if page.after.is_empty() {
        None
    } else {
        // `name@1.2.0`; a key without one (not a cursor we handed out) is still a
        // position: just after `name@0.0.0`.
        match page.after.rsplit_once('@').and_then(|(name, v)| Some((name, Version::parse(v)?))) {
            Some((name, version)) => Some((name, version.major, version.minor, version.patch)),
            None => Some((page.after.as_str(), 0, 0, 0)),
        }
    };
    let rows = state.store.list_templates_after(after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |t| t.name.clone() + "@" + &t.version);
    Ok(slipway_api::Page { items: rows.iter().map(summary).collect(), next_cursor })
}

pub async fn get_template(state: &AppState, _actor: &Actor, reference: &str) -> Result<TemplateDetail> {
    let (row, _) = find_template(state, reference, false).await?;
    detail(row)
}

/// Publishes a new version (admins). The document is checked in full first; a version
/// that exists is refused, even with the same text.
pub async fn publish_template(state: &AppState, actor: &Actor, source: &str) -> Result<TemplateDetail> {
    require_platform(actor, Action::AdministerPlatform)?;
    let template = Template::parse(source).map_err(|e| match e {
        TemplateError::Yaml { .. } | TemplateError::TooLarge | TemplateError::Invalid(_) => {
            ServiceError::invalid("source", e.to_string())
        }
        TemplateError::Spec(spec) => ServiceError::invalid("source", spec.to_string()),
    })?;
    let version = template.version.to_string();
    let new = NewTemplate { builtin: false, ..new_template(&template, &version, source, &actor.username) };
    match state.store.insert_template(&new, now_ms()).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!(
                "template {}@{version} is already published and never changes; publish a new version",
                template.name
            )));
        }
        Err(err) => return Err(err.into()),
    }
    detail(state.store.template_version(&template.name, &version).await?)
}

/// Marks a version deprecated (admins): no new environment uses it.
pub async fn deprecate_template(state: &AppState, actor: &Actor, name: &str, version: &str) -> Result<TemplateSummary> {
    require_platform(actor, Action::AdministerPlatform)?;
    let parsed = Version::parse(version)
        .ok_or_else(|| ServiceError::invalid("version", format!("{version:?} is not a version like 1.2.0")))?;
    match state.store.deprecate_template(name, &parsed.to_string()).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(ServiceError::not_found("template", format!("{name}@{version}"))),
        Err(err) => return Err(err.into()),
    }
    Ok(summary(&state.store.template_version(name, &parsed.to_string()).await?))
}
