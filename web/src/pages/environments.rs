//! `/services/{service}/envs/{env}` and the forms that change environments: create from
//! a template (a form generated from its parameters, with a dry-run preview), rollback,
//! scale and destroy.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use slipway_api::{CreateEnvironment, CreateRun};
use slipway_core::template::{ParamType, Parameter};
use slipway_service::pagination::PageParams;
use slipway_service::{AppState, ServiceError, audit, config, environments, runs, services, templates};

use super::services::{EnvDetail, ReleaseView, VarView};
use super::{Nav, render, render_with};
use crate::error::PageError;
use crate::form::{Fields, Form, Query, change, require_csrf};
use crate::session::Viewer;
use crate::view::{EnvRow, RunRow, TrafficView};

#[derive(Template)]
#[template(path = "environment.html")]
struct EnvironmentPage {
    nav: Nav,
    service: String,
    d: EnvDetail,
    /// None on a cluster, whose Ingress serves the environment.
    traffic: Option<TrafficView>,
    parameters: String,
    runs: Vec<RunRow>,
    next_runs: Option<String>,
    next_releases: Option<String>,
    others: Vec<String>,
    can_change: bool,
}

#[derive(Debug, serde::Deserialize)]
pub struct EnvironmentQuery {
    /// The runs' cursor.
    cursor: Option<String>,
    /// The releases' cursor.
    releases: Option<String>,
}

pub async fn environment(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Query(query): Query<EnvironmentQuery>,
) -> Result<Response, PageError> {
    let actor = &viewer.actor;
    let svc = services::get_service(&state, actor, &service).await?;
    let environment = environments::get_environment(&state, actor, &service, &env).await?;
    let can_change = services::may_change(&state, actor, &svc).await?;
    let releases = environments::list_releases_page(
        &state,
        actor,
        &service,
        &env,
        &PageParams { limit: Some(20), cursor: query.releases.clone() },
    )
    .await?;
    let config = if can_change { Some(config::get_config(&state, actor, &service, &env).await?) } else { None };
    let page = PageParams { limit: Some(20), cursor: query.cursor };
    let recent = runs::list_environment_runs(&state, actor, &service, &env, &page).await?;
    let others = environments::list_environments(&state, actor, &service)
        .await?
        .into_iter()
        .map(|e| e.name)
        .filter(|name| *name != env)
        .collect();
    render(EnvironmentPage {
        nav: Nav::new(&viewer, "catalog"),
        traffic: environment.traffic.as_ref().map(TrafficView::from),
        parameters: serde_json::to_string(&environment.parameters).unwrap_or_default(),
        d: EnvDetail {
            env: EnvRow::new(&service, &environment),
            releases: releases.items.iter().map(ReleaseView::from).collect(),
            vars: config.as_ref().map(|c| c.vars.iter().map(VarView::from).collect()).unwrap_or_default(),
            config_version: config.map_or(0, |c| c.version),
        },
        next_releases: releases
            .next_cursor
            .as_deref()
            .map(|c| format!("{}?releases={c}#releases-h", env_path(&service, &env))),
        runs: recent.items.iter().map(RunRow::from).collect(),
        next_runs: crate::view::next_link(&env_path(&service, &env), &[], recent.next_cursor.as_deref()),
        others,
        can_change,
        service,
    })
}

fn env_path(service: &str, env: &str) -> String {
    format!("/services/{service}/envs/{env}")
}

pub async fn rollback(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let to = match fields.optional("to") {
        None => None,
        Some(v) => Some(
            v.trim_start_matches('v')
                .parse::<u32>()
                .map_err(|_| ServiceError::invalid("to", format!("release {v:?} is not a version like v3")))?,
        ),
    };
    let work = async {
        let run = environments::rollback(&state, &viewer.actor, &service, &env, to).await?;
        Ok(Some(format!("/runs/{}", run.id)))
    };
    let target = env_path(&service, &env);
    change(&state, &viewer, &fields, "POST /services/{service}/envs/{env}/rollback", &target, target.clone(), work)
        .await
}

pub async fn scale(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = env_path(&service, &env);
    let work = async {
        let text = fields.required("replicas")?;
        let replicas = text
            .parse::<u32>()
            .map_err(|_| ServiceError::invalid("replicas", format!("replicas {text:?} is not a whole number")))?;
        environments::scale(&state, &viewer.actor, &service, &env, replicas).await.map(|_| None)
    };
    change(&state, &viewer, &fields, "POST /services/{service}/envs/{env}/scale", &target, target.clone(), work).await
}

