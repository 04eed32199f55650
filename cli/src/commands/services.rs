//! `services create | list | show | set | delete`.

use slipway_api::{CreateService, Link, Service, UpdateService};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output::{self, or_dash, short_time};

pub async fn create(name: String, team: String, description: Option<String>, json: bool) -> Result<(), CliError> {
    let service: Service = signed_in_client()?
        .post("/services", &CreateService { name, team, description, ..CreateService::default() })
        .await?;
    if json {
        return output::json(&service);
    }
    println!("Created service {} (owner: {})", service.name, service.team);
    if let Some(git_url) = &service.git_url {
        println!("Git remote: {git_url}");
    }
    Ok(())
}

pub async fn list(team: Option<String>, json: bool) -> Result<(), CliError> {
    let path = match team {
        Some(team) => format!("/services?team={}", encode(&team)),
        None => "/services".to_owned(),
    };
    let services: Vec<Service> = signed_in_client()?.list_all(&path).await?;
    if json {
        return output::json(&services);
    }
    let rows = services
        .into_iter()
        .map(|s| vec![s.name, s.team, s.lifecycle, s.tier, or_dash(&first_line(&s.description))])
        .collect();
    output::table(&["name", "owner", "lifecycle", "tier", "description"], rows);
    Ok(())
}

pub async fn show(name: String, json: bool) -> Result<(), CliError> {
    let s: Service = signed_in_client()?.get(&format!("/services/{}", encode(&name))).await?;
    if json {
        return output::json(&s);
    }
    println!("service:     {}", s.name);
    if let Some(title) = &s.title {
        println!("title:       {title}");
    }
    println!("owner:       {}", s.team);
    if let Some(declared) = &s.declared_owner {
        let note = if s.owner_mismatch { " (does not match the owning team)" } else { "" };
        println!("declared:    {declared}{note}");
    }
    println!("description: {}", or_dash(&s.description));
    println!("lifecycle:   {}", s.lifecycle);
    println!("tier:        {}", s.tier);
    println!("on-call:     {}", or_dash(&s.on_call));
    println!("depends on:  {}", or_dash(&s.depends_on.join(", ")));
    println!("preview:     {}", s.preview_template.as_deref().unwrap_or("-"));
    if let Some(system) = &s.system {
        println!("system:      {system}");
    }
    if !s.tags.is_empty() {
        println!("tags:        {}", s.tags.join(", "));
    }
    if !s.provides_apis.is_empty() {
        println!("provides:    {}", s.provides_apis.join(", "));
    }
    if !s.consumes_apis.is_empty() {
        println!("consumes:    {}", s.consumes_apis.join(", "));
    }
    if !s.resources.is_empty() {
        println!("resources:   {}", s.resources.join(", "));
    }
    match (&s.git_url, &s.repo_url) {
        (Some(git_url), _) => println!("git remote:  {git_url}"),
        (None, repo_url) => println!("catalog-only: code at {}", repo_url.as_deref().unwrap_or("-")),
    }
    println!("created:     {}", short_time(&s.created_at));
    for link in &s.links {
        println!("link:        {} {}", link.name, link.url);
    }
    Ok(())
}

/// The flags of `services set`.
#[derive(Debug, Default)]
pub struct SetFlags {
    pub description: Option<String>,
    pub lifecycle: Option<String>,
    pub tier: Option<String>,
    pub on_call: Option<String>,
    pub links: Vec<String>,
    pub depends_on: Vec<String>,
    pub preview_template: Option<String>,
}

pub async fn set(name: String, flags: SetFlags, json: bool) -> Result<(), CliError> {
    let links = if flags.links.is_empty() {
        None
    } else {
        Some(flags.links.iter().map(|l| parse_link(l)).collect::<Result<Vec<_>, _>>()?)
    };
    let update = UpdateService {
        description: flags.description,
        lifecycle: flags.lifecycle,
        tier: flags.tier,
        on_call: flags.on_call,
        links,
        depends_on: if flags.depends_on.is_empty() { None } else { Some(flags.depends_on) },
        preview_template: flags.preview_template,
    };
    let nothing = serde_json::to_value(&update).map(|v| v.as_object().is_some_and(|o| o.is_empty())).unwrap_or(false);
    if nothing {
        return Err(CliError::usage("nothing to change: pass at least one flag (see `slipway services set --help`)"));
    }
    let service: Service = signed_in_client()?.patch(&format!("/services/{}", encode(&name)), &update).await?;
    if json {
        return output::json(&service);
    }
    println!("Updated service {}", service.name);
    Ok(())
}

pub async fn delete(name: String) -> Result<(), CliError> {
    signed_in_client()?.delete(&format!("/services/{}", encode(&name))).await?;
    println!("Deleted service {name}");
    Ok(())
}

/// `NAME=URL`.
fn parse_link(text: &str) -> Result<Link, CliError> {
    match text.split_once('=') {
        Some((name, url)) if !name.is_empty() && !url.is_empty() => {
            Ok(Link { name: name.to_owned(), url: url.to_owned() })
        }
        _ => Err(CliError::usage(format!(
            "--link {text:?} must be NAME=URL, e.g. runbook=https://wiki.example.com/shop"
        ))),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_name_equals_url() {
        let link = parse_link("docs=https://example.com/a=b").expect("valid");
        assert_eq!(link.name, "docs");
        assert_eq!(link.url, "https://example.com/a=b");
        assert!(parse_link("no-equals").is_err());
        assert!(parse_link("=https://x").is_err());
    }
}
