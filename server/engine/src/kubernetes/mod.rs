//! The Kubernetes runtime: an environment on a registered cluster is a namespace
//! `slipway-<service>-<env>` holding, per workload, a Deployment (image by digest, env from
//! a Secret, resources, probes from the health path, rolling updates that never drop below
//! the desired count), and for `web` a Service and an Ingress at
//! `<service>-<env>.<base domain>`. Everything is written with server-side apply under the
//! field manager `slipway`, so applying the same release twice changes nothing. A deploy
//! waits for each Deployment's rollout and, when pods fail (image pull, crash loop) or the
//! rollout stalls, re-applies the previous release and fails the run with the reason.

use slipway_core::run::Stage;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use slipway_core::template::Spec;
use slipway_store::environments::EnvironmentState;

use crate::Engine;
use crate::logger::RunLog;

#[cfg(test)]
mod against_sim;
mod error;
mod manifests;
mod runtime;
#[cfg(test)]
mod tests;
mod watch;
pub use error::KubeError;
pub use manifests::{ClusterAddon, Desired, manifests, namespace_of, playable, release_job, split_base};

/// What the engine keeps of the registered clusters.
#[derive(Debug, Default)]
pub(crate) struct Clusters {
    /// One client per cluster (see `Engine::cluster_client`).
    pub(crate) clients: ClusterClients,
    /// The managed Deployments' replica counts on each cluster, as its watch last saw
    /// them: `(cluster, namespace, deployment)` → ready and desired.
    pub(crate) workloads: std::sync::Mutex<std::collections::HashMap<(String, String, String), crate::Workload>>,
    /// Cluster objects a drift check settled (found clean, or whose dry run the server
    /// refused): `cluster/namespace/Kind name` → the live resourceVersion and the
    /// manifest's hash then. Not checked again until one of them changes (see
    /// `Engine::drifted`).
    pub(crate) drift_settled: std::sync::Mutex<std::collections::HashMap<String, (String, u64)>>,
}
pub(crate) use watch::watch_clusters;

/// The field manager of everything Slipway applies.
pub const FIELD_MANAGER: &str = "slipway";
/// Where a kubeconfig points: the context used and its API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub context: String,
    pub server: String,
}

/// Checks a kubeconfig document: it parses, and the context (given, else the current
/// one) exists and names a cluster with a server.
pub fn inspect_kubeconfig(yaml: &str, context: Option<&str>) -> Result<KubeTarget, KubeError> {
    let config = Kubeconfig::from_yaml(yaml).map_err(KubeError::Unparsable)?;
    let context = match context {
        Some(c) => c.to_owned(),
        None => config.current_context.clone().ok_or(KubeError::NoCurrentContext)?,
    };
    let named =
        config.contexts.iter().find(|c| c.name == context).ok_or_else(|| KubeError::NoSuchContext(context.clone()))?;
    let cluster_name = named.context.as_ref().map(|c| c.cluster.clone()).unwrap_or_default();
    let server = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| KubeError::NoServer(context.clone()))?;
    Ok(KubeTarget { context, server })
}

/// A client for a kubeconfig's context.
pub async fn client(yaml: &str, context: &str) -> Result<kube::Client, KubeError> {
    let config = Kubeconfig::from_yaml(yaml).map_err(KubeError::Unparsable)?;
    let options = KubeConfigOptions { context: Some(context.to_owned()), ..KubeConfigOptions::default() };
    let config = kube::Config::from_custom_kubeconfig(config, &options)
        .await
        .map_err(|source| KubeError::Unusable { context: context.to_owned(), source })?;
    kube::Client::try_from(config).map_err(KubeError::Client)
}

