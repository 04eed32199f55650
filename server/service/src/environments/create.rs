//! Making and changing environments from templates: check a rendering against the
//! runtime and policy, provision it (quotas, add-ons, the first build) or undo it all,
//! show the plan and diff of a dry run, move an environment to another template version,
//! and create previews for branches.

use std::collections::BTreeMap;

use serde_json::Value;
use slipway_api::{CreateEnvironment, EnvironmentChange, EnvironmentPlan, UpdateEnvironment};
use slipway_core::names::{MAX_NAME_LEN, validate_name};
use slipway_core::policy::Action;
use slipway_core::template::{ParamError, RenderError, Spec, Template, parse_duration};
use slipway_store::StoreError;
use slipway_store::environments::{EnvironmentShape, EnvironmentState, NewEnvironment};
use slipway_store::services::ServiceRow;

use super::{current_spec, destroy, primary_replicas, to_api_with_traffic, totals};

/// The longest ttl an environment may ask for (ten years), whatever its template allows:
/// its expiry must be a date the API can write.
const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);
use crate::access::require_in_team;
use crate::clock::now_ms;
use crate::enqueue::queue_redeploy;
use crate::lookup::find_environment;
use crate::lookup::find_service;
use crate::runs::get_run;
use crate::templates::{find_template, parse_stored};
use crate::{Actor, AppState, Result, ServiceError};

/// A branch name git would accept for `refs/heads/<branch>` (the common rules of
/// `git check-ref-format`).
pub(crate) fn validate_branch(branch: &str) -> Result<()> {
    let bad = branch.is_empty()
        || branch.len() > 200
        || branch.starts_with(['-', '/', '.'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock")
        || branch.contains("..")
        || branch.contains("//")
        || branch.contains("@{")
        || branch.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        return Err(ServiceError::invalid("branch", format!("{branch:?} is not a valid git branch name")));
    }
    Ok(())
}

/// Maps a rendering failure: bad parameter values and the specs they make are 422.
fn render_error(err: RenderError) -> ServiceError {
    let field = match &err {
        RenderError::Parameter(ParamError::Unknown { name, .. })
        | RenderError::Parameter(ParamError::Missing { name }) => {
            format!("parameters.{name}")
        }
        RenderError::Parameter(p) => format!("parameters.{}", p.parameter()),
        RenderError::Spec(_) => "parameters".to_owned(),
    };
    ServiceError::InvalidParameters { field, message: err.to_string() }
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| ServiceError::internal_from("encoding JSON", e))
}

/// A unified diff of two specs, as pretty JSON; `None` when they are the same.
fn spec_diff(running: &Spec, planned: &Spec) -> Result<Option<String>> {
    let pretty = |s: &Spec| serde_json::to_string_pretty(s).map(|t| t + "\n");
    let (old, new) = (
        pretty(running).map_err(|e| ServiceError::internal_from("encoding JSON", e))?,
        pretty(planned).map_err(|e| ServiceError::internal_from("encoding JSON", e))?,
    );
    if old == new {
        return Ok(None);
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    Ok(Some(diff.unified_diff().context_radius(3).header("running", "planned").to_string()))
}

fn plan(
    env: &str,
    template: &Template,
    values: &BTreeMap<String, Value>,
    spec: &Spec,
    diff: Option<String>,
) -> Result<EnvironmentPlan> {
    Ok(EnvironmentPlan {
        environment: env.to_owned(),
        template: format!("{}@{}", template.name, template.version),
        parameters: serde_json::to_value(values).map_err(|e| ServiceError::internal_from("encoding JSON", e))?,
        spec: serde_json::to_value(spec).map_err(|e| ServiceError::internal_from("encoding JSON", e))?,
        diff,
    })
}

/// What to provision, checked: the template rendered with the values, the runtime and
/// the lifetime allowed by its policy.
struct Provision {
    runtime: String,
    template: Template,
    values: BTreeMap<String, Value>,
    spec: Spec,
    expires_at: Option<i64>,
    idle_ttl_ms: Option<i64>,
}

fn check_provision(
    template: Template,
    parameters: &BTreeMap<String, Value>,
    ttl: Option<&str>,
    runtime: Option<&str>,
) -> Result<Provision> {
    let (values, spec) = template.render(parameters).map_err(render_error)?;
    let runtime = runtime.unwrap_or(slipway_engine::LOCAL_RUNTIME);
    if !spec.policy.runtimes.is_empty() && !spec.policy.runtimes.iter().any(|r| r == runtime) {
        // The template's rule (422), not the API's.
        return Err(ServiceError::InvalidParameters {
            field: "runtime".to_owned(),
            message: format!(
                "template {} allows the runtimes {}, not {runtime}",
                template.name,
                spec.policy.runtimes.join(", ")
            ),
        });
    }
    let policy_ttl = spec.ttl();
    let ttl = match ttl {
        Some(text) => {
            // One spelling: digits without sign or leading zero, then the unit (the
            // document's pattern), and at most MAX_TTL however long the template allows.
            let canonical = text.len() >= 2
                && text.len() <= 10
                && !text.starts_with('0')
                && text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit());
            let asked = parse_duration(text)
                .filter(|_| canonical)
                .ok_or_else(|| ServiceError::invalid("ttl", format!("{text:?} is not a duration like 48h or 7d")))?;
            if asked > MAX_TTL {
                return Err(ServiceError::InvalidParameters {
                    field: "ttl".to_owned(),
                    message: format!("{text} is longer than the longest ttl, 3650d"),
                });
            }
            if let Some(limit) = policy_ttl
                && asked > limit
            {
                return Err(ServiceError::InvalidParameters {
                    field: "ttl".to_owned(),
                    message: format!(
                        "{text} is longer than template {}'s ttl of {}",
                        template.name,
                        spec.policy.ttl.clone().unwrap_or_default()
                    ),
                });
            }
            Some(asked)
        }
        None => policy_ttl,
    };
    let now = now_ms();
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Ok(Provision {
        runtime: runtime.to_owned(),
        expires_at: ttl.map(|d| now.saturating_add(ms(d))),
        idle_ttl_ms: spec.idle_ttl().map(ms),
        template,
        values,
        spec,
    })
}

