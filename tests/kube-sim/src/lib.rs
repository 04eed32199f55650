//! A Kubernetes API-server simulator, for testing Slipway's Kubernetes runtime where no
//! cluster runs. It is an axum router, so tests use it in-process (`kube::Client::new`)
//! or served on 127.0.0.1 behind a kubeconfig ([`KubeSim::serve`]). It implements what
//! Slipway uses, faithfully enough to fail on what a real API server would refuse:
//!
//! - the kinds Slipway writes (namespaces, secrets, config maps, services, pods,
//!   deployments, stateful sets, ingresses, HPAs, PVCs, resource quotas, limit ranges);
//!   every object received is deserialized into its k8s-openapi type *and* compared
//!   with what that type keeps, so a misspelled or misplaced field fails the request;
//! - create, get, list (with label selectors), replace, delete, JSON merge patch, and
//!   server-side apply: field ownership per manager, conflicts without `force`, fields a
//!   manager stops applying are removed, `managedFields` reported;
//! - `resourceVersion` bumped on every change (not on a no-op apply), `generation`
//!   bumped only when `spec` changes, `uid` and `creationTimestamp`;
//! - watch (a stream of JSON watch events after a list's resourceVersion);
//! - namespace deletion with finalization (Terminating, contents deleted, then gone);
//! - a deployment controller: a rolling update within `maxSurge`/`maxUnavailable` (old
//!   pods stay while new ones are not ready), pods ready shortly after, or failing on
//!   command ([`KubeSim::fail_image`]: `ImagePullBackOff` or `CrashLoopBackOff`), with
//!   the Deployment's status (observedGeneration, replica counts, conditions);
//! - an autoscaler controller that sets its target's `replicas` within its bounds;
//! - what a real server does to what it stores and refuses (`kube_sim/normalize.rs`): canonical
//!   quantities, empty `omitempty` fields dropped, `replicas` defaulted, unknown fields
//!   at any depth, invalid names and labels, a changed workload selector, a StatefulSet
//!   spec changed beyond its replicas and template;
//! - `dryRun=All` on writes: the result answered, nothing stored (or refused, as an
//!   admission webhook without dry-run support does: [`KubeSim::refuse_dry_runs`]).
//!
//! Arrays are applied atomically (a real server merges keyed lists such as containers
//! by name, so a container or variable another manager adds stays); Slipway always
//! applies whole objects, and fields other managers own are not drift for it either.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

mod fields;
mod kinds;
mod normalize;
mod server;

pub use normalize::canonical_quantity;

use fields::*;
use kinds::*;
use server::*;

/// How a pod of an image fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFailure {
    ImagePullBackOff,
    CrashLoopBackOff,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) group_version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Key {
    fn of(kind: &Kind, namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key { group_version: kind.group_version, plural: kind.plural, namespace: namespace.into(), name: name.into() }
    }
}

/// A stored object and which manager owns which of its fields.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) object: Value,
    pub(crate) owners: BTreeMap<String, BTreeSet<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) key: Key,
    pub(crate) kind: &'static str,
    pub(crate) object: Value,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) objects: Mutex<BTreeMap<Key, Stored>>,
    pub(crate) failures: Mutex<Vec<(String, PodFailure)>>,
    /// Kinds (plurals) whose dry runs are refused, as an admission webhook without
    /// `sideEffects: None` makes a real server refuse them.
    pub(crate) no_dry_run: Mutex<BTreeSet<String>>,
    pub(crate) log: Mutex<Vec<String>>,
}

/// The simulator. Cheap to clone; every clone is the same server.
#[derive(Clone)]
pub struct KubeSim {
    inner: Arc<Inner>,
    rv: Arc<AtomicU64>,
    events: broadcast::Sender<Event>,
}

impl Default for KubeSim {
    fn default() -> Self {
        KubeSim::new()
    }
}

impl std::fmt::Debug for KubeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeSim")
    }
}

