//! slipwayd's one typed configuration: command-line flags, each also an environment
//! variable `SLIPWAY_<FLAG>` and a key of the TOML file given by `--config`. Precedence:
//! flag or environment variable, then the file, then the defaults. Everything is
//! validated here, before anything starts, with messages that say how to fix it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, ValueEnum};
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const DEFAULT_APPS_LISTEN: &str = "127.0.0.1:7780";

/// Where environments run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Containers on this machine's Podman or Docker engine.
    Local,
    /// Registered Kubernetes clusters.
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Subcommands run by git, not by people.
#[derive(Debug, clap::Subcommand)]
pub enum Internal {
    /// Run as a git hook (slipwayd installs it; git runs it during a push).
    #[command(hide = true)]
    Hook { name: String },
}

/// The command line. Every flag is optional here so that the file can supply it.
#[derive(Debug, Parser)]
#[command(name = "slipwayd", version, about = "The Slipway server: portal, REST API and git endpoint")]
pub struct Args {
    #[command(subcommand)]
    pub internal: Option<Internal>,
    /// TOML file with any of the settings below (keys as the flags, with `_`).
    #[arg(long, env = "SLIPWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the portal, API and git endpoint [default: 127.0.0.1:7700].
    #[arg(long, env = "SLIPWAY_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Address of the app router [default: 127.0.0.1:7780].
    #[arg(long, env = "SLIPWAY_APPS_LISTEN", value_name = "ADDR")]
    pub apps_listen: Option<String>,
    /// Directory for the SQLite database, repositories and keys
    /// [default: ~/.local/share/slipway].
    #[arg(long, env = "SLIPWAY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB` [default: SQLite in the data dir].
    #[arg(long, env = "SLIPWAY_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where environments run [default: local].
    #[arg(long, env = "SLIPWAY_RUNTIME")]
    pub runtime: Option<RuntimeKind>,
    /// The container engine's Docker-compatible API, e.g. unix:///run/podman/podman.sock,
    /// or `none` for a catalog-only installation [default: DOCKER_HOST, else the first
    /// engine socket found].
    #[arg(long, env = "SLIPWAY_ENGINE", value_name = "URL")]
    pub engine: Option<String>,
    /// Accept an engine that runs containers as host root (Docker's default): a build or
    /// app that escapes its container then owns the host. Without it slipwayd refuses one.
    #[arg(long, env = "SLIPWAY_ALLOW_ROOTFUL_ENGINE")]
    pub allow_rootful_engine: bool,
    /// Registry images are pushed to, HOST[/PREFIX] (required for kubernetes).
    #[arg(long, env = "SLIPWAY_REGISTRY", value_name = "HOST[/PREFIX]")]
    pub registry: Option<String>,
    /// User name for --registry (with SLIPWAY_REGISTRY_PASSWORD).
    #[arg(long, env = "SLIPWAY_REGISTRY_USERNAME", value_name = "USER")]
    pub registry_username: Option<String>,
    /// Password or token for --registry.
    #[arg(long, env = "SLIPWAY_REGISTRY_PASSWORD", value_name = "SECRET", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// The URL users reach this server at, shown in git remotes [default: http://LISTEN].
    #[arg(long, env = "SLIPWAY_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Log format [default: text].
    #[arg(long, env = "SLIPWAY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Secret that signs session tokens (at least 32 characters); replicas sharing a
    /// database need the same one [default: a key generated into the data dir].
    #[arg(long, env = "SLIPWAY_JWT_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Key that encrypts config secrets at rest: 32 bytes as 64 hex digits or base64;
    /// replicas sharing a database need the same one [default: a key generated into the
    /// data dir].
    #[arg(long, env = "SLIPWAY_SECRET_KEY", value_name = "KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// With --runtime kubernetes: the registered cluster environments go to when none
    /// is named.
    #[arg(long, env = "SLIPWAY_DEFAULT_CLUSTER", value_name = "NAME")]
    pub default_cluster: Option<String>,
    /// How many of each environment's newest releases keep their image, so rollback to
    /// them needs no rebuild [default: 10]; older build images are removed.
    #[arg(long, env = "SLIPWAY_IMAGE_RETENTION", value_name = "RELEASES")]
    pub image_retention: Option<u32>,
    /// How long a run's claim lasts without renewal, in seconds [default: 30]. Another
    /// replica ends the runs of one that stopped renewing after this long.
    #[arg(long, env = "SLIPWAY_LEASE_SECONDS", value_name = "SECONDS")]
    pub lease_seconds: Option<u64>,
    /// On SIGTERM, how long the runs executing here get to finish, in seconds [default:
    /// 25, under Kubernetes' 30 s grace]; then they are handed to another replica
    /// (`--shared-data-dir`) or end as interrupted.
    #[arg(long, env = "SLIPWAY_SHUTDOWN_GRACE", value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
    /// Replicas share the data dir (one volume mounted by every replica, as on
    /// Kubernetes): a run may then be executed by any replica, not only the one that
    /// received its push or request, since every replica can read its build context.
    #[arg(long, env = "SLIPWAY_SHARED_DATA_DIR")]
    pub shared_data_dir: bool,
    /// This process's id in leases and run records [default: one kept in the data dir].
    /// Replicas sharing a data dir (Kubernetes) each need their own, e.g. the pod name.
    #[arg(long, env = "SLIPWAY_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// The image of `postgres` add-ons [default: docker.io/library/postgres:16].
    #[arg(long, env = "SLIPWAY_POSTGRES_IMAGE", value_name = "IMAGE")]
    pub postgres_image: Option<String>,
    /// The image of `redis` add-ons [default: docker.io/library/redis:7].
    #[arg(long, env = "SLIPWAY_REDIS_IMAGE", value_name = "IMAGE")]
    pub redis_image: Option<String>,
    /// How long a session token from `login` lives, in hours [default: 12].
    #[arg(long, env = "SLIPWAY_SESSION_HOURS", value_name = "HOURS")]
    pub session_hours: Option<u32>,
    /// Largest git push accepted, in MiB [default: 512].
    #[arg(long, env = "SLIPWAY_MAX_PUSH_MB", value_name = "MIB")]
    pub max_push_mb: Option<u64>,
    /// Largest size a repository may grow to by a push, in MiB [default: 2048].
    #[arg(long, env = "SLIPWAY_MAX_REPO_MB", value_name = "MIB")]
    pub max_repo_mb: Option<u64>,
    /// Largest build context (the files a build is sent), in MiB [default: 512].
    #[arg(long, env = "SLIPWAY_MAX_CONTEXT_MB", value_name = "MIB")]
    pub max_context_mb: Option<u64>,
    /// How many pipeline runs execute at once [default: 2].
    #[arg(long, env = "SLIPWAY_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// The domain environments are served under: `<service>-<env>.<domain>` [default: localhost].
    #[arg(long, env = "SLIPWAY_BASE_DOMAIN", value_name = "DOMAIN")]
    pub base_domain: Option<String>,
    /// How long new replicas have to pass their health check, in seconds [default: 60].
    #[arg(long, env = "SLIPWAY_HEALTH_TIMEOUT", value_name = "SECONDS")]
    pub health_timeout: Option<u64>,
    /// How long a replica taken out of the router (a rollout, a scale-down) may finish
    /// the requests it was sent before it is stopped anyway, in seconds [default: 30]; a
    /// template's `policy.drain_seconds` wins.
    #[arg(long, env = "SLIPWAY_DRAIN_SECONDS", value_name = "SECONDS")]
    pub drain_seconds: Option<u64>,
    /// How long a deploy stage may take from start to the route switch (waiting for
    /// another deploy of the environment, starting replicas, their health checks, a
    /// cluster rollout), in seconds [default: 300]; the release command has its own limit.
    #[arg(long, env = "SLIPWAY_DEPLOY_TIMEOUT", value_name = "SECONDS")]
    pub deploy_timeout: Option<u64>,
    /// How long a release command (`[deploy] release` in slipway.toml) may run, in
    /// seconds [default: 600].
    #[arg(long, env = "SLIPWAY_RELEASE_TIMEOUT", value_name = "SECONDS")]
    pub release_timeout: Option<u64>,
    /// How long a new add-on (postgres, redis) has to accept connections, in seconds
    /// [default: 90].
    #[arg(long, env = "SLIPWAY_ADDON_TIMEOUT", value_name = "SECONDS")]
    pub addon_timeout: Option<u64>,
    /// How long a build may take, in seconds [default: 900].
    #[arg(long, env = "SLIPWAY_BUILD_TIMEOUT", value_name = "SECONDS")]
    pub build_timeout: Option<u64>,
    /// Largest number of database connections [default: 16].
    #[arg(long, env = "SLIPWAY_DATABASE_MAX_CONNECTIONS", value_name = "N")]
    pub database_max_connections: Option<u32>,
}