/// The API of a manifest's kind, in its namespace.
fn api_for(client: &kube::Client, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    let api = match object["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    (api, name)
}

pub(crate) fn describe(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Applies a Job and waits until it succeeds or fails.
pub async fn run_job(client: &kube::Client, job: &Value, within: Duration) -> Result<(), KubeError> {
    use k8s_openapi::api::batch::v1::Job;
    apply(client, std::slice::from_ref(job)).await?;
    let ns = job["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let status = api
            .get(name)
            .await
            .map_err(|source| KubeError::ReadJob { name: name.to_owned(), source })?
            .status
            .unwrap_or_default();
        if status.succeeded.unwrap_or(0) > 0 {
            return Ok(());
        }
        if status.failed.unwrap_or(0) > 0 {
            let reason = status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Failed")
                .and_then(|c| c.message.or(c.reason))
                .unwrap_or_else(|| "it failed".to_owned());
            return Err(KubeError::ReleaseFailed(reason));
        }
        if started.elapsed() > within {
            return Err(KubeError::ReleaseTimedOut(within.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies every manifest with server-side apply (forced: Slipway owns these objects).
pub async fn apply(client: &kube::Client, objects: &[Value]) -> Result<(), KubeError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for object in objects {
        let (api, name) = api_for(client, object);
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| KubeError::Apply { object: describe(object), source })?;
    }
    Ok(())
}

/// An object as the server answers it, less what changes without anyone editing it
/// (its version, field ownership, status), for comparing two answers of one server.
fn comparable(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = value["metadata"].as_object_mut() {
        for field in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(field);
        }
    }
    value
}

impl Engine {
    /// The manifests whose live object is missing or differs from what applying the
    /// manifest would make of it (changed or deleted out of band). Decided as `kubectl
    /// diff` and Argo CD's server-side diff do: a server-side apply with `dryRun=All` and
    /// Slipway's field manager answers the object as the server would store it
    /// (quantities canonical, empty fields dropped, defaults filled in), and only a
    /// difference between that and the live object is drift. Comparing the manifest
    /// itself with the live object would see the server's rewriting as drift on every
    /// check. Fields other managers own (a sidecar an admission webhook injects, an env
    /// var `kubectl set env` added) are theirs and stay, as with `kubectl diff`.
    ///
    /// An object found clean is not dry-run again while neither its live version nor its
    /// manifest changes: a check is then one read. One that cannot be checked (the server
    /// refuses the dry run) is logged and skipped, and the others are still checked.
    pub(crate) async fn drifted(&self, cluster: &str, client: &kube::Client, objects: &[Value]) -> Vec<Value> {
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let mut out = Vec::new();
        for object in objects {
            match self.drifted_one(cluster, client, object, &params).await {
                Ok(true) => out.push(object.clone()),
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, cluster, "a drift check failed; the object is left as it is"),
            }
        }
        out
    }

    async fn drifted_one(
        &self,
        cluster: &str,
        client: &kube::Client,
        object: &Value,
        params: &PatchParams,
    ) -> Result<bool, crate::DeployError> {
        let (api, name) = api_for(client, object);
        let key =
            format!("{cluster}/{}/{}", object["metadata"]["namespace"].as_str().unwrap_or_default(), describe(object));
        let Some(live) = api.get_opt(&name).await.map_err(|e| format!("reading {}: {e}", describe(object)))? else {
            return Ok(true);
        };
        let version = live.metadata.resource_version.clone().unwrap_or_default();
        let manifest = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            object.to_string().hash(&mut hasher);
            hasher.finish()
        };
        let now = (version, manifest);
        if crate::locked(&self.clusters().drift_settled).get(&key) == Some(&now) {
            return Ok(false);
        }
        // A dry run the server refused (an admission webhook without dry-run support)
        // settles the object too: it is not tried (nor logged) again until it or its
        // manifest changes. One that did not reach the server is tried again next time.
        let same = api
            .patch(&name, params, &Patch::Apply(object))
            .await
            .map(|applied| comparable(&applied) == comparable(&live));
        let settles = match &same {
            Ok(same) => *same,
            Err(err) => matches!(err, kube::Error::Api(_)),
        };
        let mut settled = crate::locked(&self.clusters().drift_settled);
        if settles {
            settled.insert(key, now);
        } else {
            settled.remove(&key);
        }
        drop(settled);
        let same = same.map_err(|err| format!("checking {} (a dry-run apply): {err}", describe(object)))?;
        Ok(!same)
    }
}

/// Why pods of a Deployment cannot become ready, if they say.
async fn pod_trouble(client: &kube::Client, ns: &str, workload: &str) -> Option<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("app.kubernetes.io/component={workload}");
    let list = pods.list(&ListParams::default().labels(&selector)).await.ok()?;
    list.items.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        statuses.iter().find_map(|s| {
            let waiting = s.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            ["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName"]
                .contains(&reason.as_str())
                .then(|| {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    format!("pod {name}: {reason}: {}", waiting.message.clone().unwrap_or_default())
                })
        })
    })
}