fn validate_environment_name(service: &str, name: &str) -> Result<()> {
    validate_name(name).map_err(|e| ServiceError::invalid_name("name", name, e))?;
    // `<service>-<env>` is a DNS label of the app router's host name.
    if service.len() + 1 + name.len() > 63 {
        return Err(ServiceError::invalid(
            "name",
            format!("{service}-{name} is longer than 63 characters, the limit of a host name label"),
        ));
    }
    debug_assert!(name.len() <= MAX_NAME_LEN);
    Ok(())
}

/// Stores a checked environment (quotas enforced in the same transaction) and, when the
/// branch already has commits, queues its first build and deploy. Either all of it
/// happens or nothing is left behind.
async fn provision(
    state: &AppState,
    actor: &Actor,
    service: &ServiceRow,
    name: &str,
    branch: &str,
    p: &Provision,
    preview: bool,
) -> Result<(EnvironmentState, Option<i64>)> {
    let shape = OwnedShape::new(&p.template, &p.values, &p.spec)?;
    let new = NewEnvironment {
        name,
        branch,
        shape: shape.borrow(),
        preview,
        expires_at: p.expires_at,
        idle_ttl_ms: p.idle_ttl_ms,
        runtime: &p.runtime,
        created_by: &actor.username,
    };
    let id = match state.store.create_environment(service.id, service.team_id, &new, now_ms()).await {
        Ok(id) => id,
        Err(StoreError::Conflict) => {
            let otherwise = format!("{} already has an environment {name}", service.name);
            return Err(crate::error::environment_clash(&state.store, &service.name, name, otherwise).await);
        }
        Err(err) => return Err(err.into()),
    };
    let env = state.store.environment_state(id).await?;
    let provisioned = async {
        provision_addons(state, &env, &p.spec).await?;
        crate::enqueue::queue_build(state, actor, service, id, branch, "deploy").await
    }
    .await;
    match provisioned {
        Ok(run) => Ok((state.store.environment_state(id).await?, run)),
        Err(err) => {
            // Never half-provisioned: the environment and its add-ons go with the failed step.
            if let Err(undo) = destroy(state, &env).await {
                tracing::error!(%undo, environment = %name, "removing an environment whose creation failed");
            }
            Err(err)
        }
    }
}

