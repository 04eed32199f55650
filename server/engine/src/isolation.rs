//! What stands between pushed code and this host: whether the container engine runs as
//! host root, whether it can enforce cgroup limits, and the limits every container
//! Slipway starts gets (replicas, release commands, add-ons).

use bollard::models::HostConfig;
use serde_json::Value;

use crate::LocalEngine;

/// How the engine isolates containers from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Containers run as an unprivileged host user (uid 0 inside maps to it).
    pub rootless: bool,
    /// Memory, CPU and pids limits take effect (a rootless engine on cgroup v1, or
    /// without delegated controllers, accepts and ignores them).
    pub enforces_limits: bool,
    /// e.g. "Podman 4.3.1" or "Docker 27.0.1".
    pub product: String,
    /// The host user containers' uid 0 is (Podman's id mappings; else the owner of the
    /// engine's socket), when known.
    pub host_uid: Option<u32>,
}

/// Processes one container may run when its engine enforces cgroups.
pub const PIDS_LIMIT: i64 = 1024;
/// Memory a replica gets when its template sets none (512 MiB).
pub const DEFAULT_MEMORY: i64 = 512 * 1024 * 1024;
/// The RLIMIT_NPROC `scripts/podman start` gives the rootless engine: the bound on a fork
/// bomb where cgroup limits are ignored. It is the engine's, inherited by every build
/// step and container, since a container's own ulimits do not work on every engine
/// (Podman's Docker-compatible API drops them rootless; rootful, asking for one makes
/// the runtime set RLIMIT_NOFILE too, above what the host allows).
pub const ENGINE_NPROC_LIMIT: i64 = 16384;

/// The confinement every container Slipway starts gets: limits, and no way to gain
/// privileges inside (setuid binaries do not elevate). `memory` is the template's limit,
/// if it set one. Never privileged, never a host path.
pub(crate) fn confined(memory: Option<i64>, nano_cpus: Option<i64>) -> HostConfig {
    HostConfig {
        init: Some(true),
        memory: Some(memory.unwrap_or(DEFAULT_MEMORY)),
        nano_cpus,
        pids_limit: Some(PIDS_LIMIT),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        privileged: Some(false),
        ..HostConfig::default()
    }
}

impl LocalEngine {
    /// Asks the engine how it isolates containers: Podman's own API answers for Podman
    /// (its Docker-compatible `/info` does not say it is rootless), Docker's `/info` for
    /// Docker (`name=rootless` among its security options). Which engine it is comes from
    /// `/version`, so a failed Podman call is an error, never a reading of "rootful".
    pub async fn isolation(&self) -> Result<Isolation, crate::EngineError> {
        let version = self.docker().version().await.map_err(crate::EngineError::api("reading the engine's version"))?;
        let podman = version.components.unwrap_or_default().iter().any(|c| c.name.contains("Podman"));
        if podman {
            let info = self.get_json("/v4.0.0/libpod/info").await?;
            let host = &info["host"];
            let rootless = host["security"]["rootless"].as_bool().unwrap_or(false);
            let v2 = host["cgroupVersion"].as_str() == Some("v2");
            let controllers: Vec<&str> =
                host["cgroupControllers"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let delegated = ["memory", "pids"].iter().all(|c| controllers.contains(c));
            let version = info["version"]["Version"].as_str().unwrap_or("?");
            let root_maps_to = host["idMappings"]["uidmap"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["container_id"].as_u64() == Some(0))
                .and_then(|m| m["host_id"].as_u64())
                .and_then(|uid| u32::try_from(uid).ok());
            return Ok(Isolation {
                rootless,
                enforces_limits: !rootless || (v2 && delegated),
                product: format!("Podman {version}"),
                host_uid: if rootless { root_maps_to.or_else(|| self.socket_owner()) } else { Some(0) },
            });
        }
        let info = self.docker().info().await.map_err(crate::EngineError::api("reading the engine's info"))?;
        // Security options read `name=rootless` (with more `,key=value` after some).
        let rootless =
            info.security_options.unwrap_or_default().iter().any(|o| o.split(',').any(|part| part == "name=rootless"));
        let v2 = matches!(info.cgroup_version, Some(bollard::models::SystemInfoCgroupVersionEnum::_2));
        let version = info.server_version.unwrap_or_else(|| "?".to_owned());
        Ok(Isolation {
            rootless,
            enforces_limits: !rootless || v2,
            product: format!("Docker {version}"),
            host_uid: if rootless { self.socket_owner() } else { Some(0) },
        })
    }

    /// Who owns the engine's unix socket (a rootless engine makes it as its own user).
    fn socket_owner(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        let path = self.url().strip_prefix("unix://")?;
        std::fs::metadata(path).ok().map(|m| m.uid())
    }
}
