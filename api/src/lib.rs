//! The JSON types of Slipway's REST API (`/api/v1`), shared by the server and the CLI so
//! both sides agree on every field. Requests refuse unknown fields, so a typo is an error
//! rather than a silently ignored setting. Times are RFC 3339 strings in UTC.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

mod catalog;
pub use catalog::{CatalogImport, DescriptorFile, ImportReport, ImportedEntity, ImportedFile};

mod platform;
pub use platform::*;

/// An error, as RFC 9457 `application/problem+json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` or a slipway.dev URI).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field that is wrong, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One page of a list; pass `next_cursor` back as `?cursor=` to get the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// `POST /api/v1/user/password`: the current password and the new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// A bearer token (JWT) for the API.
    pub token: String,
    pub expires_at: String,
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    pub username: String,
    pub admin: bool,
    pub created_at: String,
}

/// The signed-in user with their teams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CurrentUser {
    pub username: String,
    pub admin: bool,
    pub teams: Vec<Membership>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Membership {
    pub team: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateTeam {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Team {
    pub name: String,
    pub created_at: String,
    pub members: Vec<TeamMember>,
    /// Names Backstage descriptors use for this team (`spec.owner: dcd_ccd`).
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// A change to a team.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateTeam {
    /// Replaces the team's aliases: Backstage group names descriptors use as owner.
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TeamMember {
    pub username: String,
    /// `maintainer` or `member`.
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AddMember {
    pub username: String,
    /// `maintainer` or `member` (default).
    #[serde(default)]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Link {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Service {
    pub name: String,
    /// The owning team.
    pub team: String,
    pub description: String,
    /// `experimental`, `production` or `deprecated`.
    pub lifecycle: String,
    /// `tier-1`, `tier-2` or `tier-3`.
    pub tier: String,
    pub on_call: String,
    pub links: Vec<Link>,
    pub depends_on: Vec<String>,
    pub preview_template: Option<String>,
    /// The owner the pushed `catalog-info.yaml` names, when it names one.
    #[serde(default)]
    pub declared_owner: Option<String>,
    /// The declared owner is neither the owning team (by name or alias) nor a member of it.
    #[serde(default)]
    pub owner_mismatch: bool,
    /// Only in the catalog (imported): no Slipway git repository or environments.
    #[serde(default)]
    pub catalog_only: bool,
    /// Where a catalog-only service's code lives.
    #[serde(default)]
    pub repo_url: Option<String>,
    /// Where to push: `git remote add slipway <git_url>`; none for a catalog-only service.
    pub git_url: Option<String>,
    /// Backstage's `metadata.title`.
    #[serde(default)]
    pub title: Option<String>,
    /// Backstage's `spec.type` (`service`, `website`…).
    #[serde(default, rename = "type")]
    pub spec_type: Option<String>,
    /// The system it is part of, as an entity reference.
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub provides_apis: Vec<String>,
    #[serde(default)]
    pub consumes_apis: Vec<String>,
    /// What it depends on that is not a service (resources), as entity references.
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateService {
    pub name: String,
    pub team: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub lifecycle: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub on_call: Option<String>,
    #[serde(default)]
    pub links: Option<Vec<Link>>,
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
}

/// A partial update: only the fields present change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<String>,
    /// Replaces all links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    /// Replaces all dependencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// The template of preview environments; an empty string clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_template: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateToken {
    pub name: String,
    /// Days until the token expires; none means it never does.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new token: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreatedToken {
    pub name: String,
    pub token: String,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Token {
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// Who: a username, or `anonymous`.
    pub actor: String,
    /// What: the method and route, e.g. `POST /api/v1/teams/{team}/members`.
    pub action: String,
    /// The path that was acted on.
    pub target: String,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    pub status: u16,
}

/// A pipeline run: what one trigger (push, manual deploy) did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Run {
    pub id: i64,
    pub service: String,
    /// The environment it ran for; none when no environment tracks the pushed branch.
    pub environment: Option<String>,
    /// `push`, `deploy`, `rollback`, `promote`, `config` or `upgrade`.
    pub trigger: String,
    pub git_ref: String,
    pub commit: String,
    pub actor: String,
    /// `preparing`, `queued`, `running`, `succeeded`, `failed`, `cancelled`,
    /// `superseded` or `skipped`.
    pub status: String,
    pub reason: String,
    /// The image built, e.g. `localhost/slipway/shop:1a2b3c4d5e6f`.
    pub image: Option<String>,
    pub image_id: Option<String>,
    /// The slipwayd replica bound to run it (the one that received the push), if any.
    pub node: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Stage {
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogLine {
    pub seq: i64,
    pub at: String,
    pub stage: String,
    pub line: String,
}

/// Log lines after a sequence number; pass `next_after` back as `?after=`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub next_after: i64,
    /// The run's status when the page was read.
    pub status: String,
    /// True once the run has ended and every line is stored.
    pub finished: bool,
}

/// A deploy without a push: build `git_ref` (default: the environment's branch) and run
/// the pipeline for `environment`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateRun {
    pub environment: String,
    #[serde(default)]
    pub git_ref: Option<String>,
}

/// An environment of a service: where it runs, which release serves, how many replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Environment {
    pub name: String,
    /// The branch whose pushes deploy here.
    pub branch: String,
    /// Desired replicas (on a cluster, its Deployment's count: an autoscaler's choice).
    pub replicas: u32,
    /// Replicas serving right now: those the app router sends traffic to, or on a cluster
    /// those its Deployment reports ready.
    pub healthy_replicas: u32,
    /// On a cluster, what its Deployments' conditions say is wrong (e.g. `Progressing:
    /// ProgressDeadlineExceeded: …`); absent when all is well or it runs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The current release's version (`vN`), if anything was deployed.
    pub release: Option<u32>,
    /// Set by a rollback: pushes are accepted but not deployed until `slipway deploy`.
    pub pinned: bool,
    pub url: String,
    /// The template it is made from, `NAME@VERSION`.
    pub template: String,
    /// The parameter values it was rendered with.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: serde_json::Value,
    /// A preview made by a push to an untracked branch.
    pub preview: bool,
    /// When it is destroyed (TTL), if it has one.
    pub expires_at: Option<String>,
    /// How long it may go without a request before it is destroyed, e.g. `24h`.
    pub idle_ttl: Option<String>,
    /// `local` or the cluster it runs on.
    pub runtime: String,
    pub created_by: String,
    pub created_at: String,
    /// What the app router served it over the last hour; absent on a cluster, whose
    /// Ingress serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

/// An environment's traffic through the app router over a window ending now: the last
/// hour, or since the environment was created when that is later. Includes the minute
/// still being counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Traffic {
    /// The window's length in seconds (at most 3600).
    pub window_seconds: u64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// The share of requests answered 5xx (0..1); absent without requests.
    pub error_rate: Option<f64>,
    /// Time to the response's head under which half of the requests were answered, in
    /// milliseconds (within 19 %); absent without requests.
    pub p50_ms: Option<f64>,
    /// The same for 99 % of them.
    pub p99_ms: Option<f64>,
}

/// Create an environment of a service from a template.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateEnvironment {
    pub name: String,
    /// `NAME` (the newest version that is not deprecated) or `NAME@VERSION`.
    pub template: String,
    /// Parameter values, typed (`3`, `true`) or as text (`"3"`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
    /// The branch whose pushes deploy here [default: the environment's name].
    #[serde(default)]
    pub branch: Option<String>,
    /// Destroy it after this long (`48h`, `7d`), at most the template's `ttl`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// `local` (the default) or a registered cluster.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Render and check only: nothing is created.
    #[serde(default)]
    pub dry_run: bool,
}

/// Change what an environment runs: another template version and/or parameter values
/// (merged over the current ones).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UpdateEnvironment {
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub dry_run: bool,
}

/// What an environment would run: the rendered plan, and for an existing environment
/// the difference from what runs now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvironmentPlan {
    pub environment: String,
    /// `NAME@VERSION`.
    pub template: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub parameters: serde_json::Value,
    /// The rendered spec: workloads, add-ons, policy.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub spec: serde_json::Value,
    /// A unified diff of the spec against the current one (existing environments only).
    pub diff: Option<String>,
}

