//! The subcommands of each command group (`slipway envs …`, `slipway templates …`),
//! as clap parses them; `main` dispatches them to `commands`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum EnvsCommand {
    /// List a service's environments.
    List {
        service: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one environment.
    Show {
        service: String,
        environment: String,
        #[arg(long)]
        json: bool,
    },
    /// Create an environment from a template; its branch's latest commit deploys at once.
    Create {
        service: String,
        environment: String,
        /// TEMPLATE or TEMPLATE@VERSION.
        #[arg(long)]
        template: String,
        /// A parameter value, KEY=VALUE (repeat for several).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// The branch whose pushes deploy here [default: the environment's name].
        #[arg(long)]
        branch: Option<String>,
        /// Destroy it after this long, e.g. 48h or 7d.
        #[arg(long)]
        ttl: Option<String>,
        /// local, or a registered cluster.
        #[arg(long)]
        runtime: Option<String>,
        /// Print the rendered plan (and, for an existing environment, the diff) only.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change an environment's template version or parameters (a new release).
    Update {
        service: String,
        environment: String,
        /// TEMPLATE@VERSION to move to.
        #[arg(long)]
        template: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print the diff against what runs, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop an environment's replicas and remove it with its releases and config.
    Destroy { service: String, environment: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesCommand {
    /// Every version of every template.
    List {
        #[arg(long)]
        json: bool,
    },
    /// A template's parameters and rules: TEMPLATE (newest) or TEMPLATE@VERSION.
    Show {
        template: String,
        #[arg(long)]
        json: bool,
    },
    /// Publish a new template version from a YAML file (admins).
    Publish {
        file: std::path::PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Deprecate TEMPLATE@VERSION: new environments cannot use it (admins).
    Deprecate { template: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClustersCommand {
    /// Register a cluster from a kubeconfig file (admins); it is stored encrypted.
    Add {
        name: String,
        #[arg(long, value_name = "FILE")]
        kubeconfig: std::path::PathBuf,
        /// The context to use [default: the file's current context].
        #[arg(long)]
        context: Option<String>,
        /// Environments there are served at <service>-<env>.<DOMAIN> [default: the server's].
        #[arg(long, value_name = "DOMAIN")]
        base_domain: Option<String>,
        /// The IngressClass of their Ingresses [default: the cluster's default].
        #[arg(long)]
        ingress_class: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The registered clusters.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a cluster no environment runs on (admins).
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuotasCommand {
    /// A team's limits and usage.
    Show {
        team: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a team's limits (admins); a limit left out is unlimited.
    Set {
        team: String,
        #[arg(long)]
        environments: Option<u32>,
        #[arg(long)]
        previews: Option<u32>,
        #[arg(long)]
        replicas: Option<u32>,
        /// Total memory limit in MiB.
        #[arg(long, value_name = "MIB")]
        memory_mb: Option<u64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Set vars (one new config version, rolled out as a new release).
    Set {
        service: String,
        environment: String,
        /// KEY=VALUE pairs; with --secret, a lone KEY reads its value from stdin.
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Store the values as secrets: encrypted at rest, never shown again, masked in logs.
        #[arg(long)]
        secret: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the vars (secret values are not shown).
    List {
        service: String,
        environment: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove vars (one new config version, rolled out as a new release).
    Unset {
        service: String,
        environment: String,
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RunsCommand {
    /// A run with its stages and their durations.
    Show {
        run: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running run.
    Cancel { run: i64 },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Create a token; prints it alone on stdout, once.
    Create {
        name: String,
        /// Days until it expires [default: never].
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List your tokens (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; it stops working at once.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Create a user (admins).
    Create {
        username: String,
        /// Make the user a platform admin.
        #[arg(long)]
        admin: bool,
        /// Read the new user's password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TeamsCommand {
    /// Create a team (admins).
    Create {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List teams.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a team and its members.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Add a member, or change a member's role (team maintainers and admins).
    Add {
        team: String,
        user: String,
        #[arg(long, value_parser = ["maintainer", "member"])]
        role: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove a member (team maintainers and admins).
    Remove { team: String, user: String },
    /// Delete a team that owns no services (admins).
    Delete { team: String },
    /// Change a team: its Backstage aliases, the group names descriptors use for it
    /// as owner (replaces the list; team maintainers and admins).
    Set {
        team: String,
        /// A Backstage group name for this team (repeat for more).
        #[arg(long = "alias", value_name = "BACKSTAGE_NAME")]
        aliases: Vec<String>,
        /// Remove every alias.
        #[arg(long, conflicts_with = "aliases")]
        clear_aliases: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServicesCommand {
    /// Create a service owned by one of your teams.
    Create {
        name: String,
        #[arg(long)]
        team: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List services.
    List {
        /// Only services this team owns.
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a service's catalog entry.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change catalog metadata (owning team and admins).
    Set {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_parser = ["experimental", "production", "deprecated"])]
        lifecycle: Option<String>,
        #[arg(long, value_parser = ["tier-1", "tier-2", "tier-3"])]
        tier: Option<String>,
        #[arg(long)]
        on_call: Option<String>,
        /// NAME=URL; repeat for several. Replaces all links.
        #[arg(long = "link", value_name = "NAME=URL")]
        links: Vec<String>,
        /// A service this one depends on; repeat for several. Replaces all.
        #[arg(long = "depends-on", value_name = "SERVICE")]
        depends_on: Vec<String>,
        /// Template for preview environments of unmatched branches ("" clears it).
        #[arg(long)]
        preview_template: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a service (owning team and admins).
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Import Backstage descriptors as catalog-only services and entities: files,
    /// directories (recursively, *.yaml and *.yml) or URLs; Location targets are
    /// followed. A dry run unless --apply.
    Import {
        #[arg(required = true, value_name = "PATH|URL")]
        paths: Vec<String>,
        /// The owning team of entities whose spec.owner names no team (nor alias).
        #[arg(long)]
        team: Option<String>,
        /// Write the plan (one transaction per batch).
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        json: bool,
    },
}
