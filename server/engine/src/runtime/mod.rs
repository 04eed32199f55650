//! The local runtime: each replica of an environment is a container on the engine,
//! labelled with its service, environment and run, published on a random loopback port,
//! and run with an init so it stops promptly. Health is an HTTP GET of the release's
//! health path.

pub(crate) mod local;

use crate::EngineError;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};

use crate::LocalEngine;

pub const LABEL_SERVICE: &str = "dev.slipway.service";
pub const LABEL_ENVIRONMENT: &str = "dev.slipway.environment";
pub const LABEL_RUN: &str = "dev.slipway.run";
/// Which workload of the environment's spec the replica runs (`web` gets traffic).
pub const LABEL_WORKLOAD: &str = "dev.slipway.workload";
/// The slipwayd (node id) that runs the replica.
pub const LABEL_NODE: &str = "dev.slipway.node";

/// One replica to start.
#[derive(Debug, Clone)]
pub struct ReplicaSpec {
    pub service: String,
    pub environment: String,
    /// The run whose release this replica serves.
    pub run_id: i64,
    pub image: String,
    pub workload: String,
    /// The port to publish; none for a workload without traffic.
    pub port: Option<u16>,
    /// A command to run (by the image's `/bin/sh -c`) instead of the image's own.
    pub command: Option<String>,
    /// Limits, in bytes and billionths of a CPU.
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub env: Vec<(String, String)>,
    pub node: String,
}

/// A replica found on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub run_id: i64,
    pub workload: String,
    pub addr: Option<SocketAddr>,
    pub running: bool,
}

/// The label filter for an environment's containers on one node.
fn environment_labels(node: &str, service: &str, environment: &str) -> Vec<String> {
    vec![
        format!("{LABEL_SERVICE}={service}"),
        format!("{LABEL_ENVIRONMENT}={environment}"),
        format!("{LABEL_NODE}={node}"),
    ]
}

/// An engine call slower than this is logged: the first sign of an engine in trouble.
const SLOW_ENGINE: Duration = Duration::from_secs(5);

/// Engine errors that say nothing about the app: a published port taken in a race, a
/// layer removed under a lookup.
fn transient(why: &str) -> bool {
    ["address already in use", "layer not known", "image not known", "port is already allocated"]
        .iter()
        .any(|sign| why.contains(sign))
}