/// The result of a create or an update: the plan, the environment (none for a dry run)
/// and the run deploying it (none when nothing was pushed yet, or nothing changed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EnvironmentChange {
    pub plan: EnvironmentPlan,
    pub environment: Option<Environment>,
    pub run: Option<Run>,
}

/// An immutable release `vN` of an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Release {
    pub version: u32,
    pub image: String,
    pub commit: String,
    pub run: Option<i64>,
    /// The config version the release runs with (0: no config).
    pub config_version: u32,
    pub created_by: String,
    pub created_at: String,
    pub current: bool,
}

/// One config var. A secret's value is never returned once set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigVar {
    pub key: String,
    /// The value; `null` for a secret.
    pub value: Option<String>,
    pub secret: bool,
}

/// An environment's config: its newest version.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Config {
    /// 0 until the first change.
    pub version: u32,
    pub vars: Vec<ConfigVar>,
    pub updated_by: Option<String>,
    pub updated_at: Option<String>,
}

/// One change to an environment's config: vars to set and keys to remove, as one new
/// config version.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigChange {
    /// `KEY: value` pairs to add or replace.
    #[serde(default)]
    pub set: std::collections::BTreeMap<String, String>,
    /// Store the `set` values as secrets: encrypted at rest, never shown again, masked in logs.
    #[serde(default)]
    pub secret: bool,
    /// Keys to remove.
    #[serde(default)]
    pub unset: Vec<String>,
}

/// The config after a change, and the run rolling it out (none before the first release).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConfigChanged {
    pub config: Config,
    pub run: Option<Run>,
}

/// Redeploy an earlier release (the one before the current by default).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RollbackRequest {
    #[serde(default)]
    pub to: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ScaleRequest {
    pub replicas: u32,
}

/// Run one environment's current image in another, without a rebuild.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PromoteRequest {
    pub from: String,
    pub to: String,
}