pub(crate) fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(crate) fn ok_json(code: StatusCode, value: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

impl KubeSim {
    pub fn new() -> KubeSim {
        let (events, _) = broadcast::channel(4096);
        KubeSim { inner: Arc::default(), rv: Arc::new(AtomicU64::new(100)), events }
    }

    /// Pods of images whose reference contains `image_part` fail this way from now on.
    pub fn fail_image(&self, image_part: &str, failure: PodFailure) {
        self.inner.failures.lock().expect("lock").push((image_part.to_owned(), failure));
    }

    /// Dry runs of this kind (a plural, e.g. `limitranges`) are refused from now on.
    pub fn refuse_dry_runs(&self, plural: &str) {
        self.inner.no_dry_run.lock().expect("lock").insert(plural.to_owned());
    }

    /// Every request received, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.log.lock().expect("lock").clone()
    }

    /// An object as stored, if it exists (`group_version` like `apps/v1`).
    pub fn get(&self, group_version: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = kind_of(group_version, plural)?;
        let key = Key::of(kind, namespace.to_owned(), name.to_owned());
        self.inner.objects.lock().expect("lock").get(&key).map(|s| s.object.clone())
    }

    /// Names of the stored objects of a kind in a namespace.
    pub fn names(&self, group_version: &str, plural: &str, namespace: &str) -> Vec<String> {
        let objects = self.inner.objects.lock().expect("lock");
        objects
            .keys()
            .filter(|k| k.group_version == group_version && k.plural == plural && k.namespace == namespace)
            .map(|k| k.name.clone())
            .collect()
    }

    /// Deletes an object out of band, as `kubectl delete` would.
    pub fn remove(&self, group_version: &str, plural: &str, namespace: &str, name: &str) -> bool {
        let Some(kind) = kind_of(group_version, plural) else { return false };
        let key = Key::of(kind, namespace.to_owned(), name.to_owned());
        self.delete_key(&key).is_some()
    }

    /// Changes an object out of band, as `kubectl edit` would (another manager).
    pub fn tamper(
        &self,
        group_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) {
        let Some(kind) = kind_of(group_version, plural) else { return };
        let key = Key::of(kind, namespace.to_owned(), name.to_owned());
        let mut objects = self.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key) {
            let before = stored.object.get("spec").cloned();
            edit(&mut stored.object);
            let rv = self.rv.fetch_add(1, Ordering::SeqCst) + 1;
            stored.object["metadata"]["resourceVersion"] = json!(rv.to_string());
            if stored.object.get("spec").cloned() != before {
                let generation = stored.object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                stored.object["metadata"]["generation"] = json!(generation);
            }
            let _ = self.events.send(Event { key: key.clone(), kind: "MODIFIED", object: stored.object.clone() });
        }
        drop(objects);
        if plural == "deployments" {
            self.reconcile_deployment(namespace, name);
        }
    }

    /// The simulator as an axum router (a tower service for `kube::Client::new`).
    pub fn router(&self) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self.clone())
    }

    /// Serves the simulator on 127.0.0.1; answers its URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        format!("http://{addr}")
    }

    /// A kubeconfig for a served simulator, with one context named `context`.
    pub fn kubeconfig(url: &str, context: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {url}\n\
             contexts:\n- name: {context}\n  context:\n    cluster: sim\n    user: sim\n\
             current-context: {context}\nusers:\n- name: sim\n  user:\n    token: sim-token\n"
        )
    }

    fn next_rv(&self) -> u64 {
        self.rv.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Stores `object` under `key` as the outcome of a write; answers the stored object
    /// and whether anything changed. A dry run (`dryRun=All`) answers the same and
    /// stores nothing.
    fn commit(
        &self,
        key: &Key,
        kind: &Kind,
        mut object: Value,
        owners: BTreeMap<String, BTreeSet<Vec<String>>>,
        dry_run: bool,
    ) -> (Value, bool) {
        let mut objects = self.inner.objects.lock().expect("lock");
        let old = objects.get(key).cloned();
        object["apiVersion"] = json!(kind.group_version);
        object["kind"] = json!(kind.kind);
        object["metadata"]["name"] = json!(key.name);
        if kind.namespaced {
            object["metadata"]["namespace"] = json!(key.namespace);
        }
        if let Some(old) = &old {
            for field in ["uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp"] {
                match old.object["metadata"].get(field) {
                    Some(v) => object["metadata"][field] = v.clone(),
                    None => {
                        if let Some(m) = object["metadata"].as_object_mut() {
                            m.remove(field);
                        }
                    }
                }
            }
            if object.get("status").is_none()
                && let Some(status) = old.object.get("status")
            {
                object["status"] = status.clone();
            }
        } else if dry_run {
            object["metadata"]["uid"] = json!("uid-dry-run");
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            object["metadata"]["generation"] = json!(1);
        } else {
            object["metadata"]["uid"] = json!(format!("uid-{}", self.next_rv()));
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            object["metadata"]["generation"] = json!(1);
        }
        object["metadata"]["managedFields"] = managed_fields(&owners, kind.group_version);
        let changed = match &old {
            None => true,
            Some(old) => {
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(m) = v["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                        m.remove("managedFields");
                    }
                    v
                };
                strip(&old.object) != strip(&object) || old.owners != owners
            }
        };
        if !changed {
            return (old.map(|o| o.object).unwrap_or(object), false);
        }
        if let Some(old) = &old
            && old.object.get("spec") != object.get("spec")
        {
            let generation = old.object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
        }
        if dry_run {
            return (object, true);
        }
        object["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
        objects.insert(key.clone(), Stored { object: object.clone(), owners });
        let _ = self.events.send(Event {
            key: key.clone(),
            kind: if old.is_some() { "MODIFIED" } else { "ADDED" },
            object: object.clone(),
        });
        (object, true)
    }

    fn delete_key(&self, key: &Key) -> Option<Value> {
        let removed = self.inner.objects.lock().expect("lock").remove(key)?;
        let _ = self.events.send(Event { key: key.clone(), kind: "DELETED", object: removed.object.clone() });
        Some(removed.object)
    }

    /// The autoscaler controller: a Deployment an HPA targets gets a count within the
    /// HPA's bounds (with no metrics here, the current count clamped), written to its
    /// `spec.replicas` as the scale subresource would (a new generation, no field owner
    /// of the applier's).
    fn autoscale(&self, namespace: &str, name: &str) {
        let hpa = {
            let objects = self.inner.objects.lock().expect("lock");
            objects
                .iter()
                .find(|(k, s)| {
                    k.plural == "horizontalpodautoscalers"
                        && k.namespace == namespace
                        && s.object["spec"]["scaleTargetRef"]["name"] == json!(name)
                })
                .map(|(_, s)| s.object.clone())
        };
        let Some(hpa) = hpa else { return };
        let Some(current) = self.get("apps/v1", "deployments", namespace, name) else { return };
        let min = hpa["spec"]["minReplicas"].as_i64().unwrap_or(1);
        let max = hpa["spec"]["maxReplicas"].as_i64().unwrap_or(min).max(min);
        let count = current["spec"]["replicas"].as_i64().unwrap_or(1);
        if count < min || count > max {
            self.tamper("apps/v1", "deployments", namespace, name, |d| {
                d["spec"]["replicas"] = json!(count.clamp(min, max))
            });
        }
    }

    /// A deployment's pods of the template `hash` and of other templates, each with
    /// whether it is ready.
    #[allow(clippy::type_complexity)]
    fn pods_of(&self, namespace: &str, name: &str, hash: &str) -> (Vec<(Key, bool)>, Vec<(Key, bool)>) {
        let objects = self.inner.objects.lock().expect("lock");
        objects
            .iter()
            .filter(|(k, s)| {
                k.plural == "pods"
                    && k.namespace == namespace
                    && s.object["metadata"]["labels"]["slipway-sim/deployment"] == json!(name)
            })
            .map(|(k, s)| {
                let ready = s.object["status"]["conditions"][0]["status"] == json!("True");
                let new = s.object["metadata"]["labels"]["pod-template-hash"] == json!(hash);
                (k.clone(), ready, new)
            })
            .fold((Vec::new(), Vec::new()), |(mut new, mut old), (k, ready, is_new)| {
                if is_new {
                    new.push((k, ready))
                } else {
                    old.push((k, ready))
                }
                (new, old)
            })
    }

    /// Starts pod `i` of a deployment's template: ready, or failing as told.
    #[allow(clippy::too_many_arguments)]
    fn start_pod(
        &self,
        namespace: &str,
        name: &str,
        deployment: &Value,
        template: &Value,
        hash: &str,
        failure: Option<PodFailure>,
        i: usize,
    ) {
        let pod_kind = kind_of("v1", "pods").expect("pods");
        let ready = failure.is_none();
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["pod-template-hash"] = json!(hash);
        labels["slipway-sim/deployment"] = json!(name);
        let container_status: Vec<Value> = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let state = match failure {
                    None => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
                    Some(PodFailure::ImagePullBackOff) => json!({"waiting": {"reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{}\"", c["image"].as_str().unwrap_or_default())}}),
                    Some(PodFailure::CrashLoopBackOff) => json!({"waiting": {"reason": "CrashLoopBackOff",
                        "message": "back-off 10s restarting failed container"}}),
                };
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": ready, "restartCount":
                    if failure == Some(PodFailure::CrashLoopBackOff) { 3 } else { 0 }, "state": state})
            })
            .collect();
        let pod = json!({
            "metadata": {"name": format!("{name}-{hash}-{i}"), "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": deployment["metadata"]["uid"], "controller": true}]},
            "spec": template["spec"],
            "status": {"phase": if failure == Some(PodFailure::ImagePullBackOff) { "Pending" } else { "Running" },
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": container_status},
        });
        let key = Key {
            group_version: "v1",
            plural: "pods",
            namespace: namespace.to_owned(),
            name: format!("{name}-{hash}-{i}"),
        };
        self.commit(&key, pod_kind, pod, BTreeMap::new(), false);
    }

    /// Runs a deployment: pods per replica, then its status.
    fn reconcile_deployment(&self, namespace: &str, name: &str) {
        let Some(deployment) = self.get("apps/v1", "deployments", namespace, name) else { return };
        let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
        let template = deployment["spec"]["template"].clone();
        let hash = format!("{:x}", fxhash(&template.to_string()));
        let images: Vec<String> = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str().map(str::to_owned))
            .collect();
        let failure = {
            let failures = self.inner.failures.lock().expect("lock");
            failures.iter().find(|(part, _)| images.iter().any(|i| i.contains(part.as_str()))).map(|(_, f)| *f)
        };
        // A rolling update as the controller runs one: pods of the new template are added
        // while the total stays within replicas + maxSurge, and an old pod goes only while
        // the ready pods stay at least replicas - maxUnavailable. Under maxUnavailable: 0 a
        // template whose pods never get ready leaves the old ones serving.
        let strategy = &deployment["spec"]["strategy"]["rollingUpdate"];
        // (Percentages, the server's default of 25 %, count as one pod here.)
        let unavailable = strategy["maxUnavailable"].as_i64().unwrap_or(0).max(0);
        let surge = strategy["maxSurge"].as_i64().unwrap_or(1).max(if unavailable == 0 { 1 } else { 0 });
        let ready = failure.is_none();
        let (new, old) = loop {
            let (new, old) = self.pods_of(namespace, name, &hash);
            let ready_now = new.iter().chain(&old).filter(|(_, r)| *r).count() as i64;
            let (new_count, total) = (new.len() as i64, (new.len() + old.len()) as i64);
            if new_count > replicas {
                self.delete_key(&new[new.len() - 1].0);
                continue;
            }
            if new_count < replicas && total < replicas + surge {
                let taken: BTreeSet<String> = new.iter().map(|(k, _)| k.name.clone()).collect();
                let i = (0..).find(|i| !taken.contains(&format!("{name}-{hash}-{i}"))).unwrap_or(0);
                self.start_pod(namespace, name, &deployment, &template, &hash, failure, i);
                continue;
            }
            let retire = old.iter().find(|(_, r)| !r).or(old.first());
            if let Some((key, was_ready)) = retire
                && (!was_ready || ready_now > replicas - unavailable)
            {
                self.delete_key(key);
                continue;
            }
            break (new, old);
        };
        if let Some(failure) = failure {
            // What the kubelet would report.
            let (reason, message) = match failure {
                PodFailure::ImagePullBackOff => ("Failed", format!("Failed to pull image \"{}\"", images.join(", "))),
                PodFailure::CrashLoopBackOff => ("BackOff", "Back-off restarting failed container".to_owned()),
            };
            let event_name = format!("{name}.{hash}");
            let event = json!({"metadata": {"name": event_name}, "type": "Warning", "reason": reason, "message": message,
                "involvedObject": {"kind": "Pod", "name": format!("{name}-{hash}-0"), "namespace": namespace}});
            let key = Key { group_version: "v1", plural: "events", namespace: namespace.to_owned(), name: event_name };
            self.commit(&key, kind_of("v1", "events").expect("events"), event, BTreeMap::new(), false);
        }
        let generation = deployment["metadata"]["generation"].clone();
        let ready_count = new.iter().chain(&old).filter(|(_, r)| *r).count() as i64;
        let (updated, total) = (new.len() as i64, (new.len() + old.len()) as i64);
        let progressing = if ready {
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"})
        } else {
            json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                "message": format!("ReplicaSet \"{name}-{hash}\" has timed out progressing.")})
        };
        let status = json!({
            "observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
            "readyReplicas": ready_count, "availableReplicas": ready_count,
            "unavailableReplicas": (replicas - ready_count).max(0),
            "conditions": [
                {"type": "Available", "status": if ready_count >= replicas - unavailable { "True" } else { "False" }},
                progressing,
            ],
        });
        let key = Key {
            group_version: "apps/v1",
            plural: "deployments",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let mut objects = self.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key)
            && stored.object.get("status") != Some(&status)
        {
            stored.object["status"] = status;
            stored.object["metadata"]["resourceVersion"] = json!(self.next_rv().to_string());
            let _ = self.events.send(Event { key, kind: "MODIFIED", object: stored.object.clone() });
        }
    }

    /// Deletes a namespace the way the API server does: Terminating first, then its
    /// contents, then the namespace itself.
    fn finalize_namespace(&self, name: String) {
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let keys: Vec<Key> =
                sim.inner.objects.lock().expect("lock").keys().filter(|k| k.namespace == name).cloned().collect();
            for key in keys {
                sim.delete_key(&key);
            }
            sim.delete_key(&Key { group_version: "v1", plural: "namespaces", namespace: String::new(), name });
        });
    }
}
