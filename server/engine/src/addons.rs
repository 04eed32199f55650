//! Add-ons on the local runtime: each (`postgres`, `redis`) is one container with a named
//! volume beside the environment's replicas, with a generated password. Replicas reach it
//! on the installation's container network by a name the engine's DNS answers (its
//! volume's: a container's own address changes when it restarts, the name does not), and
//! get its URL as `DATABASE_URL` / `REDIS_URL`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
};
use slipway_core::config::seal_context;
use slipway_core::template::AddonKind;
use slipway_store::addons::AddonRow;
use slipway_store::environments::EnvironmentState;

use crate::error::{AddonError, EngineError};
use crate::runtime::{LABEL_ENVIRONMENT, LABEL_NODE, LABEL_SERVICE};
use crate::runtimes::Runtime as _;
use crate::{Engine, LocalEngine, now_ms};

/// Which add-on a container or volume holds.
pub const LABEL_ADDON: &str = "dev.slipway.addon";
/// The database and user a postgres add-on is made with.
pub(crate) const PG_USER: &str = "app";

/// The images add-ons run (configurable: the official images by default).
#[derive(Debug, Clone)]
pub struct AddonImages {
    pub postgres: String,
    pub redis: String,
}

impl Default for AddonImages {
    fn default() -> Self {
        AddonImages {
            postgres: "docker.io/library/postgres:16".to_owned(),
            redis: "docker.io/library/redis:7".to_owned(),
        }
    }
}

/// One add-on, opened: the variable replicas get, its URL, and the password (to mask).
#[derive(Debug, Clone)]
pub struct OpenedAddon {
    pub var: &'static str,
    pub url: String,
    pub password: String,
}

fn kind_of(text: &str) -> Option<AddonKind> {
    match text {
        "postgres" => Some(AddonKind::Postgres),
        "redis" => Some(AddonKind::Redis),
        _ => None,
    }
}

fn port_of(kind: AddonKind) -> u16 {
    match kind {
        AddonKind::Postgres => 5432,
        AddonKind::Redis => 6379,
    }
}

fn url(kind: AddonKind, host: &str, port: i32, password: &str) -> String {
    match kind {
        AddonKind::Postgres => format!("postgres://{PG_USER}:{password}@{host}:{port}/{PG_USER}"),
        AddonKind::Redis => format!("redis://:{password}@{host}:{port}/0"),
    }
}

/// 32 letters and digits: safe in a URL without escaping.
fn generate_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