impl LocalEngine {
    /// Creates and starts one replica; answers it with its published address.
    pub async fn start_replica(&self, spec: &ReplicaSpec) -> Result<Replica, EngineError> {
        let labels = HashMap::from([
            (LABEL_SERVICE.to_owned(), spec.service.clone()),
            (LABEL_ENVIRONMENT.to_owned(), spec.environment.clone()),
            (LABEL_RUN.to_owned(), spec.run_id.to_string()),
            (LABEL_WORKLOAD.to_owned(), spec.workload.clone()),
            (LABEL_NODE.to_owned(), spec.node.clone()),
        ]);
        let port_key = spec.port.map(|port| format!("{port}/tcp"));
        let bindings = port_key.as_ref().map(|key| {
            HashMap::from([(
                key.clone(),
                Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) }]),
            )])
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            labels: Some(labels),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            exposed_ports: port_key.map(|key| vec![key]),
            // The environment owner's own command, run by a shell inside their own image
            // (as a Procfile line would be); it never touches a shell on this host.
            cmd: spec.command.as_ref().map(|c| vec!["/bin/sh".to_owned(), "-c".to_owned(), c.clone()]),
            // Auto-remove: a replica that exits (killed, crashed) disappears and the
            // reconcile loop starts a new one, so nothing exited piles up.
            host_config: Some(HostConfig {
                port_bindings: bindings,
                auto_remove: Some(true),
                network_mode: self.network().await?,
                ..crate::isolation::confined(spec.memory, spec.nano_cpus)
            }),
            ..ContainerCreateBody::default()
        };
        // The engine picks the published port; under load another process can take it
        // between the pick and the bind ("address already in use"), and a concurrent image
        // removal can trip the lookup of a layer. Neither is the app's fault: try again.
        let began = Instant::now();
        let mut attempt = 0;
        let created = loop {
            attempt += 1;
            let name = format!(
                "slipway-{}-{}-{}-r{}-{}",
                spec.service,
                spec.environment,
                spec.workload,
                spec.run_id,
                crate::random_node_id()
            );
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            let outcome = match self.docker().create_container(Some(options), body.clone()).await {
                Err(err) => Err(EngineError::api(format!("creating {name}"))(err)),
                Ok(created) => match self.docker().start_container(&created.id, None).await {
                    Ok(()) => Ok((name, created)),
                    Err(err) => {
                        self.remove_replica(&created.id).await;
                        Err(EngineError::api(format!("starting {name}"))(err))
                    }
                },
            };
            match outcome {
                Ok(done) => break done,
                Err(why) if attempt < 3 && transient(&why.to_string()) => {
                    tracing::warn!(%why, attempt, "starting a replica failed for a passing reason; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(why) => return Err(why),
            }
        };
        let (name, created) = created;
        if began.elapsed() > SLOW_ENGINE {
            tracing::warn!(replica = %name, secs = began.elapsed().as_secs_f64(), attempt, "the engine was slow to start a replica");
        }
        let found = self.replicas(&spec.node, &spec.service, &spec.environment).await?;
        found.into_iter().find(|r| r.id == created.id).ok_or(EngineError::ExitedAtStart(name))
    }

    /// The running replicas of an environment that this node started.
    pub async fn replicas(&self, node: &str, service: &str, environment: &str) -> Result<Vec<Replica>, EngineError> {
        let containers = self.list_containers(false, &environment_labels(node, service, environment)).await?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let run_id = labels.get(LABEL_RUN)?.parse().ok()?;
                // Replicas started before workloads existed were all web replicas.
                let workload = labels.get(LABEL_WORKLOAD).cloned().unwrap_or_else(|| "web".to_owned());
                let addr = c
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find_map(|p| p.public_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port))));
                let running = matches!(c.state, Some(bollard::models::ContainerSummaryStateEnum::RUNNING));
                Some(Replica { id: c.id?, run_id, workload, addr, running })
            })
            .collect())
    }

    /// Every container (running, created or stopped) a run started for an environment on
    /// this node: what a failed deploy removes.
    pub async fn containers_of_run(&self, node: &str, service: &str, environment: &str, run_id: i64) -> Vec<String> {
        let mut labels = environment_labels(node, service, environment);
        labels.push(format!("{LABEL_RUN}={run_id}"));
        match self.list_containers(true, &labels).await {
            Ok(found) => found.into_iter().filter_map(|c| c.id).collect(),
            Err(err) => {
                tracing::warn!(%err, run_id, "listing a run's containers");
                Vec::new()
            }
        }
    }

    /// Answers once the container has kept running for `settle`; fails if it stops first.
    pub async fn wait_running(&self, id: &str, settle: Duration) -> Result<(), EngineError> {
        let started = Instant::now();
        loop {
            let running = match self.inspect_container(id).await {
                Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
                Err(_) => false,
            };
            if !running {
                return Err(EngineError::Exited);
            }
            if started.elapsed() >= settle {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops (2 s grace) and removes a replica; failures are logged, not returned, since
    /// the caller is cleaning up either way.
    pub async fn remove_replica(&self, id: &str) {
        let stop = StopContainerOptionsBuilder::new().t(2).build();
        let _ = self.docker().stop_container(id, Some(stop)).await;
        // Usually gone already (auto-remove); force removes one that would not stop.
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(err) = self.docker().remove_container(id, Some(remove)).await {
            tracing::debug!(%err, container = id, "removing a replica");
        }
    }
}

impl LocalEngine {
    /// The output of an environment's running replicas, each line prefixed with its
    /// replica; with `follow`, live until the receiver is dropped.
    pub async fn replica_logs(
        &self,
        node: &str,
        service: &str,
        environment: &str,
        follow: bool,
        tail: u32,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, EngineError> {
        use bollard::query_parameters::LogsOptionsBuilder;
        use futures_util::StreamExt;
        let replicas = self.replicas(node, service, environment).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        for replica in replicas {
            let docker = self.streaming().clone();
            let tx = tx.clone();
            let short: String = replica.id.chars().take(8).collect();
            tokio::spawn(async move {
                let options =
                    LogsOptionsBuilder::new().follow(follow).stdout(true).stderr(true).tail(&tail.to_string()).build();
                let mut stream = docker.logs(&replica.id, Some(options));
                let mut pending = String::new();
                while let Some(Ok(chunk)) = stream.next().await {
                    pending.push_str(&chunk.to_string());
                    while let Some(end) = pending.find('\n') {
                        let line: String = pending.drain(..=end).collect();
                        if tx.send(format!("[{short}] {}", line.trim_end())).await.is_err() {
                            return;
                        }
                    }
                }
                if !pending.trim().is_empty() {
                    let _ = tx.send(format!("[{short}] {}", pending.trim_end())).await;
                }
            });
        }
        Ok(rx)
    }
}

/// Polls `http://addr{path}` until it answers 2xx or 3xx (as Kubernetes' HTTP probes
/// count), or fails at the deadline with the last reason: a 404 is a wrong health path
/// or an app that is not there, never a healthy one.
pub async fn wait_healthy(addr: SocketAddr, path: &str, within: Duration) -> Result<Duration, EngineError> {
    let started = Instant::now();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let Ok(uri) = format!("http://{addr}{path}").parse::<hyper::Uri>() else {
        // Health paths are validated where templates and slipway.toml are read.
        return Err(EngineError::Unhealthy { path: path.to_owned(), within, last: "not a URL path".to_owned() });
    };
    let mut last = "no answer yet".to_owned();
    while started.elapsed() < within {
        match tokio::time::timeout(Duration::from_secs(2), client.get(uri.clone())).await {
            Ok(Ok(response)) if response.status().is_success() || response.status().is_redirection() => {
                return Ok(started.elapsed());
            }
            Ok(Ok(response)) => last = format!("answered {}", response.status()),
            Ok(Err(err)) => last = format!("{err}"),
            Err(_) => last = "timed out".to_owned(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(EngineError::Unhealthy { path: path.to_owned(), within, last })
}

#[cfg(test)]
mod tests {
    use super::transient;
    use crate::{EngineError, LocalEngine};

    #[test]
    fn only_engine_races_are_tried_again() {
        assert!(transient("starting x: rootlessport listen tcp 127.0.0.1:41513: bind: address already in use"));
        assert!(transient("creating x: layer not known"));
        assert!(!transient("x exited as soon as it started"), "an app that dies is not retried");
        assert!(!transient("creating x: invalid reference format"));
    }

    #[tokio::test]
    async fn engine_errors_name_what_failed_and_keep_their_cause() {
        use std::error::Error as _;

        // Nothing listens on a port just freed: the health wait names the path and why.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let err = super::wait_healthy(addr, "/ready", std::time::Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(&err, EngineError::Unhealthy { path, .. } if path == "/ready"), "{err:?}");
        assert!(err.to_string().starts_with("GET /ready did not answer healthy within 0 s ("), "{err}");

        // An engine that is not there: the call fails naming what it was doing, with
        // the client's error as its source.
        let absent = LocalEngine::absent("unix:///nowhere.sock").expect("a client");
        let err = absent.ping().await.unwrap_err();
        assert!(err.to_string().starts_with("pinging the engine: "), "{err}");
        assert!(err.source().is_some_and(|s| s.downcast_ref::<bollard::errors::Error>().is_some()), "{err:?}");
        assert!(
            matches!(LocalEngine::connect("ftp://engine"), Err(EngineError::Address(url)) if url == "ftp://engine")
        );
    }
}
