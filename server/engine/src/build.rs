//! The build stage: a [`Builder`] turns a context into an image. [`LocalEngine`] drives
//! a Docker-compatible engine API (Podman's service or Docker) through bollard, streaming
//! each build step into the run's log as it happens; the engine's layer cache makes
//! unchanged steps instant, and the log shows which were cached.

use crate::EngineError;
use slipway_core::run::Stage;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder};
use futures_util::StreamExt;

use crate::logger::RunLog;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context_tar: PathBuf,
    pub dockerfile: String,
    pub args: HashMap<String, String>,
    pub tag: String,
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub id: String,
    pub tag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The build itself failed (a bad Containerfile, a failing step): the message is the
    /// builder's own error.
    #[error("{0}")]
    Failed(String),
    #[error("the container engine failed: {0}")]
    Engine(String),
    #[error("reading the build context: {0}")]
    Context(std::io::Error),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Builds images. Implemented by [`LocalEngine`]; a trait so a Kubernetes Job builder
/// can take its place.
pub trait Builder: Send + Sync + std::fmt::Debug {
    fn build<'a>(&'a self, req: &'a BuildRequest, log: &'a RunLog) -> BoxFuture<'a, Result<BuiltImage, BuildError>>;

    /// Pushes a built image to a registry; answers the pushed digest.
    fn push<'a>(&'a self, req: &'a PushRequest, log: &'a RunLog) -> BoxFuture<'a, Result<String, BuildError>>;
}

/// Where and how to push an image.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The local image, e.g. `localhost/slipway/shop:1a2b3c4d5e6f`.
    pub local: String,
    /// The remote repository, e.g. `registry.example.com/team/shop`.
    pub repository: String,
    pub tag: String,
    pub credentials: Option<RegistryCredentials>,
}

/// A registry login. `Debug` hides the password.
#[derive(Clone)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials").field("username", &self.username).field("password", &"***").finish()
    }
}

/// The machine's own container engine (Podman or Docker, through its Docker-compatible
/// API): it builds and pushes images, and runs the local runtime's replicas, release
/// commands and add-ons.
#[derive(Debug, Clone)]
pub struct LocalEngine {
    /// For calls that answer at once (create, start, inspect, list, remove…).
    docker: Docker,
    /// The same engine for calls that stream until work ends (build, push, log follow,
    /// wait): their stage's own limit bounds them.
    streaming: Docker,
    /// Where the engine's API is (for the few calls outside bollard's model).
    url: String,
    /// The container network replicas, release commands and add-ons join (see
    /// [`LocalEngine::on_network`]).
    network: Option<String>,
}

/// How long an engine call that should answer at once may take before it fails: a hung
/// engine must fail a step (and free the reconcile loop), never block it for good.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// The bound on a streaming call's wait for its response; its stage's limit (build,
/// push, release command timeouts) is shorter.
const STREAM_TIMEOUT_SECS: u64 = 3600;

