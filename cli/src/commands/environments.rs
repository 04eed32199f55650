//! `envs list|show`, `releases`, `rollback`, `promote`, `scale` and `status`.

use slipway_api::{
    CreateEnvironment, DoraMetrics, Environment, EnvironmentChange, Page, PromoteRequest, Release, RollbackRequest,
    Run, ScaleRequest, Service, UpdateEnvironment,
};

use super::runs::follow_to_end;
use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output::{self, short_time};

fn release(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("v{v}"))
}

/// The environments table of `envs list` and `status`.
fn print_environments(envs: &[Environment]) {
    let rows = envs
        .iter()
        .map(|e| {
            let note = if e.pinned {
                "pinned"
            } else if e.preview {
                "preview"
            } else {
                ""
            };
            vec![
                e.name.clone(),
                e.branch.clone(),
                release(e.release),
                format!("{}/{}", e.healthy_replicas, e.replicas),
                e.template.clone(),
                note.to_owned(),
                e.url.clone(),
            ]
        })
        .collect();
    output::table(&["env", "branch", "release", "healthy", "template", "", "url"], rows);
}

/// Each environment's traffic through the app router over the last hour.
fn print_traffic(envs: &[Environment]) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
    let rows = envs
        .iter()
        .filter_map(|e| e.traffic.as_ref().map(|t| (e, t)))
        .map(|(e, t)| {
            vec![
                e.name.clone(),
                format!("{:.2}", t.requests_per_second),
                t.requests.to_string(),
                t.error_rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0)),
                ms(t.p50_ms),
                ms(t.p99_ms),
            ]
        })
        .collect();
    println!("Traffic through the app router, last hour:");
    output::table(&["env", "req/s", "requests", "5xx", "p50", "p99"], rows);
}

pub async fn list(service: String, json: bool) -> Result<(), CliError> {
    let envs: Vec<Environment> =
        signed_in_client()?.list_all(&format!("/services/{}/environments", encode(&service))).await?;
    if json {
        return output::json(&envs);
    }
    print_environments(&envs);
    Ok(())
}

pub async fn show(service: String, env: String, json: bool) -> Result<(), CliError> {
    let e: Environment =
        signed_in_client()?.get(&format!("/services/{}/environments/{}", encode(&service), encode(&env))).await?;
    if json {
        return output::json(&e);
    }
    println!("environment: {}", e.name);
    println!("template:    {}", e.template);
    println!("branch:      {}", e.branch);
    println!("release:     {}{}", release(e.release), if e.pinned { " (pinned by a rollback)" } else { "" });
    println!("replicas:    {}/{} healthy", e.healthy_replicas, e.replicas);
    if let Some(condition) = &e.condition {
        println!("condition:   {condition}");
    }
    println!("url:         {}", e.url);
    if let Some(params) = e.parameters.as_object().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("parameters:  {}", shown.join(" "));
    }
    if e.preview {
        println!("preview:     yes");
    }
    if let Some(at) = &e.expires_at {
        println!("expires:     {at}");
    }
    if let Some(idle) = &e.idle_ttl {
        println!("idle ttl:    {idle} without a request");
    }
    Ok(())
}

pub async fn releases(service: String, env: String, json: bool) -> Result<(), CliError> {
    let path = format!("/services/{}/environments/{}/releases", encode(&service), encode(&env));
    let releases: Vec<Release> = signed_in_client()?.list_all(&path).await?;
    if json {
        return output::json(&releases);
    }
    let rows = releases
        .into_iter()
        .map(|r| {
            vec![
                format!("v{}{}", r.version, if r.current { " *" } else { "" }),
                r.commit.chars().take(8).collect(),
                if r.config_version == 0 { "-".to_owned() } else { format!("v{}", r.config_version) },
                r.image,
                r.created_by,
                short_time(&r.created_at),
            ]
        })
        .collect();
    output::table(&["release", "commit", "config", "image", "by", "created"], rows);
    Ok(())
}

/// `v3` or `3`.
fn parse_version(text: &str) -> Result<u32, CliError> {
    text.trim_start_matches('v').parse().map_err(|_| CliError::usage(format!("--to {text:?} is not a release like v3")))
}

pub async fn rollback(service: String, env: String, to: Option<String>) -> Result<(), CliError> {
    let to = to.as_deref().map(parse_version).transpose()?;
    let client = signed_in_client()?;
    let path = format!("/services/{}/environments/{}/rollback", encode(&service), encode(&env));
    let run: Run = client.post(&path, &RollbackRequest { to }).await?;
    eprintln!("-----> Run {}: rolling {env} back to {}", run.id, run.git_ref);
    follow_to_end(&client, run.id).await?;
    eprintln!("-----> {env} is pinned: pushes will not deploy until `slipway deploy {service} {env}`");
    Ok(())
}

pub async fn promote(service: String, from: String, to: String) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let run: Run = client
        .post(
            &format!("/services/{}/promote", encode(&service)),
            &PromoteRequest { from: from.clone(), to: to.clone() },
        )
        .await?;
    eprintln!("-----> Run {}: promoting {from} ({}) to {to}", run.id, run.git_ref);
    follow_to_end(&client, run.id).await
}

pub async fn scale(service: String, env: String, replicas: u32, json: bool) -> Result<(), CliError> {
    let path = format!("/services/{}/environments/{}/scale", encode(&service), encode(&env));
    let e: Environment = signed_in_client()?.post(&path, &ScaleRequest { replicas }).await?;
    if json {
        return output::json(&e);
    }
    println!("Scaled {service} {env} to {} replicas ({} healthy now)", e.replicas, e.healthy_replicas);
    Ok(())
}