/// Waits until every Deployment of the spec has rolled out, logging replica counts as
/// they change; fails with the pods' reasons or on a stalled rollout. Done is decided as
/// `kubectl rollout status` does, against the Deployment's own `spec.replicas` (for an
/// autoscaled workload the autoscaler's count, never the template's): the new generation
/// observed, every replica updated, no old replica left, every updated one available.
pub async fn wait_rollout(
    client: &kube::Client,
    ns: &str,
    spec: &Spec,
    within: Duration,
    log: &RunLog,
) -> Result<(), KubeError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut done = true;
        for (name, w) in &spec.workloads {
            let d =
                api.get(name).await.map_err(|source| KubeError::Read { what: format!("deployment {name}"), source })?;
            let generation = d.metadata.generation.unwrap_or(0);
            // The server defaults an absent count to 1; an autoscaler that has not acted yet
            // (a new Deployment starts at 1) is waited for up to its minimum.
            let own = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let want = w.autoscale.as_ref().map_or(own, |a| own.max(i32::try_from(a.min).unwrap_or(1)));
            let status = d.status.unwrap_or_default();
            let (total, updated, ready, available) = (
                status.replicas.unwrap_or(0),
                status.updated_replicas.unwrap_or(0),
                status.ready_replicas.unwrap_or(0),
                status.available_replicas.unwrap_or(0),
            );
            let mut line = format!("{name}: {updated}/{want} updated, {ready}/{want} ready");
            if w.autoscale.is_some() {
                line.push_str(" (the autoscaler's count)");
            }
            if last.get(name) != Some(&line) {
                log.line(Stage::Deploy, &line);
                last.insert(name.clone(), line);
            }
            let observed = status.observed_generation.unwrap_or(0) >= generation;
            if !(observed && updated >= want && total <= updated && available >= updated && ready >= want) {
                done = false;
                if let Some(trouble) = pod_trouble(client, ns, name).await {
                    return Err(KubeError::PodTrouble(trouble));
                }
                let stalled = status.conditions.unwrap_or_default().into_iter().find(|c| {
                    c.type_ == "Progressing"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                });
                if let Some(c) = stalled {
                    return Err(KubeError::ProgressDeadline {
                        name: name.clone(),
                        message: c.message.unwrap_or_default(),
                    });
                }
            }
        }
        if done {
            return wait_statefulsets(client, ns, within.saturating_sub(started.elapsed()), log).await;
        }
        if started.elapsed() > within {
            return Err(KubeError::RolloutTimedOut(within));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The latest warning events of a namespace (`reason: message`), newest last, for a
/// failed rollout's explanation.
pub async fn warning_events(client: &kube::Client, ns: &str, most: usize) -> Vec<String> {
    use k8s_openapi::api::core::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list(&ListParams::default()).await else { return Vec::new() };
    let mut warnings: Vec<&Event> = list.items.iter().filter(|e| e.type_.as_deref() == Some("Warning")).collect();
    warnings.sort_by_key(|e| e.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0));
    let skip = warnings.len().saturating_sub(most);
    warnings
        .into_iter()
        .skip(skip)
        .map(|e| format!("{}: {}", e.reason.clone().unwrap_or_default(), e.message.clone().unwrap_or_default()))
        .collect()
}