/// The TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    apps_listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    runtime: Option<RuntimeKind>,
    engine: Option<String>,
    allow_rootful_engine: Option<bool>,
    shared_data_dir: Option<bool>,
    registry: Option<String>,
    registry_username: Option<String>,
    registry_password: Option<String>,
    public_url: Option<String>,
    log_format: Option<LogFormat>,
    jwt_secret: Option<String>,
    secret_key: Option<String>,
    postgres_image: Option<String>,
    redis_image: Option<String>,
    default_cluster: Option<String>,
    node_id: Option<String>,
    lease_seconds: Option<u64>,
    shutdown_grace: Option<u64>,
    image_retention: Option<u32>,
    session_hours: Option<u32>,
    max_push_mb: Option<u64>,
    max_repo_mb: Option<u64>,
    max_context_mb: Option<u64>,
    workers: Option<usize>,
    build_timeout: Option<u64>,
    base_domain: Option<String>,
    health_timeout: Option<u64>,
    drain_seconds: Option<u64>,
    deploy_timeout: Option<u64>,
    release_timeout: Option<u64>,
    addon_timeout: Option<u64>,
    database_max_connections: Option<u32>,
}

/// The validated configuration. `Debug` masks secrets.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub apps_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub runtime: RuntimeKind,
    pub engine: Option<String>,
    pub allow_rootful_engine: bool,
    /// Runs go to whichever replica claims them first (see `Args::shared_data_dir`).
    pub shared_data_dir: bool,
    pub registry: Option<String>,
    pub registry_username: Option<String>,
    pub registry_password: Option<String>,
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    pub jwt_secret: Option<String>,
    pub secret_key: Option<String>,
    pub postgres_image: Option<String>,
    pub redis_image: Option<String>,
    /// Where environments run when none is named: `local` or a cluster.
    pub default_runtime: String,
    pub node_id: Option<String>,
    pub lease_seconds: u64,
    pub shutdown_grace: u64,
    pub image_retention: u32,
    pub session_hours: u32,
    pub max_push_mb: u64,
    pub max_repo_mb: u64,
    pub max_context_mb: u64,
    pub workers: usize,
    pub build_timeout: u64,
    pub base_domain: String,
    pub health_timeout: u64,
    pub drain_seconds: u64,
    pub deploy_timeout: u64,
    pub release_timeout: u64,
    pub addon_timeout: u64,
    pub database_max_connections: u32,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("apps_listen", &self.apps_listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &slipway_store::redact_url(&self.database_url))
            .field("runtime", &self.runtime)
            .field("engine", &self.engine)
            .field("allow_rootful_engine", &self.allow_rootful_engine)
            .field("shared_data_dir", &self.shared_data_dir)
            .field("registry", &self.registry)
            .field("registry_username", &self.registry_username)
            .field("registry_password", &self.registry_password.as_ref().map(|_| "***"))
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "***"))
            .field("default_runtime", &self.default_runtime)
            .field("node_id", &self.node_id)
            .field("lease_seconds", &self.lease_seconds)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("image_retention", &self.image_retention)
            .field("postgres_image", &self.postgres_image)
            .field("redis_image", &self.redis_image)
            .field("session_hours", &self.session_hours)
            .field("max_push_mb", &self.max_push_mb)
            .field("max_repo_mb", &self.max_repo_mb)
            .field("max_context_mb", &self.max_context_mb)
            .field("workers", &self.workers)
            .field("build_timeout", &self.build_timeout)
            .field("base_domain", &self.base_domain)
            .field("health_timeout", &self.health_timeout)
            .field("drain_seconds", &self.drain_seconds)
            .field("deploy_timeout", &self.deploy_timeout)
            .field("release_timeout", &self.release_timeout)
            .field("addon_timeout", &self.addon_timeout)
            .field("database_max_connections", &self.database_max_connections)
            .finish()
    }
}