impl LocalEngine {
    /// Creates and starts an add-on container on `volume`; answers its id and published port.
    async fn start_addon(
        &self,
        labels: HashMap<String, String>,
        name: &str,
        kind: AddonKind,
        image: &str,
        volume: &str,
        password: &str,
    ) -> Result<(String, i32), AddonError> {
        let network = self.network().await?;
        let port_key = format!("{}/tcp", port_of(kind));
        let (env, cmd) = match kind {
            AddonKind::Postgres => (
                vec![
                    format!("POSTGRES_USER={PG_USER}"),
                    format!("POSTGRES_PASSWORD={password}"),
                    format!("POSTGRES_DB={PG_USER}"),
                    "PGDATA=/data/pgdata".to_owned(),
                ],
                None,
            ),
            // The password reaches redis-server through a file the container writes, never
            // its command line: every local user can read a process's arguments in `ps`.
            AddonKind::Redis => (
                vec![format!("REDIS_PASSWORD={password}")],
                Some(
                    [
                        "sh",
                        "-c",
                        "umask 077 && printf 'requirepass %s\\n' \"$REDIS_PASSWORD\" > /tmp/redis.conf && \
                         exec redis-server /tmp/redis.conf --dir /data --appendonly yes",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                ),
            ),
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(labels),
            env: Some(env),
            cmd,
            exposed_ports: Some(vec![port_key.clone()]),
            host_config: Some(HostConfig {
                // On loopback, for slipwayd's readiness probe; replicas use the network.
                port_bindings: Some(HashMap::from([(
                    port_key.clone(),
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) }]),
                )])),
                mounts: Some(vec![Mount {
                    target: Some("/data".to_owned()),
                    source: Some(volume.to_owned()),
                    typ: Some(MountType::VOLUME),
                    ..Mount::default()
                }]),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                network_mode: network.clone(),
                ..crate::isolation::confined(None, None)
            }),
            // The volume's name is the add-on's name on the network: it outlives a
            // re-created container, so the URLs replicas hold stay right.
            networking_config: network.map(|network| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    EndpointSettings { aliases: Some(vec![volume.to_owned()]), ..EndpointSettings::default() },
                )])),
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .docker()
            .create_container(Some(options), body)
            .await
            .map_err(EngineError::api(format!("creating {name}")))?;
        if let Err(err) = self.docker().start_container(&created.id, None).await {
            self.remove_container(&created.id).await;
            return Err(EngineError::api(format!("starting {name}"))(err).into());
        }
        let info = self.inspect_container(&created.id).await?;
        let port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&port_key).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
            .and_then(|p| p.parse::<i32>().ok());
        match port {
            Some(port) => Ok((created.id, port)),
            None => {
                self.remove_container(&created.id).await;
                Err(AddonError::NoPort(name.to_owned()))
            }
        }
    }

    async fn remove_container(&self, id: &str) {
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(err) = self.docker().remove_container(id, Some(remove)).await {
            tracing::debug!(%err, container = id, "removing an add-on container");
        }
    }
}

/// Waits until the add-on answers its own protocol on its published loopback port: a
/// port the engine forwards accepts connections before anything listens behind it, so
/// only an answer shows the server is up. Postgres answers an SSL request with one byte,
/// Redis a PING with a line (`-NOAUTH`, before a password).
async fn wait_answering(kind: AddonKind, port: i32, within: Duration) -> Result<(), AddonError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let addr = format!("127.0.0.1:{port}");
    let probe: &[u8] = match kind {
        AddonKind::Postgres => &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        AddonKind::Redis => b"PING\r\n",
    };
    loop {
        let answered = tokio::time::timeout(Duration::from_secs(2), async {
            let mut conn = tokio::net::TcpStream::connect(&addr).await.ok()?;
            conn.write_all(probe).await.ok()?;
            let mut answer = [0u8; 1];
            (conn.read(&mut answer).await.ok()? == 1).then_some(())
        })
        .await;
        if let Ok(Some(())) = answered {
            return Ok(());
        }
        if started.elapsed() > within {
            return Err(AddonError::NotAnswering { addr, within });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labels(engine: &Engine, env: &EnvironmentState, kind: AddonKind) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_SERVICE.to_owned(), env.service.clone()),
        (LABEL_ENVIRONMENT.to_owned(), env.name.clone()),
        (LABEL_NODE.to_owned(), engine.config().node.clone()),
        (LABEL_ADDON.to_owned(), kind.as_str().to_owned()),
    ])
}

impl Engine {
    /// What a sealed add-on password is bound to: one add-on of one environment.
    fn addon_context(environment_id: i64, kind: &str) -> String {
        seal_context(environment_id, &format!("addon:{kind}"))
    }

    fn seal_password(&self, environment_id: i64, kind: AddonKind, password: &str) -> String {
        self.config().secret_key.seal(password, &Self::addon_context(environment_id, kind.as_str()))
    }

    fn open_password(&self, row: &AddonRow) -> Result<String, AddonError> {
        self.config()
            .secret_key
            .open(&row.password_sealed, &Self::addon_context(row.environment_id, &row.kind))
            .map_err(|source| AddonError::Password { kind: row.kind.clone(), source })
    }

    fn addon_image(&self, kind: AddonKind) -> &str {
        match kind {
            AddonKind::Postgres => &self.config().addon_images.postgres,
            AddonKind::Redis => &self.config().addon_images.redis,
        }
    }