pub async fn create_environment(
    state: &AppState,
    actor: &Actor,
    service: &str,
    req: CreateEnvironment,
) -> Result<EnvironmentChange> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    if service.catalog_only {
        return Err(ServiceError::Conflict(format!(
            "service {:?} is catalog-only (imported; its code lives at {}): Slipway neither builds nor runs it",
            service.name,
            service.repo_url.as_deref().unwrap_or("another host")
        )));
    }
    validate_environment_name(&service.name, &req.name)?;
    let branch = req.branch.clone().unwrap_or_else(|| req.name.clone());
    validate_branch(&branch)?;
    let (_, template) = find_template(state, &req.template, true).await?;
    let runtime = req.runtime.clone().unwrap_or_else(|| state.settings.default_runtime.clone());
    crate::clusters::check_runtime(state, &runtime).await?;
    if let Some(problem) = state.engine.environment_name_problem(&runtime, &service.name, &req.name) {
        return Err(ServiceError::invalid("name", problem));
    }
    let p = check_provision(template, &req.parameters, req.ttl.as_deref(), Some(&runtime))?;
    let existing = match state.store.environment_by_name(service.id, &req.name).await {
        Ok(row) => Some(state.store.environment_state(row.id).await?),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    let diff = match &existing {
        Some(env) => spec_diff(&current_spec(env)?, &p.spec)?,
        None => None,
    };
    let plan = plan(&req.name, &p.template, &p.values, &p.spec, diff)?;
    if req.dry_run {
        return Ok(EnvironmentChange { plan, environment: None, run: None });
    }
    if existing.is_some() {
        return Err(ServiceError::Conflict(format!(
            "{} already has an environment {}; change it with `slipway envs update`",
            service.name, req.name
        )));
    }
    if let Some(other) = state.store.environment_for_branch(service.id, &branch).await? {
        return Err(ServiceError::Conflict(format!(
            "branch {branch} already deploys to {}; give another --branch",
            other.name
        )));
    }
    let (env, run_id) = provision(state, actor, &service, &req.name, &branch, &p, false).await?;
    let run = match run_id {
        Some(id) => Some(get_run(state, actor, id).await?),
        None => None,
    };
    Ok(EnvironmentChange { plan, environment: Some(to_api_with_traffic(state, env).await), run })
}

/// Moves an environment to another template version and/or parameter values; the
/// change is a new release of the current image (or applies at the first deploy).
pub async fn update_environment(
    state: &AppState,
    actor: &Actor,
    service: &str,
    env: &str,
    req: UpdateEnvironment,
) -> Result<EnvironmentChange> {
    let service = find_service(state, service).await?;
    require_in_team(state, actor, service.team_id, Action::ChangeService).await?;
    let env = find_environment(state, &service, env).await?;
    let reference = req.template.clone().unwrap_or_else(|| format!("{}@{}", env.template, env.template_version));
    let same_version = req.template.is_none();
    let (_, template) = find_template(state, &reference, !same_version).await?;
    // Current values carry over when the new version still declares them.
    let mut values: BTreeMap<String, Value> = serde_json::from_str::<BTreeMap<String, Value>>(&env.parameters)
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, v)| template.parameters.contains_key(k) && !v.is_null())
        .collect();
    values.extend(req.parameters.clone());
    let (values, spec) = template.render(&values).map_err(render_error)?;
    let running = current_spec(&env)?;
    if let Some(gone) = running.addons.iter().find(|a| !spec.addons.contains(a)) {
        return Err(ServiceError::InvalidParameters {
            field: "template".to_owned(),
            message: format!(
                "this change removes the {} add-on, which would delete its data; destroy the environment instead",
                gone.kind.as_str()
            ),
        });
    }
    let diff = spec_diff(&running, &spec)?;
    let plan = plan(&env.name, &template, &values, &spec, diff.clone())?;
    if req.dry_run {
        return Ok(EnvironmentChange { plan, environment: Some(to_api_with_traffic(state, env).await), run: None });
    }
    let shape = OwnedShape::new(&template, &values, &spec)?;
    state.store.reshape_environment(env.id, service.team_id, &shape.borrow()).await?;
    provision_addons(state, &env, &spec).await?;
    let run = match (env.current_release, diff.is_some()) {
        (Some(release_id), true) => {
            let release = state.store.release_by_id(release_id).await?;
            let run_id = queue_redeploy(state, actor, &service, &env, &release, "upgrade").await?;
            Some(get_run(state, actor, run_id).await?)
        }
        _ => None,
    };
    let env = state.store.environment_state(env.id).await?;
    Ok(EnvironmentChange { plan, environment: Some(to_api_with_traffic(state, env).await), run })
}