/// A setting is wrong; the message names it and says how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// A number setting must lie in `range` (`unit`, e.g. "seconds", is named in the error).
fn in_range<T: PartialOrd + fmt::Display>(
    flag: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
    unit: &str,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
    Err(err(format!("{flag} must be between {} and {}{unit}, not {value}", range.start(), range.end())))
}

impl Config {
    /// Merges flags/environment over the file over the defaults, then validates.
    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = parse_addr("--listen", args.listen.or(file.listen).as_deref().unwrap_or(DEFAULT_LISTEN))?;
        let apps_listen = parse_addr(
            "--apps-listen",
            args.apps_listen.or(file.apps_listen).as_deref().unwrap_or(DEFAULT_APPS_LISTEN),
        )?;
        let data_dir = match args.data_dir.or(file.data_dir) {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        if data_dir.as_os_str().is_empty() {
            return Err(err("--data-dir must not be empty"));
        }
        // Absolute once, here: git, hooks and the checks on their paths all see one form.
        let data_dir =
            std::path::absolute(&data_dir).map_err(|e| err(format!("--data-dir {}: {e}", data_dir.display())))?;
        let database_url = match args.database_url.or(file.database_url) {
            Some(url) => validate_database_url(url)?,
            None => format!("sqlite://{}", data_dir.join("slipway.db").display()),
        };
        let runtime = args.runtime.or(file.runtime).unwrap_or(RuntimeKind::Local);
        let engine = args.engine.or(file.engine).map(validate_engine).transpose()?;
        let registry = args.registry.or(file.registry).map(validate_registry).transpose()?;
        if runtime == RuntimeKind::Kubernetes && registry.is_none() {
            return Err(err(
                "--runtime kubernetes needs --registry HOST[/PREFIX]: clusters pull images from a registry",
            ));
        }
        let default_cluster = args.default_cluster.or(file.default_cluster);
        let default_runtime = match (runtime, default_cluster) {
            (RuntimeKind::Local, None) => "local".to_owned(),
            (RuntimeKind::Local, Some(_)) => {
                return Err(err("--default-cluster goes with --runtime kubernetes"));
            }
            (RuntimeKind::Kubernetes, None) => {
                return Err(err(
                    "--runtime kubernetes needs --default-cluster NAME: the registered cluster environments go to",
                ));
            }
            (RuntimeKind::Kubernetes, Some(name)) => {
                slipway_core::names::validate_name(&name)
                    .map_err(|e| err(format!("--default-cluster {name:?} {e}")))?;
                name
            }
        };
        let node_id = args.node_id.or(file.node_id);
        if let Some(id) = &node_id
            && (id.is_empty()
                || id.len() > 63
                || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
        {
            return Err(err(format!("--node-id {id:?} must be 1-63 lower-case letters, digits, '-' or '.'")));
        }
        let shared_data_dir = args.shared_data_dir || file.shared_data_dir.unwrap_or(false);
        if shared_data_dir && node_id.is_none() {
            // The id kept in the data dir would be every replica's: one replica would end
            // the others' runs as its own at its next start.
            return Err(err("--shared-data-dir needs --node-id: each replica its own (e.g. the pod name)"));
        }
        let lease_seconds = args.lease_seconds.or(file.lease_seconds).unwrap_or(30);
        in_range("--lease-seconds", lease_seconds, 3..=3600, "")?;
        let shutdown_grace = args.shutdown_grace.or(file.shutdown_grace).unwrap_or(25);
        in_range("--shutdown-grace", shutdown_grace, 0..=3600, "")?;
        let image_retention = args.image_retention.or(file.image_retention).unwrap_or(10);
        in_range("--image-retention", image_retention, 1..=1000, "")?;
        let registry_username = args.registry_username.or(file.registry_username);
        let registry_password = args.registry_password.or(file.registry_password);
        if registry_username.is_some() != registry_password.is_some() {
            return Err(err("--registry-username and --registry-password (SLIPWAY_REGISTRY_PASSWORD) go together"));
        }
        if registry_username.is_some() && registry.is_none() {
            return Err(err("--registry-username needs --registry HOST[/PREFIX]"));
        }
        let public_url = args.public_url.or(file.public_url).map(validate_public_url).transpose()?;
        let jwt_secret = args.jwt_secret.or(file.jwt_secret);
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(err("--jwt-secret (SLIPWAY_JWT_SECRET) must be at least 32 characters long"));
        }
        let session_hours = args.session_hours.or(file.session_hours).unwrap_or(12);
        in_range("--session-hours", session_hours, 1..=24 * 90, "")?;
        let max_push_mb = args.max_push_mb.or(file.max_push_mb).unwrap_or(512);
        let max_repo_mb = args.max_repo_mb.or(file.max_repo_mb).unwrap_or(2048);
        let max_context_mb = args.max_context_mb.or(file.max_context_mb).unwrap_or(512);
        for (flag, value) in
            [("--max-push-mb", max_push_mb), ("--max-repo-mb", max_repo_mb), ("--max-context-mb", max_context_mb)]
        {
            in_range(flag, value, 1..=1024 * 1024, "(MiB)")?;
        }
        let workers = args.workers.or(file.workers).unwrap_or(2);
        in_range("--workers", workers, 1..=64, "")?;
        let build_timeout = args.build_timeout.or(file.build_timeout).unwrap_or(900);
        in_range("--build-timeout", build_timeout, 1..=24 * 3600, "seconds")?;
        let base_domain = args.base_domain.or(file.base_domain).unwrap_or_else(|| "localhost".to_owned());
        let valid_domain = !base_domain.is_empty()
            && base_domain.split('.').all(|label| {
                !label.is_empty() && label.len() <= 63 && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid_domain {
            return Err(err(format!(
                "--base-domain {base_domain:?} is not a domain name like localhost or apps.example.com"
            )));
        }
        let health_timeout = args.health_timeout.or(file.health_timeout).unwrap_or(60);
        in_range("--health-timeout", health_timeout, 1..=3600, "seconds")?;
        let drain_seconds = args.drain_seconds.or(file.drain_seconds).unwrap_or(30);
        in_range("--drain-seconds", drain_seconds, 0..=3600, "seconds")?;
        let deploy_timeout = args.deploy_timeout.or(file.deploy_timeout).unwrap_or(300.max(health_timeout * 2));
        in_range("--deploy-timeout", deploy_timeout, 1..=7200, "seconds")?;
        if deploy_timeout <= health_timeout {
            return Err(err(format!(
                "--deploy-timeout ({deploy_timeout} s) must be longer than --health-timeout ({health_timeout} s): \
                 a deploy waits for health checks"
            )));
        }
        let release_timeout = args.release_timeout.or(file.release_timeout).unwrap_or(600);
        in_range("--release-timeout", release_timeout, 1..=7200, "seconds")?;
        let addon_timeout = args.addon_timeout.or(file.addon_timeout).unwrap_or(90);
        in_range("--addon-timeout", addon_timeout, 1..=3600, "seconds")?;
        let database_max_connections = args.database_max_connections.or(file.database_max_connections).unwrap_or(16);
        in_range("--database-max-connections", database_max_connections, 1..=1000, "")?;
        Ok(Config {
            listen,
            apps_listen,
            data_dir,
            database_url,
            runtime,
            engine,
            allow_rootful_engine: args.allow_rootful_engine || file.allow_rootful_engine.unwrap_or(false),
            shared_data_dir,
            registry,
            registry_username,
            registry_password,
            public_url,
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            jwt_secret,
            secret_key: args.secret_key.or(file.secret_key),
            default_runtime,
            node_id,
            lease_seconds,
            shutdown_grace,
            image_retention,
            postgres_image: args.postgres_image.or(file.postgres_image),
            redis_image: args.redis_image.or(file.redis_image),
            session_hours,
            max_push_mb,
            max_repo_mb,
            max_context_mb,
            workers,
            build_timeout,
            base_domain: base_domain.to_ascii_lowercase(),
            health_timeout,
            drain_seconds,
            deploy_timeout,
            release_timeout,
            addon_timeout,
            database_max_connections,
        })
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("cannot read the config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| err(format!("the config file {} is not valid: {e}", path.display())))
}

fn parse_addr(flag: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| err(format!("{flag} {text:?} is not an address like 127.0.0.1:7700 or [::1]:7700")))
}

fn default_data_dir() -> Result<PathBuf, ConfigError> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
        err("cannot choose a data directory: HOME is not set; pass --data-dir DIR (or SLIPWAY_DATA_DIR)")
    })?;
    Ok(PathBuf::from(home).join(".local/share/slipway"))
}

