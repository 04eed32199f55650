//! `slipway`: the command-line client of Slipway. Commands are declared here with clap
//! and run by the modules in `commands/`; every error prints one line and exits non-zero.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod client;
mod commands;
mod config;
mod error;
mod output;
mod subcommands;

use commands::{
    audit, auth, catalog, clusters, config_vars, environments, quotas, runs, services, teams, templates, tokens, users,
};
use error::CliError;
use subcommands::{
    CatalogCommand, ClustersCommand, ConfigCommand, EnvsCommand, QuotasCommand, RunsCommand, ServicesCommand,
    TeamsCommand, TemplatesCommand, TokensCommand, UsersCommand,
};

#[derive(Debug, Parser)]
#[command(name = "slipway", version, about = "Slipway: git push to a running service", propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in to a Slipway server and store an API token for this machine.
    Login {
        /// The server URL [default: SLIPWAY_SERVER, else the stored one, else http://127.0.0.1:7700].
        #[arg(long)]
        server: Option<String>,
        #[arg(long, short)]
        username: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke this machine's token and forget the stored login.
    Logout,
    /// Change your password (every session of yours signed in with the old one ends;
    /// API tokens, like this machine's, keep working).
    Passwd {
        /// Read the current and the new password from the first two lines of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show who you are signed in as, and your teams.
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Manage your API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Manage user accounts (admins).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage teams and their members.
    #[command(subcommand)]
    Teams(TeamsCommand),
    /// Manage services and their catalog metadata.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// The catalog beyond Slipway's own services: import Backstage descriptors.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Pipeline runs of a service (`slipway runs SERVICE`), or `show RUN` / `cancel RUN`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Runs {
        #[command(subcommand)]
        command: Option<RunsCommand>,
        /// The service whose runs to list.
        #[arg(required = true)]
        service: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The build/deploy log of a run (the latest by default); -f follows it live.
    Logs {
        service: String,
        #[arg(long)]
        run: Option<i64>,
        #[arg(short, long)]
        follow: bool,
    },
    /// Rebuild and deploy an environment without a push.
    Deploy {
        service: String,
        environment: String,
        /// Branch, tag or commit to build [default: the environment's branch].
        #[arg(long = "ref")]
        git_ref: Option<String>,
    },
    /// A service's environments.
    #[command(subcommand)]
    Envs(EnvsCommand),
    /// An environment's config vars and secrets.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Environment templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Team quotas.
    #[command(subcommand)]
    Quotas(QuotasCommand),
    /// Kubernetes clusters environments can run on.
    #[command(subcommand)]
    Clusters(ClustersCommand),
    /// The releases of an environment (the current one marked *).
    Releases {
        service: String,
        environment: String,
        #[arg(long)]
        json: bool,
    },
    /// Redeploy an earlier release (the previous one by default) and pin the environment.
    Rollback {
        service: String,
        environment: String,
        /// The release to go back to, e.g. v3.
        #[arg(long)]
        to: Option<String>,
    },
    /// Run one environment's current image in another, without a rebuild.
    Promote {
        service: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Set an environment's number of replicas.
    Scale {
        service: String,
        environment: String,
        replicas: u32,
        #[arg(long)]
        json: bool,
    },
    /// The running containers' output of an environment.
    AppLogs {
        service: String,
        environment: String,
        /// Keep streaming new output.
        #[arg(short, long)]
        follow: bool,
        /// Lines per replica to show first.
        #[arg(long, default_value_t = 100)]
        tail: u32,
    },
    /// A service's environments, current releases, health, recent runs and DORA metrics.
    Status {
        service: String,
        /// The DORA metrics' window: 7, 30 or 90 days.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(7..=90))]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log (admins).
    Audit {
        /// How many of the newest entries to show (1-200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Git credential helper: `git config --global credential.helper '!slipway git-credential'`.
    GitCredential {
        /// get, store or erase (sent by git).
        operation: String,
    },
    /// Print a shell completion script, e.g. `slipway completions bash > /etc/bash_completion.d/slipway`.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Login { server, username, password_stdin } => auth::login(server, username, password_stdin).await,
        Command::Logout => auth::logout().await,
        Command::Passwd { password_stdin } => auth::passwd(password_stdin).await,
        Command::Whoami { json } => auth::whoami(json).await,
        Command::Tokens(cmd) => match cmd {
            TokensCommand::Create { name, expires_in_days, json } => tokens::create(name, expires_in_days, json).await,
            TokensCommand::List { json } => tokens::list(json).await,
            TokensCommand::Revoke { name } => tokens::revoke(name).await,
        },
        Command::Users(cmd) => match cmd {
            UsersCommand::Create { username, admin, password_stdin, json } => {
                users::create(username, admin, password_stdin, json).await
            }
            UsersCommand::List { json } => users::list(json).await,
        },
        Command::Teams(cmd) => match cmd {
            TeamsCommand::Create { name, json } => teams::create(name, json).await,
            TeamsCommand::List { json } => teams::list(json).await,
            TeamsCommand::Show { name, json } => teams::show(name, json).await,
            TeamsCommand::Add { team, user, role, json } => teams::add(team, user, role, json).await,
            TeamsCommand::Remove { team, user } => teams::remove(team, user).await,
            TeamsCommand::Delete { team } => teams::delete(team).await,
            TeamsCommand::Set { team, aliases, clear_aliases, json } => {
                teams::set(team, aliases, clear_aliases, json).await
            }
        },
        Command::Services(cmd) => match cmd {
            ServicesCommand::Create { name, team, description, json } => {
                services::create(name, team, description, json).await
            }
            ServicesCommand::List { team, json } => services::list(team, json).await,
            ServicesCommand::Show { name, json } => services::show(name, json).await,
            ServicesCommand::Set {
                name,
                description,
                lifecycle,
                tier,
                on_call,
                links,
                depends_on,
                preview_template,
                json,
            } => {
                let flags =
                    services::SetFlags { description, lifecycle, tier, on_call, links, depends_on, preview_template };
                services::set(name, flags, json).await
            }
            ServicesCommand::Delete { name } => services::delete(name).await,
        },
        Command::Catalog(CatalogCommand::Import { paths, team, apply, json }) => {
            catalog::import(paths, team, apply, json).await
        }
        Command::Audit { limit, json } => audit::list(limit, json).await,
        Command::Runs { command, service, json } => match (command, service) {
            (Some(RunsCommand::Show { run, json }), _) => runs::show(run, json).await,
            (Some(RunsCommand::Cancel { run }), _) => runs::cancel(run).await,
            (None, Some(service)) => runs::list(service, json).await,
            (None, None) => Err(CliError::usage("name a service: slipway runs SERVICE")),
        },
        Command::Envs(cmd) => match cmd {
            EnvsCommand::List { service, json } => environments::list(service, json).await,
            EnvsCommand::Show { service, environment, json } => environments::show(service, environment, json).await,
            EnvsCommand::Create { service, environment, template, sets, branch, ttl, runtime, dry_run, json } => {
                environments::create(service, environment, template, sets, branch, ttl, runtime, dry_run, json).await
            }
            EnvsCommand::Update { service, environment, template, sets, dry_run, json } => {
                environments::update(service, environment, template, sets, dry_run, json).await
            }
            EnvsCommand::Destroy { service, environment } => environments::destroy(service, environment).await,
        },
        Command::Templates(cmd) => match cmd {
            TemplatesCommand::List { json } => templates::list(json).await,
            TemplatesCommand::Show { template, json } => templates::show(template, json).await,
            TemplatesCommand::Publish { file, json } => templates::publish(file, json).await,
            TemplatesCommand::Deprecate { template } => templates::deprecate(template).await,
        },
        Command::Clusters(cmd) => match cmd {
            ClustersCommand::Add { name, kubeconfig, context, base_domain, ingress_class, json } => {
                clusters::add(name, kubeconfig, context, base_domain, ingress_class, json).await
            }
            ClustersCommand::List { json } => clusters::list(json).await,
            ClustersCommand::Remove { name } => clusters::remove(name).await,
        },
        Command::Quotas(cmd) => match cmd {
            QuotasCommand::Show { team, json } => quotas::show(team, json).await,
            QuotasCommand::Set { team, environments, previews, replicas, memory_mb, json } => {
                let req = slipway_api::SetQuota {
                    max_environments: environments,
                    max_previews: previews,
                    max_replicas: replicas,
                    max_memory_mb: memory_mb,
                };
                quotas::set(team, req, json).await
            }
        },
        Command::Config(cmd) => match cmd {
            ConfigCommand::Set { service, environment, pairs, secret, json } => {
                config_vars::set(service, environment, pairs, secret, json).await
            }
            ConfigCommand::List { service, environment, json } => config_vars::list(service, environment, json).await,
            ConfigCommand::Unset { service, environment, keys, json } => {
                config_vars::unset(service, environment, keys, json).await
            }
        },
        Command::Releases { service, environment, json } => environments::releases(service, environment, json).await,
        Command::Rollback { service, environment, to } => environments::rollback(service, environment, to).await,
        Command::Promote { service, from, to } => environments::promote(service, from, to).await,
        Command::Scale { service, environment, replicas, json } => {
            environments::scale(service, environment, replicas, json).await
        }
        Command::Status { service, days, json } => environments::status(service, days, json).await,
        Command::AppLogs { service, environment, follow, tail } => {
            environments::app_logs(service, environment, follow, tail).await
        }
        Command::Logs { service, run, follow } => runs::logs(service, run, follow).await,
        Command::Deploy { service, environment, git_ref } => runs::deploy(service, environment, git_ref).await,
        Command::GitCredential { operation } => commands::git_credential::run(&operation),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "slipway", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