/// Builds a ref and deploys it here without a push (`slipway deploy`).
pub async fn deploy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = env_path(&service, &env);
    let work = async {
        let request = CreateRun { environment: env.clone(), git_ref: fields.optional("git_ref") };
        let run = runs::deploy(&state, &viewer.actor, &service, request).await?;
        Ok(Some(format!("/runs/{}", run.id)))
    };
    change(&state, &viewer, &fields, "POST /services/{service}/envs/{env}/deploy", &target, target.clone(), work).await
}

pub async fn promote(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = env_path(&service, &env);
    let work = async {
        let to = fields.required("to")?;
        let run = environments::promote(&state, &viewer.actor, &service, &env, &to).await?;
        Ok(Some(format!("/runs/{}", run.id)))
    };
    change(&state, &viewer, &fields, "POST /services/{service}/envs/{env}/promote", &target, target.clone(), work).await
}

pub async fn destroy(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((service, env)): Path<(String, String)>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    let target = env_path(&service, &env);
    let work = async {
        if fields.get("confirm") != env {
            return Err(ServiceError::invalid("confirm", format!("type the environment's name ({env}) to destroy it")));
        }
        environments::destroy_environment(&state, &viewer.actor, &service, &env).await?;
        Ok(Some(format!("/services/{service}")))
    };
    change(&state, &viewer, &fields, "POST /services/{service}/envs/{env}/destroy", &target, target.clone(), work).await
}

/// One generated input of the creation form.
struct ParamInput {
    name: String,
    kind: &'static str,
    /// `number`, `text`, `select`.
    control: &'static str,
    value: String,
    /// The template's default, shown until a value is typed (a blank keeps the default).
    default: String,
    min: String,
    max: String,
    pattern: String,
    options: Vec<String>,
    description: String,
    required: bool,
    /// The rule in words, shown under the input.
    hint: String,
    error: String,
}

#[derive(Template)]
#[template(path = "new_environment.html")]
struct NewEnvironmentPage {
    nav: Nav,
    service: String,
    templates: Vec<String>,
    template: String,
    template_name: String,
    template_description: String,
    inputs: Vec<ParamInput>,
    name: String,
    branch: String,
    ttl: String,
    runtime: String,
    error: String,
    error_field: String,
    plan: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct NewQuery {
    #[serde(default)]
    template: String,
}

fn inputs(
    parameters: &BTreeMap<String, Parameter>,
    values: &Fields,
    error_field: &str,
    error: &str,
) -> Vec<ParamInput> {
    parameters
        .iter()
        .map(|(name, p)| {
            let default = p.default.as_ref().map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            let submitted = values.0.get(&format!("param.{name}")).cloned();
            let (control, options) = match p.kind {
                ParamType::Integer => ("number", Vec::new()),
                ParamType::Boolean => ("select", vec!["true".to_owned(), "false".to_owned()]),
                ParamType::Enum => ("select", p.values.clone()),
                ParamType::String => ("text", Vec::new()),
            };
            let mut rules = Vec::new();
            if let Some(min) = p.minimum {
                rules.push(format!("at least {min}"));
            }
            if let Some(max) = p.maximum {
                rules.push(format!("at most {max}"));
            }
            if let Some(pattern) = &p.pattern {
                rules.push(format!("matches {pattern}"));
            }
            if let Some(default) = &default {
                rules.push(format!("default {default}"));
            }
            let this_field = error_field == name || error_field == format!("parameters.{name}");
            ParamInput {
                name: name.clone(),
                kind: match p.kind {
                    ParamType::String => "string",
                    ParamType::Integer => "integer",
                    ParamType::Boolean => "boolean",
                    ParamType::Enum => "enum",
                },
                control,
                value: submitted.unwrap_or_default(),
                default: default.unwrap_or_default(),
                min: p.minimum.map(|m| m.to_string()).unwrap_or_default(),
                max: p.maximum.map(|m| m.to_string()).unwrap_or_default(),
                pattern: p.pattern.clone().unwrap_or_default(),
                options,
                description: p.description.clone(),
                required: p.required,
                hint: rules.join(", "),
                error: if this_field { error.to_owned() } else { String::new() },
            }
        })
        .collect()
}

async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    service: &str,
    template: &str,
    fields: &Fields,
    error: Option<&ServiceError>,
    plan: String,
) -> Result<NewEnvironmentPage, PageError> {
    let actor = &viewer.actor;
    let mut names: Vec<String> =
        templates::list_templates(state, actor).await?.into_iter().filter(|t| !t.deprecated).map(|t| t.name).collect();
    names.dedup();
    // The default template, as for a new service's first environment.
    let fallback =
        if names.iter().any(|n| n == "web") { "web".to_owned() } else { names.first().cloned().unwrap_or_default() };
    let chosen = if template.is_empty() { fallback } else { template.to_owned() };
    let detail = templates::get_template(state, actor, &chosen).await?;
    let parameters: BTreeMap<String, Parameter> = serde_json::from_value(detail.parameters.clone())
        .map_err(|e| ServiceError::internal_from("reading template parameters", e))?;
    let (error_text, error_field) = match error {
        Some(err) => (err.problem().detail, err.problem().field.unwrap_or_default()),
        None => (String::new(), String::new()),
    };
    let error_field = error_field.trim_start_matches("parameters.").to_owned();
    Ok(NewEnvironmentPage {
        nav: Nav::new(viewer, "catalog"),
        service: service.to_owned(),
        templates: names,
        template: format!("{}@{}", detail.summary.name, detail.summary.version),
        template_name: detail.summary.name.clone(),
        template_description: detail.summary.description.clone(),
        inputs: inputs(&parameters, fields, &error_field, &error_text),
        name: fields.get("name").to_owned(),
        branch: fields.get("branch").to_owned(),
        ttl: fields.get("ttl").to_owned(),
        runtime: fields.get("runtime").to_owned(),
        error: error_text,
        error_field,
        plan,
    })
}

pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(service): Path<String>,
    Query(query): Query<NewQuery>,
) -> Result<Response, PageError> {
    let svc = services::get_service(&state, &viewer.actor, &service).await?;
    if !services::may_change(&state, &viewer.actor, &svc).await? {
        return Err(ServiceError::Forbidden(format!(
            "only members of team {} (and admins) may create environments of {service}",
            svc.team
        ))
        .into());
    }
    render(form_page(&state, &viewer, &service, &query.template, &Fields::default(), None, String::new()).await?)
}

/// The form's fields as an API request: `param.NAME` inputs become parameters (blank
/// ones are left to the template's defaults).
fn request(fields: &Fields, dry_run: bool) -> CreateEnvironment {
    let parameters = fields
        .0
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("param.")?.to_owned(), v.trim().to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    CreateEnvironment {
        name: fields.get("name").trim().to_owned(),
        template: fields.get("template").trim().to_owned(),
        parameters,
        branch: fields.optional("branch"),
        ttl: fields.optional("ttl"),
        runtime: fields.optional("runtime"),
        dry_run,
    }
}

pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(service): Path<String>,
    Form(fields): Form,
) -> Result<Response, PageError> {
    const ACTION: &str = "POST /services/{service}/new-environment";
    let target = format!("/services/{service}/new-environment");
    require_csrf(&state, &viewer, &fields, ACTION, &target).await?;
    let dry_run = fields.get("action") == "preview";
    let req = request(&fields, dry_run);
    let template = req.template.clone();
    let result = environments::create_environment(&state, &viewer.actor, &service, req).await;
    if !dry_run {
        let status = result.as_ref().map_or_else(|e| e.status(), |_| StatusCode::SEE_OTHER);
        audit::record(&state, viewer.username(), ACTION, &target, status).await;
    }
    match result {
        Ok(change) if dry_run => {
            let plan = serde_json::to_string_pretty(&change.plan.spec).unwrap_or_default();
            render(form_page(&state, &viewer, &service, &template, &fields, None, plan).await?)
        }
        Ok(change) => {
            let env = change.environment.map(|e| e.name).unwrap_or_default();
            Ok(Redirect::to(&env_path(&service, &env)).into_response())
        }
        // The form is shown again with the server's message beside the field it names.
        Err(
            err @ (ServiceError::Invalid { .. }
            | ServiceError::InvalidParameters { .. }
            | ServiceError::QuotaExceeded(_)
            | ServiceError::Conflict(_)
            | ServiceError::NotFound { kind: "template", .. }),
        ) => {
            let page = form_page(&state, &viewer, &service, &template, &fields, Some(&err), String::new()).await;
            match page {
                Ok(page) => render_with(err.status(), page),
                Err(_) => Err(err.into()),
            }
        }
        Err(err) => Err(err.into()),
    }
}
