//! `clusters add|list|remove` (admins add and remove).

use slipway_api::{AddCluster, Cluster};

use super::signed_in_client;
use crate::client::encode;
use crate::error::CliError;
use crate::output;

pub async fn add(
    name: String,
    kubeconfig: std::path::PathBuf,
    context: Option<String>,
    base_domain: Option<String>,
    ingress_class: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let content = std::fs::read_to_string(&kubeconfig)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", kubeconfig.display())))?;
    let req = AddCluster { name, kubeconfig: content, context, base_domain, ingress_class };
    let cluster: Cluster = signed_in_client()?.post("/clusters", &req).await?;
    if json {
        return output::json(&cluster);
    }
    println!(
        "Registered cluster {} ({}, context {}); environments there are served at *.{}",
        cluster.name, cluster.server, cluster.context, cluster.base_domain
    );
    Ok(())
}

pub async fn list(json: bool) -> Result<(), CliError> {
    let clusters: Vec<Cluster> = signed_in_client()?.list_all("/clusters").await?;
    if json {
        return output::json(&clusters);
    }
    let rows = clusters
        .into_iter()
        .map(|c| vec![c.name, c.server, c.context, c.base_domain, c.environments.len().to_string()])
        .collect();
    output::table(&["cluster", "server", "context", "domain", "environments"], rows);
    Ok(())
}

pub async fn remove(name: String) -> Result<(), CliError> {
    signed_in_client()?.delete(&format!("/clusters/{}", encode(&name))).await?;
    println!("Removed cluster {name}");
    Ok(())
}