fn validate_database_url(url: String) -> Result<String, ConfigError> {
    let scheme = url.split(':').next().unwrap_or_default();
    if matches!(scheme, "sqlite" | "postgres" | "postgresql") {
        Ok(url)
    } else {
        Err(err(format!(
            "--database-url {:?} is not supported: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB",
            slipway_store::redact_url(&url)
        )))
    }
}

fn validate_engine(url: String) -> Result<String, ConfigError> {
    // `none`: a catalog-only installation, with no container engine at all.
    let ok = url == "none"
        || ["unix://", "tcp://", "http://", "https://"].iter().any(|p| url.starts_with(p) && url.len() > p.len());
    if ok {
        Ok(url)
    } else {
        Err(err(format!(
            "--engine {url:?} is not an engine address: use unix:///run/podman/podman.sock, unix:///var/run/docker.sock or tcp://HOST:PORT (or none, for no engine)"
        )))
    }
}

fn validate_registry(registry: String) -> Result<String, ConfigError> {
    let host = registry.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && !registry.contains("://")
        && !registry.ends_with('/')
        && registry.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'));
    if ok {
        Ok(registry)
    } else {
        Err(err(format!("--registry {registry:?} is not HOST[:PORT][/PREFIX], e.g. 127.0.0.1:5000/slipway")))
    }
}

