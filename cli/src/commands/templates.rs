//! `templates list|show|publish|deprecate`.

use slipway_api::{PublishTemplate, TemplateDetail, TemplateSummary};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output::{self, short_time};

pub async fn list(json: bool) -> Result<(), CliError> {
    let templates: Vec<TemplateSummary> = signed_in_client()?.list_all("/templates").await?;
    if json {
        return output::json(&templates);
    }
    let rows = templates
        .into_iter()
        .map(|t| {
            let state = match (t.deprecated, t.builtin) {
                (true, _) => "deprecated",
                (false, true) => "built-in",
                (false, false) => "",
            };
            vec![t.name, t.version, state.to_owned(), t.description]
        })
        .collect();
    output::table(&["template", "version", "", "description"], rows);
    Ok(())
}

fn path(reference: &str) -> String {
    match reference.split_once('@') {
        Some((name, version)) => format!("/templates/{}/{}", encode(name), encode(version)),
        None => format!("/templates/{}", encode(reference)),
    }
}

fn print(t: &TemplateDetail) {
    println!("{}@{}{}", t.summary.name, t.summary.version, if t.summary.deprecated { " (deprecated)" } else { "" });
    if !t.summary.description.is_empty() {
        println!("{}", t.summary.description);
    }
    println!("published by {} at {}", t.summary.published_by, short_time(&t.summary.published_at));
    let Some(params) = t.parameters.as_object().filter(|p| !p.is_empty()) else {
        println!("no parameters");
        return;
    };
    let rows = params
        .iter()
        .map(|(name, p)| {
            let field = |k: &str| p.get(k).filter(|v| !v.is_null()).map(|v| v.to_string()).unwrap_or_default();
            let mut rules = Vec::new();
            for (key, label) in [("minimum", "min"), ("maximum", "max"), ("pattern", "pattern"), ("values", "one of")] {
                let value = field(key);
                if !value.is_empty() {
                    rules.push(format!("{label} {value}"));
                }
            }
            if p.get("required").and_then(|r| r.as_bool()).unwrap_or(false) {
                rules.push("required".to_owned());
            }
            vec![
                name.clone(),
                p.get("type").and_then(|t| t.as_str()).unwrap_or_default().to_owned(),
                field("default"),
                rules.join(", "),
                p.get("description").and_then(|d| d.as_str()).unwrap_or_default().to_owned(),
            ]
        })
        .collect();
    output::table(&["parameter", "type", "default", "rules", "description"], rows);
}

pub async fn show(reference: String, json: bool) -> Result<(), CliError> {
    let t: TemplateDetail = signed_in_client()?.get(&path(&reference)).await?;
    if json {
        return output::json(&t);
    }
    print(&t);
    Ok(())
}

pub async fn publish(file: std::path::PathBuf, json: bool) -> Result<(), CliError> {
    let source =
        std::fs::read_to_string(&file).map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?;
    let t: TemplateDetail = signed_in_client()?.post("/templates", &PublishTemplate { source }).await?;
    if json {
        return output::json(&t);
    }
    println!("Published {}@{}", t.summary.name, t.summary.version);
    Ok(())
}

pub async fn deprecate(reference: String) -> Result<(), CliError> {
    let (name, version) = reference
        .split_once('@')
        .ok_or_else(|| CliError::usage(format!("{reference:?} is not NAME@VERSION, e.g. web@1.0.0")))?;
    let path = format!("/templates/{}/{}/deprecate", encode(name), encode(version));
    let t: TemplateSummary = signed_in_client()?.post(&path, &serde_json::json!({})).await?;
    println!("Deprecated {}@{}: new environments cannot use it", t.name, t.version);
    Ok(())
}
