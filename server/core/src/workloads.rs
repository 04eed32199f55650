//! What a deploy starts: how a commit says it is built and run ([`BuildSettings`]), and
//! the environment's rendered spec made concrete for one build: `slipway.toml`'s `[web]`
//! port and health win over the template's, a workload's `process` becomes the
//! repository's command, and the primary workload runs the environment's (scalable)
//! replica count. Pure rules, so the engine and the use cases share them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::template::{Spec, WEB, Workload};

/// How to build a context, from the repository's `slipway.toml` and files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSettings {
    /// Path of the Containerfile/Dockerfile inside the context.
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    /// The port the web process listens on, and its health path (`[web]` in
    /// slipway.toml); when given they win over the environment template's.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub health: Option<String>,
    /// `[processes]`: commands a template's workload can name with `process`.
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
    /// `[release] command`: run once per release before traffic moves.
    #[serde(default)]
    pub release_command: Option<String>,
}

pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_HEALTH: &str = "/";

/// Why a spec cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Why, in serde_json's words (kept as text: a row read once may be asked often).
    #[error("the stored spec is unreadable: {0}")]
    Unreadable(String),
    #[error("workload {workload} runs process {process:?}, which slipway.toml [processes] does not define")]
    UndefinedProcess { workload: String, process: String },
}

/// The spec of an environment made before templates existed: the web template's
/// defaults.
pub fn legacy_spec(port: u16, health: &str) -> Spec {
    let web = Workload {
        replicas: 2,
        port: Some(port),
        health: Some(health.to_owned()),
        cpu: None,
        memory: None,
        command: None,
        process: None,
        env: Default::default(),
        autoscale: None,
    };
    Spec { workloads: [(WEB.to_owned(), web)].into(), addons: Vec::new(), policy: Default::default() }
}

/// Reads a stored spec (JSON); empty for environments made before templates.
pub fn parse_stored(json: &str) -> Result<Option<Spec>, SpecError> {
    if json.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(json).map(Some).map_err(|e| SpecError::Unreadable(e.to_string()))
}

/// An environment's or release's rendered spec as the store reads it: decoded once, when
/// the row is read; absent for environments and releases made before templates. An
/// unreadable one (say, written by a newer replica during an upgrade) does not fail the
/// read, so one bad row never hides the others from a listing or the reconcile loop: it
/// fails where the spec is used.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSpec(Result<Option<Spec>, String>);

impl StoredSpec {
    pub fn get(&self) -> Result<Option<&Spec>, SpecError> {
        self.0.as_ref().map(Option::as_ref).map_err(|why| SpecError::Unreadable(why.clone()))
    }

    /// The spec, or the web template's defaults (`port`, `health`) for a record older
    /// than templates.
    pub fn or_legacy(&self, port: u16, health: &str) -> Result<Spec, SpecError> {
        Ok(self.get()?.cloned().unwrap_or_else(|| legacy_spec(port, health)))
    }

    /// The column's text for a spec.
    pub fn encode(spec: &Spec) -> String {
        // A Spec has string map keys and plain fields, which serde_json always writes.
        serde_json::to_string(spec).unwrap_or_default()
    }
}

/// For the store's row decoding (`#[sqlx(try_from = "String")]`; it never fails).
impl From<String> for StoredSpec {
    fn from(json: String) -> StoredSpec {
        StoredSpec(parse_stored(&json).map_err(|e| match e {
            SpecError::Unreadable(why) => why,
            other => other.to_string(),
        }))
    }
}

impl From<Spec> for StoredSpec {
    fn from(spec: Spec) -> StoredSpec {
        StoredSpec(Ok(Some(spec)))
    }
}

/// The workload `scale` sizes: `web`, else the first.
pub fn primary(spec: &Spec) -> Option<&str> {
    if spec.workloads.contains_key(WEB) { Some(WEB) } else { spec.workloads.keys().next().map(String::as_str) }
}