fn validate_public_url(url: String) -> Result<String, ConfigError> {
    let trimmed = url.trim_end_matches('/').to_owned();
    let ok = (trimmed.starts_with("http://") || trimmed.starts_with("https://")) && trimmed.len() > "https://".len();
    if ok { Ok(trimmed) } else { Err(err(format!("--public-url {url:?} is not an http(s) URL"))) }
}

/// The sockets tried, in order, when neither --engine nor DOCKER_HOST says where the
/// container engine is. The last is where `scripts/podman start` puts Podman's service.
pub const ENGINE_SOCKETS: &[&str] =
    &["/run/podman/podman.sock", "/var/run/docker.sock", "/var/tmp/slipway-podman/run/podman.sock"];

impl Config {
    /// The container engine to use: --engine, else DOCKER_HOST, else the first socket
    /// that exists.
    pub fn engine_url(&self) -> Result<String, ConfigError> {
        if let Some(url) = &self.engine {
            return Ok(url.clone());
        }
        if let Ok(host) = std::env::var("DOCKER_HOST")
            && !host.is_empty()
        {
            return validate_engine(host);
        }
        ENGINE_SOCKETS.iter().find(|p| Path::new(p).exists()).map(|p| format!("unix://{p}")).ok_or_else(|| {
            err(format!(
                "no container engine found (looked for DOCKER_HOST and {}); start Podman's API service \
                 (`scripts/podman start`, or `podman system service --time=0 unix:///run/podman/podman.sock`) \
                 or pass --engine URL",
                ENGINE_SOCKETS.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests;