/// Provisions the add-ons a spec asks for that the environment lacks.
async fn provision_addons(state: &AppState, env: &EnvironmentState, spec: &Spec) -> Result<()> {
    if spec.addons.is_empty() {
        return Ok(());
    }
    let kinds: Vec<_> = spec.addons.iter().map(|a| a.kind).collect();
    state.engine.provision_addons(env, &kinds).await.map_err(|why| {
        tracing::error!(%why, service = %env.service, environment = %env.name, "provisioning add-ons");
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        ServiceError::Unavailable(format!(
            "provisioning the {} add-on(s) of {} failed, so nothing was created; slipwayd's log says why \
             (check its --postgres-image/--redis-image and the container engine)",
            names.join(", "),
            env.name
        ))
    })
}

/// `feature/Login_fix` → `pr-feature-login-fix`, cut to fit the host name label.
pub fn preview_name(service: &str, branch: &str) -> Option<String> {
    let mut slug = String::new();
    for c in branch.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let room = 63usize.saturating_sub(service.len() + 1 + 3).min(MAX_NAME_LEN - 3);
    let slug: String = slug.chars().take(room).collect();
    let slug = slug.trim_end_matches('-');
    (!slug.is_empty()).then(|| format!("pr-{slug}"))
}

/// Creates the preview environment of a branch from the service's preview template
/// (no first run: the push that caused it runs next).
pub(crate) async fn create_preview(
    state: &AppState,
    created_by: &str,
    service: &ServiceRow,
    template: &str,
    branch: &str,
) -> Result<EnvironmentState> {
    let name = preview_name(&service.name, branch)
        .ok_or_else(|| ServiceError::invalid("branch", format!("branch {branch:?} gives no preview name")))?;
    let (_, template) = find_template(state, template, true).await?;
    let runtime = state.settings.default_runtime.clone();
    let p = check_provision(template, &BTreeMap::new(), None, Some(&runtime))?;
    let shape = OwnedShape::new(&p.template, &p.values, &p.spec)?;
    let new = NewEnvironment {
        name: &name,
        branch,
        shape: shape.borrow(),
        preview: true,
        expires_at: p.expires_at,
        idle_ttl_ms: p.idle_ttl_ms,
        runtime: &p.runtime,
        created_by,
    };
    let id = match state.store.create_environment(service.id, service.team_id, &new, now_ms()).await {
        Ok(id) => id,
        Err(StoreError::Conflict) => {
            let otherwise = format!("{} already has an environment {name} on another branch", service.name);
            return Err(crate::error::environment_clash(&state.store, &service.name, &name, otherwise).await);
        }
        Err(err) => return Err(err.into()),
    };
    let env = state.store.environment_state(id).await?;
    if let Err(err) = provision_addons(state, &env, &p.spec).await {
        if let Err(undo) = destroy(state, &env).await {
            tracing::error!(%undo, environment = %env.name, "removing a preview whose add-ons failed");
        }
        return Err(err);
    }
    Ok(env)
}

/// The environment of a new service: `production` from the default template, tracking `main`.
pub(crate) async fn first_environment(state: &AppState) -> Result<(Template, BTreeMap<String, Value>, Spec)> {
    let row = state.store.latest_template(crate::templates::DEFAULT_TEMPLATE).await?;
    let template = parse_stored(&row)?;
    let (values, spec) = template.render(&BTreeMap::new()).map_err(render_error)?;
    Ok((template, values, spec))
}

/// Builds the shape of a rendered template, for the store.
pub(crate) struct OwnedShape {
    pub template: String,
    pub version: String,
    pub parameters: String,
    pub spec: Spec,
    pub replicas: i32,
    pub total_replicas: i32,
    pub total_memory_mb: i64,
}

impl OwnedShape {
    pub fn new(template: &Template, values: &BTreeMap<String, Value>, spec: &Spec) -> Result<OwnedShape> {
        let replicas = primary_replicas(spec);
        let (total_replicas, total_memory_mb) = totals(spec, replicas);
        Ok(OwnedShape {
            template: template.name.clone(),
            version: template.version.to_string(),
            parameters: to_json(values)?,
            spec: spec.clone(),
            replicas: i32::try_from(replicas).unwrap_or(1),
            total_replicas,
            total_memory_mb,
        })
    }

    pub fn borrow(&self) -> EnvironmentShape<'_> {
        EnvironmentShape {
            template: &self.template,
            template_version: &self.version,
            parameters: &self.parameters,
            spec: &self.spec,
            replicas: self.replicas,
            total_replicas: self.total_replicas,
            total_memory_mb: self.total_memory_mb,
        }
    }
}