/// The spec a deploy runs: the template's, adjusted by the build's settings.
pub fn effective(spec: &Spec, settings: &BuildSettings, primary_replicas: u32) -> Result<Spec, SpecError> {
    let mut out = spec.clone();
    let primary = primary(spec).map(str::to_owned);
    for (name, w) in out.workloads.iter_mut() {
        if name == WEB {
            w.port = Some(settings.port.or(w.port).unwrap_or(DEFAULT_PORT));
            w.health = Some(settings.health.clone().or_else(|| w.health.clone()).unwrap_or(DEFAULT_HEALTH.to_owned()));
        }
        if Some(name) == primary.as_ref() {
            w.replicas = primary_replicas;
        }
        if let Some(process) = &w.process {
            // The resolved command stays beside the process name, so a later redeploy of
            // this release finds it without the build's settings.
            if w.command.is_none() {
                let command = settings
                    .processes
                    .get(process)
                    .ok_or_else(|| SpecError::UndefinedProcess { workload: name.clone(), process: process.clone() })?;
                w.command = Some(command.clone());
            }
        }
    }
    Ok(out)
}

/// The `[processes]` a resolved spec carries, for redeploying its release.
pub fn processes_of(spec: &Spec) -> BTreeMap<String, String> {
    spec.workloads.values().filter_map(|w| Some((w.process.clone()?, w.command.clone()?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(port: Option<u16>) -> BuildSettings {
        BuildSettings {
            dockerfile: "Containerfile".into(),
            args: Default::default(),
            port,
            health: None,
            processes: [("jobs".to_owned(), "run-jobs --fast".to_owned())].into(),
            release_command: None,
        }
    }

    #[test]
    fn the_repository_wins_for_port_and_processes_resolve() {
        let mut spec = legacy_spec(9000, "/ready");
        let mut worker = spec.workloads[WEB].clone();
        worker.port = None;
        worker.health = None;
        worker.process = Some("jobs".into());
        worker.replicas = 3;
        spec.workloads.insert("jobs".into(), worker);
        let out = effective(&spec, &settings(Some(8081)), 4).expect("resolves");
        assert_eq!(out.workloads[WEB].port, Some(8081), "slipway.toml's port wins");
        assert_eq!(out.workloads[WEB].health.as_deref(), Some("/ready"), "the template's health stays");
        assert_eq!(out.workloads[WEB].replicas, 4, "the primary workload takes the scaled count");
        assert_eq!(out.workloads["jobs"].replicas, 3);
        assert_eq!(out.workloads["jobs"].command.as_deref(), Some("run-jobs --fast"));
        assert_eq!(processes_of(&out)["jobs"], "run-jobs --fast");
        spec.workloads.get_mut("jobs").unwrap().process = Some("missing".into());
        let err = effective(&spec, &settings(None), 1).unwrap_err();
        assert!(
            matches!(&err, SpecError::UndefinedProcess { workload, process } if workload == "jobs" && process == "missing")
        );
        assert_eq!(
            err.to_string(),
            "workload jobs runs process \"missing\", which slipway.toml [processes] does not define"
        );
        assert!(matches!(parse_stored("{not json"), Err(SpecError::Unreadable(_))));
        let unreadable = StoredSpec::from("{not json".to_owned());
        assert!(matches!(unreadable.get(), Err(SpecError::Unreadable(_))));
        assert!(unreadable.or_legacy(8080, "/").is_err(), "never the legacy defaults in its place");
        assert!(parse_stored("  ").expect("empty is no spec").is_none());
        let legacy = StoredSpec::from(String::new());
        assert_eq!(legacy.get().expect("empty is a legacy record"), None);
        assert_eq!(legacy.or_legacy(5000, "/up").expect("legacy"), legacy_spec(5000, "/up"));
        let spec = legacy_spec(8080, "/");
        let stored = StoredSpec::from(StoredSpec::encode(&spec));
        assert_eq!(stored.get().expect("an encoded spec reads back"), Some(&spec));
    }
}
