//! The platform team's side of the API: environment templates, clusters, team quotas,
//! and the DORA metrics everyone reads.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A published template version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TemplateSummary {
    pub name: String,
    pub version: String,
    pub description: String,
    pub builtin: bool,
    pub deprecated: bool,
    pub published_by: String,
    pub published_at: String,
}

/// A template version with its parameters and source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TemplateDetail {
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// Each parameter: `type`, `default`, `minimum`, `maximum`, `pattern`, `values`,
    /// `description`, `required`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: serde_json::Value,
    /// The YAML document as published.
    pub source: String,
}

/// Publish a template version (admins).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PublishTemplate {
    /// The YAML document.
    pub source: String,
}

/// A registered Kubernetes cluster (its kubeconfig is never returned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Cluster {
    pub name: String,
    pub context: String,
    /// The API server's URL.
    pub server: String,
    /// Environments there are served at `<service>-<env>.<base_domain>`.
    pub base_domain: String,
    /// The IngressClass of their Ingresses (empty: the cluster's default).
    pub ingress_class: String,
    /// `service/env` of the environments running there.
    pub environments: Vec<String>,
    pub created_by: String,
    pub created_at: String,
}

/// Register a cluster (admins).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddCluster {
    pub name: String,
    /// The kubeconfig document (YAML); stored encrypted.
    pub kubeconfig: String,
    /// The context to use [default: the kubeconfig's current context].
    #[serde(default)]
    pub context: Option<String>,
    /// [default: the server's --base-domain].
    #[serde(default)]
    pub base_domain: Option<String>,
    #[serde(default)]
    pub ingress_class: Option<String>,
}

/// A team's limits (null: unlimited) and what it uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TeamQuota {
    pub max_environments: Option<u32>,
    pub max_previews: Option<u32>,
    pub max_replicas: Option<u32>,
    pub max_memory_mb: Option<u64>,
    pub usage: Option<QuotaUsage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct QuotaUsage {
    pub environments: u64,
    pub previews: u64,
    pub replicas: u64,
    pub memory_mb: u64,
}

/// Set a team's limits (admins); a missing or null field is unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SetQuota {
    #[serde(default)]
    pub max_environments: Option<u32>,
    #[serde(default)]
    pub max_previews: Option<u32>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
    #[serde(default)]
    pub max_memory_mb: Option<u64>,
}

/// DORA's four keys for a service or a team over a window of days.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DoraMetrics {
    /// `service` or `team`.
    pub scope: String,
    pub name: String,
    /// 7, 30 or 90.
    pub days: u32,
    /// Successful deploys (new releases) of long-lived environments in the window.
    pub deployments: u32,
    pub deployments_per_day: f64,
    /// Median time from commit to live, in milliseconds.
    pub lead_time_ms: Option<i64>,
    /// Failed deploys and rollbacks over deploy attempts (0..1).
    pub change_failure_rate: Option<f64>,
    pub failures: u32,
    /// Median time from a failure to the next good release, in milliseconds.
    pub time_to_restore_ms: Option<i64>,
    /// Deployments per day, oldest first.
    pub daily_deployments: Vec<u32>,
}