    /// Provisions the add-ons an environment lacks and waits until each accepts
    /// connections. On failure what this call created is removed again.
    pub async fn provision_addons(&self, env: &EnvironmentState, kinds: &[AddonKind]) -> Result<(), AddonError> {
        let existing = self.store().addons_of(env.id).await.map_err(AddonError::store("reading the add-ons"))?;
        for &kind in kinds {
            if existing.iter().any(|a| a.kind == kind.as_str()) {
                continue;
            }
            if self.runtime_of(&env.runtime).addons_in_release() {
                // On a cluster the add-on is a StatefulSet the deploy applies; only its
                // password and in-namespace address are recorded here.
                let password = generate_password();
                let row = AddonRow {
                    environment_id: env.id,
                    kind: kind.as_str().to_owned(),
                    container: String::new(),
                    volume: String::new(),
                    host: kind.as_str().to_owned(),
                    port: i32::from(port_of(kind)),
                    password_sealed: self.seal_password(env.id, kind, &password),
                    created_at: now_ms(),
                };
                self.store()
                    .insert_addon(&row)
                    .await
                    .map_err(AddonError::store(format!("recording the {} add-on", kind.as_str())))?;
                continue;
            }
            let image = self.addon_image(kind);
            let suffix: String = crate::random_node_id().chars().take(8).collect();
            let name = format!("slipway-{}-{}-{}-{suffix}", env.service, env.name, kind.as_str());
            let labels = labels(self, env, kind);
            let password = generate_password();
            let request = VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..VolumeCreateRequest::default()
            };
            self.local()
                .docker()
                .create_volume(request)
                .await
                .map_err(EngineError::api(format!("creating volume {name}")))?;
            // Everything from creating the container to its first accepted connection
            // (a missing image may be pulled) is bounded: an add-on never hangs a deploy.
            let within = self.config().addon_timeout;
            let started = tokio::time::timeout(within, async {
                let (id, published) = self.local().start_addon(labels, &name, kind, image, &name, &password).await?;
                wait_answering(kind, published, within).await?;
                Ok::<_, AddonError>((id, name.clone(), i32::from(port_of(kind))))
            })
            .await
            .unwrap_or_else(|_| Err(AddonError::NotReady(within)));
            let (container, host, port) = match started {
                Ok(found) => found,
                Err(why) => {
                    // The container is named after its volume; it may exist or not.
                    self.local().remove_container(&name).await;
                    let _ = self
                        .local()
                        .docker()
                        .remove_volume(&name, None::<bollard::query_parameters::RemoveVolumeOptions>)
                        .await;
                    return Err(AddonError::Start {
                        kind: kind.as_str(),
                        image: image.to_owned(),
                        source: Box::new(why),
                    });
                }
            };
            let row = AddonRow {
                environment_id: env.id,
                kind: kind.as_str().to_owned(),
                container,
                volume: name,
                host,
                port,
                password_sealed: self.seal_password(env.id, kind, &password),
                created_at: now_ms(),
            };
            self.store()
                .insert_addon(&row)
                .await
                .map_err(AddonError::store(format!("recording the {} add-on", kind.as_str())))?;
        }
        Ok(())
    }

    /// The add-ons of an environment as a cluster runs them: kind, password, image.
    pub async fn cluster_addons(
        &self,
        environment_id: i64,
    ) -> Result<Vec<crate::kubernetes::ClusterAddon>, AddonError> {
        let mut out = Vec::new();
        for row in self.store().addons_of(environment_id).await.map_err(AddonError::store("reading the add-ons"))? {
            let Some(kind) = kind_of(&row.kind) else { continue };
            let password = self.open_password(&row)?;
            let image = self.addon_image(kind).to_owned();
            out.push(crate::kubernetes::ClusterAddon { kind, password, image, port: port_of(kind) });
        }
        Ok(out)
    }

    /// The add-ons of an environment with their URLs (passwords opened).
    pub async fn open_addons(&self, environment_id: i64) -> Result<Vec<OpenedAddon>, AddonError> {
        let rows = self.store().addons_of(environment_id).await.map_err(AddonError::store("reading the add-ons"))?;
        let mut opened = Vec::new();
        for row in rows {
            let Some(kind) = kind_of(&row.kind) else { continue };
            let password = self.open_password(&row)?;
            opened.push(OpenedAddon { var: kind.env_var(), url: url(kind, &row.host, row.port, &password), password });
        }
        Ok(opened)
    }

    /// Removes every add-on container and volume of an environment (it is destroyed).
    pub(crate) async fn remove_addons(
        &self,
        environment_id: i64,
        service: &str,
        environment: &str,
    ) -> Result<(), EngineError> {
        let docker = self.local().docker();
        let recorded = self
            .store()
            .addons_of(environment_id)
            .await
            .map_err(|source| EngineError::Store { action: "reading the add-ons".to_owned(), source })?;
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_SERVICE}={service}"),
                format!("{LABEL_ENVIRONMENT}={environment}"),
                format!("{LABEL_NODE}={}", self.config().node),
                LABEL_ADDON.to_owned(),
            ],
        )]);
        for container in self.local().list_containers(true, &filters["label"]).await? {
            if let Some(id) = container.id {
                self.local().remove_container(&id).await;
            }
        }
        for row in &recorded {
            if !row.container.is_empty() {
                self.local().remove_container(&row.container).await;
            }
        }
        // The recorded volumes, and any labelled ones (a creation cut short).
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let volumes =
            docker.list_volumes(Some(options)).await.map_err(EngineError::api("listing the add-ons' volumes"))?;
        let mut names: Vec<String> =
            recorded.iter().filter(|r| !r.volume.is_empty()).map(|r| r.volume.clone()).collect();
        names.extend(volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name));
        names.sort();
        names.dedup();
        for name in names {
            let force = RemoveVolumeOptionsBuilder::new().force(true).build();
            match docker.remove_volume(&name, Some(force)).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(err) => tracing::warn!(%err, volume = %name, "removing an add-on volume"),
            }
        }
        Ok(())
    }

    /// Keeps an environment's add-ons running: starts a stopped one, and re-creates a
    /// missing one on its volume with its password and under the same name (its volume's),
    /// so the URLs replicas hold keep working.
    pub(crate) async fn ensure_addons(&self, env: &EnvironmentState) -> Result<(), crate::DeployError> {
        if self.runtime_of(&env.runtime).addons_in_release() {
            return Ok(()); // the cluster's StatefulSet controller keeps it running
        }
        for row in self.store().addons_of(env.id).await? {
            let Some(kind) = kind_of(&row.kind) else { continue };
            match self.local().inspect_container(&row.container).await {
                Ok(info) if info.state.as_ref().and_then(|s| s.running).unwrap_or(false) => {}
                Ok(_) => {
                    if let Err(err) = self.local().docker().start_container(&row.container, None).await {
                        tracing::warn!(%err, addon = %row.kind, environment = %env.name, "starting a stopped add-on");
                    }
                }
                Err(_) => {
                    let password = self.open_password(&row)?;
                    let image = self.addon_image(kind);
                    let name =
                        format!("{}-{}", row.volume, crate::random_node_id().chars().take(4).collect::<String>());
                    let (id, _) = self
                        .local()
                        .start_addon(labels(self, env, kind), &name, kind, image, &row.volume, &password)
                        .await?;
                    let (host, port) = (row.volume.clone(), i32::from(port_of(kind)));
                    self.store().move_addon(env.id, &row.kind, &id, &host, port).await?;
                    tracing::warn!(addon = %row.kind, environment = %env.name, "re-created a missing add-on container");
                }
            }
        }
        Ok(())
    }
}