/// Waits until the add-ons' StatefulSets have their replica ready.
async fn wait_statefulsets(client: &kube::Client, ns: &str, within: Duration, log: &RunLog) -> Result<(), KubeError> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    loop {
        let sets = api
            .list(&ListParams::default())
            .await
            .map_err(|source| KubeError::Read { what: "stateful sets".to_owned(), source })?;
        let waiting: Vec<String> = sets
            .items
            .iter()
            .filter(|s| {
                let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                s.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) < want
            })
            .filter_map(|s| s.metadata.name.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        for name in &waiting {
            if let Some(trouble) = pod_trouble(client, ns, name).await {
                return Err(KubeError::PodTrouble(trouble));
            }
        }
        if started.elapsed() > within {
            return Err(KubeError::AddonsNotReady { waiting, within });
        }
        log.line(Stage::Deploy, &format!("waiting for add-on(s) {}", waiting.join(", ")));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes an environment's namespace and waits until the cluster has finalized it.
/// Only a namespace labelled as this service's environment is deleted (and only the very
/// object that was checked: the delete carries its uid as a precondition); one that
/// carries other labels belongs to someone else and is left alone.
pub async fn delete_namespace(
    client: &kube::Client,
    ns: &str,
    service: &str,
    environment: &str,
    within: Duration,
) -> Result<(), KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let read = |source| KubeError::Read { what: format!("namespace {ns}"), source };
    let Some(found) = api.get_opt(ns).await.map_err(read)? else {
        return Ok(());
    };
    let labels = found.metadata.labels.clone().unwrap_or_default();
    let label = |key: &str| labels.get(key).map(String::as_str);
    if label("slipway.dev/service") != Some(service) || label("slipway.dev/env") != Some(environment) {
        return Err(KubeError::NotOurs {
            ns: ns.to_owned(),
            service: service.to_owned(),
            environment: environment.to_owned(),
        });
    }
    let precondition = kube::api::Preconditions { uid: found.metadata.uid.clone(), resource_version: None };
    let params = DeleteParams { preconditions: Some(precondition), ..DeleteParams::default() };
    match api.delete(ns, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(source) => return Err(KubeError::DeleteNamespace { ns: ns.to_owned(), source }),
    }
    let started = Instant::now();
    loop {
        match api.get_opt(ns).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) if started.elapsed() > within => {
                return Err(KubeError::StillTerminating { ns: ns.to_owned(), within });
            }
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(source) => return Err(KubeError::Read { what: format!("namespace {ns}"), source }),
        }
    }
}

/// One client per cluster, with the registration (sealed kubeconfig, context) it was made
/// from.
#[derive(Default)]
pub(crate) struct ClusterClients(std::sync::Mutex<ClientsByCluster>);

/// Cluster name → ((sealed kubeconfig, context), client).
type ClientsByCluster = std::collections::HashMap<String, ((String, String), kube::Client)>;

impl ClusterClients {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClientsByCluster> {
        crate::locked(&self.0)
    }

    pub(crate) fn forget(&self, cluster: &str) {
        self.lock().remove(cluster);
    }
}

impl std::fmt::Debug for ClusterClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.lock().keys()).finish()
    }
}

impl Engine {
    /// A client for a registered cluster (its kubeconfig opened with the secret key). One
    /// client per cluster is kept and shared (its connection pool with it) while the
    /// cluster's registration is the same: every reconcile pass asks for it.
    pub async fn cluster_client(
        &self,
        name: &str,
    ) -> Result<(kube::Client, slipway_store::clusters::ClusterRow), KubeError> {
        let row = self
            .store()
            .cluster_by_name(name)
            .await
            .map_err(|source| KubeError::Registration { name: name.to_owned(), source })?;
        let registration = (row.kubeconfig_sealed.clone(), row.context.clone());
        let cached = {
            let clients = self.clusters().clients.lock();
            clients.get(name).filter(|(made_from, _)| *made_from == registration).map(|(_, client)| client.clone())
        };
        if let Some(client) = cached {
            return Ok((client, row));
        }
        let yaml = self
            .config()
            .secret_key
            .open(&row.kubeconfig_sealed, &cluster_seal_context(name))
            .map_err(|source| KubeError::Sealed { name: name.to_owned(), source })?;
        let client = client(&yaml, &row.context).await?;
        self.clusters().clients.lock().insert(name.to_owned(), (registration, client.clone()));
        Ok((client, row))
    }
}

/// What a cluster's sealed kubeconfig is bound to.
pub fn cluster_seal_context(name: &str) -> String {
    format!("slipway-cluster:{name}")
}

/// The host an environment on a cluster is served at.
pub fn host_of(state: &EnvironmentState, base_domain: &str) -> String {
    format!("{}-{}.{base_domain}", state.service, state.name)
}