pub async fn status(service: String, days: u32, json: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let s: Service = client.get(&format!("/services/{}", encode(&service))).await?;
    let envs: Vec<Environment> = client.list_all(&format!("/services/{}/environments", encode(&service))).await?;
    let runs: Page<Run> = client.get(&format!("/services/{}/runs?limit=5", encode(&service))).await?;
    let dora: DoraMetrics = client.get(&format!("/services/{}/metrics?days={days}", encode(&service))).await?;
    if json {
        return output::json(
            &serde_json::json!({"service": s, "environments": envs, "runs": runs.items, "dora": dora}),
        );
    }
    println!("{} (owner: {})", s.name, s.team);
    if let Some(owner) = s.declared_owner.as_deref().filter(|o| *o != s.team) {
        println!("warning: catalog-info.yaml names owner {owner:?}");
    }
    println!();
    print_environments(&envs);
    println!();
    print_traffic(&envs);
    println!();
    super::runs::print_runs(runs.items);
    println!();
    print_dora(&dora);
    Ok(())
}

fn print_dora(m: &DoraMetrics) {
    let duration = |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), output::human_duration);
    println!("DORA, last {} days:", m.days);
    println!("  deployment frequency   {} ({:.2}/day)", m.deployments, m.deployments_per_day);
    println!("  lead time for changes  {}", duration(m.lead_time_ms));
    let rate = m.change_failure_rate.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0));
    let failures = if m.failures == 1 { "1 failure".to_owned() } else { format!("{} failures", m.failures) };
    println!("  change failure rate    {rate} ({failures})");
    println!("  time to restore        {}", duration(m.time_to_restore_ms));
}

pub async fn app_logs(service: String, env: String, follow: bool, tail: u32) -> Result<(), CliError> {
    let path = format!("/services/{}/environments/{}/logs?follow={follow}&tail={tail}", encode(&service), encode(&env));
    signed_in_client()?.stream_lines(&path, |line| println!("{line}")).await
}

/// `--set k=v` pairs as parameter values (text; the server types them).
fn parse_sets(sets: &[String]) -> Result<std::collections::BTreeMap<String, serde_json::Value>, CliError> {
    let mut values = std::collections::BTreeMap::new();
    for pair in sets {
        let (key, value) =
            pair.split_once('=').ok_or_else(|| CliError::usage(format!("--set {pair:?} is not KEY=VALUE")))?;
        if values.insert(key.to_owned(), serde_json::Value::String(value.to_owned())).is_some() {
            return Err(CliError::usage(format!("--set {key} is given twice")));
        }
    }
    Ok(values)
}

fn print_plan(change: &EnvironmentChange, dry_run: bool) {
    let plan = &change.plan;
    eprintln!("{} {} from {}", if dry_run { "Plan for" } else { "Environment" }, plan.environment, plan.template);
    if let Some(params) = plan.parameters.as_object().filter(|p| !p.is_empty()) {
        let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!("parameters: {}", shown.join(" "));
    }
    match &plan.diff {
        Some(diff) => print!("{diff}"),
        None if dry_run && change.environment.is_some() => println!("no change to what runs"),
        None => println!("{}", serde_json::to_string_pretty(&plan.spec).unwrap_or_default()),
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn create(
    service: String,
    name: String,
    template: String,
    sets: Vec<String>,
    branch: Option<String>,
    ttl: Option<String>,
    runtime: Option<String>,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    let req = CreateEnvironment {
        name: name.clone(),
        template,
        parameters: parse_sets(&sets)?,
        branch,
        ttl,
        runtime,
        dry_run,
    };
    let client = signed_in_client()?;
    let change: EnvironmentChange = client.post(&format!("/services/{}/environments", encode(&service)), &req).await?;
    if json {
        return output::json(&change);
    }
    print_plan(&change, dry_run);
    if dry_run {
        return Ok(());
    }
    if let Some(env) = &change.environment {
        eprintln!("Created environment {name} of {service}, tracking branch {} ({})", env.branch, env.url);
    }
    match change.run {
        Some(run) => {
            eprintln!("-----> Run {}: building {} for {name}", run.id, run.git_ref);
            follow_to_end(&client, run.id).await
        }
        None => {
            eprintln!("Nothing is pushed to its branch yet; the first push deploys it");
            Ok(())
        }
    }
}

pub async fn update(
    service: String,
    name: String,
    template: Option<String>,
    sets: Vec<String>,
    dry_run: bool,
    json: bool,
) -> Result<(), CliError> {
    let req = UpdateEnvironment { template, parameters: parse_sets(&sets)?, dry_run };
    let client = signed_in_client()?;
    let path = format!("/services/{}/environments/{}", encode(&service), encode(&name));
    let change: EnvironmentChange = client.patch(&path, &req).await?;
    if json {
        return output::json(&change);
    }
    print_plan(&change, true);
    if dry_run {
        return Ok(());
    }
    match change.run {
        Some(run) => {
            eprintln!("-----> Run {}: deploying {name} as {}", run.id, change.plan.template);
            follow_to_end(&client, run.id).await
        }
        None => {
            eprintln!("Updated {name}; it applies at the next deploy");
            Ok(())
        }
    }
}

pub async fn destroy(service: String, name: String) -> Result<(), CliError> {
    let path = format!("/services/{}/environments/{}", encode(&service), encode(&name));
    signed_in_client()?.delete(&path).await?;
    println!("Destroyed environment {name} of {service}");
    Ok(())
}