impl LocalEngine {
    /// Connects to `unix:///path.sock`, `tcp://host:port` or `http://host:port`.
    pub fn connect(url: &str) -> Result<LocalEngine, EngineError> {
        let docker = if let Some(path) = url.strip_prefix("unix://") {
            Docker::connect_with_unix(path, STREAM_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if let Some(addr) = url.strip_prefix("tcp://") {
            Docker::connect_with_http(&format!("http://{addr}"), STREAM_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if url.starts_with("http://") {
            Docker::connect_with_http(url, STREAM_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(EngineError::Address(url.to_owned()));
        };
        docker
            .map(|streaming| LocalEngine {
                docker: streaming.clone().with_timeout(CALL_TIMEOUT),
                streaming,
                url: url.to_owned(),
                network: None,
            })
            .map_err(EngineError::api(format!("connecting to {url}")))
    }

    /// A client for an engine that is not there (its socket missing): a process started
    /// without an engine refuses every use first (`EngineConfig::local_engine_down`), and
    /// a call that slipped through fails at once (it dials port 0), naming `url`.
    pub fn absent(url: &str) -> Result<LocalEngine, EngineError> {
        let docker = Docker::connect_with_http("http://127.0.0.1:0", 5, bollard::API_DEFAULT_VERSION)
            .map_err(EngineError::api("making a client for no engine"))?;
        Ok(LocalEngine { docker: docker.clone(), streaming: docker, url: url.to_owned(), network: None })
    }

    /// The same engine, with every container Slipway starts on `network`: a network of
    /// its own per installation, where replicas reach add-ons by name (the engine's DNS)
    /// and nothing of another installation's runs.
    pub fn on_network(mut self, network: String) -> LocalEngine {
        self.network = Some(network);
        self
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The network containers join (made on first use, and again if someone removed it);
    /// `None`: the engine's default.
    pub(crate) async fn network(&self) -> Result<Option<String>, EngineError> {
        let Some(name) = &self.network else { return Ok(None) };
        if self.docker.inspect_network(name, None).await.is_ok() {
            return Ok(Some(name.clone()));
        }
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            labels: Some(HashMap::from([("dev.slipway.network".to_owned(), "true".to_owned())])),
            ..bollard::models::NetworkCreateRequest::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(Some(name.clone())),
            // Made meanwhile by a concurrent start.
            Err(_) if self.docker.inspect_network(name, None).await.is_ok() => Ok(Some(name.clone())),
            Err(err) => Err(EngineError::api(format!("creating the container network {name}"))(err)),
        }
    }

    /// The client for calls that stream until their work ends.
    pub fn streaming(&self) -> &Docker {
        &self.streaming
    }

    /// Checks that the engine answers; the message says what to do when it does not.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker.ping().await.map(|_| ()).map_err(EngineError::api("pinging the engine"))
    }

    pub fn docker(&self) -> &Docker {
        &self.docker
    }
}

/// Whether a build output line names another image's tag: when every layer comes from
/// the cache, the engine reports the resulting image's other names too ("Successfully
/// tagged localhost/slipway/<other service>:<commit>"), which are not this run's to see.
fn names_another_image(line: &str, own_tag: &str) -> bool {
    line.trim().strip_prefix("Successfully tagged ").is_some_and(|tag| tag.trim() != own_tag)
}

impl Builder for LocalEngine {
    fn build<'a>(&'a self, req: &'a BuildRequest, log: &'a RunLog) -> BoxFuture<'a, Result<BuiltImage, BuildError>> {
        Box::pin(async move {
            // Streamed from the file: a context may be hundreds of MiB (`--max-context-mb`),
            // which must not sit in memory once per concurrent build.
            let tar = tokio::fs::File::open(&req.context_tar).await.map_err(BuildError::Context)?;
            let options = BuildImageOptionsBuilder::new()
                .dockerfile(&req.dockerfile)
                .t(&req.tag)
                .rm(true)
                .forcerm(true)
                .buildargs(&req.args)
                .build();
            let mut stream = self.streaming.build_image(
                options,
                None,
                Some(bollard::body_try_stream(tokio_util::io::ReaderStream::new(tar))),
            );
            let mut image_id = None;
            let mut line_count = 0usize;
            while let Some(item) = stream.next().await {
                let info = match item {
                    Ok(info) => info,
                    Err(bollard::errors::Error::DockerStreamError { error }) => {
                        return Err(BuildError::Failed(error));
                    }
                    Err(err) => return Err(BuildError::Engine(err.to_string())),
                };
                if let Some(text) = info.stream.as_deref() {
                    for line in text.lines().filter(|l| !l.trim().is_empty() && !names_another_image(l, &req.tag)) {
                        log.line(Stage::Build, line);
                        line_count += 1;
                    }
                }
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    return Err(BuildError::Failed(detail));
                }
                if let Some(aux) = info.aux {
                    image_id = aux.id.or(image_id);
                }
            }
            match image_id {
                Some(id) => Ok(BuiltImage { id, tag: req.tag.clone() }),
                // The build's own output is in the run's log (team-only, masked); a run's
                // reason is seen by everyone, so it names no output.
                None => Err(BuildError::Failed(format!(
                    "the engine reported no image after {} lines of output; see the run's log",
                    line_count
                ))),
            }
        })
    }

    fn push<'a>(&'a self, req: &'a PushRequest, log: &'a RunLog) -> BoxFuture<'a, Result<String, BuildError>> {
        Box::pin(async move {
            let tag_options = TagImageOptionsBuilder::new().repo(&req.repository).tag(&req.tag).build();
            self.docker.tag_image(&req.local, Some(tag_options)).await.map_err(|e| {
                BuildError::Engine(format!("tagging {} as {}:{}: {e}", req.local, req.repository, req.tag))
            })?;
            let server = req.repository.split('/').next().unwrap_or_default().to_owned();
            let credentials = req.credentials.as_ref().map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(server.clone()),
                ..DockerCredentials::default()
            });
            let options = PushImageOptionsBuilder::new().tag(&req.tag).build();
            let mut stream = self.streaming.push_image(&req.repository, Some(options), credentials);
            let mut digest = None;
            while let Some(item) = stream.next().await {
                let info = match item {
                    Ok(info) => info,
                    Err(bollard::errors::Error::DockerStreamError { error }) => return Err(BuildError::Failed(error)),
                    Err(err) => return Err(BuildError::Engine(err.to_string())),
                };
                if let Some(message) = info.error_detail.and_then(|d| d.message) {
                    return Err(BuildError::Failed(message));
                }
                if let Some(status) = info.status.as_deref() {
                    if let Some(found) = status.split_whitespace().find(|w| w.starts_with("sha256:")) {
                        digest = Some(found.to_owned());
                    }
                    if info.progress_detail.is_none() {
                        log.line(Stage::Push, status);
                    }
                }
            }
            digest.ok_or_else(|| BuildError::Failed(format!("the registry {server} reported no digest")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::names_another_image;

    #[test]
    fn only_this_builds_own_tag_is_reported() {
        let own = "localhost/slipway/abc/shop:1234";
        assert!(!names_another_image("Successfully tagged localhost/slipway/abc/shop:1234", own));
        assert!(names_another_image("Successfully tagged localhost/slipway/abc/billing:99aa", own));
        assert!(!names_another_image("STEP 1/3: FROM localhost/slipway/busybox", own));
    }
}
