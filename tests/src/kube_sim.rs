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

mod normalize;
pub use normalize::canonical_quantity;

/// How a pod of an image fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFailure {
    ImagePullBackOff,
    CrashLoopBackOff,
}

/// One kind the simulator serves.
struct Kind {
    group_version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    /// Deserializes into the k8s-openapi type and serializes back.
    roundtrip: fn(Value) -> Result<Value, String>,
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(value: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

use k8s_openapi::api::{apps, autoscaling, core, networking, rbac};

const KINDS: &[Kind] = &[
    Kind {
        group_version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        roundtrip: roundtrip::<core::v1::Namespace>,
    },
    Kind {
        group_version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Secret>,
    },
    Kind {
        group_version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ConfigMap>,
    },
    Kind {
        group_version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Service>,
    },
    Kind { group_version: "v1", plural: "pods", kind: "Pod", namespaced: true, roundtrip: roundtrip::<core::v1::Pod> },
    Kind {
        group_version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Event>,
    },
    Kind {
        group_version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::PersistentVolumeClaim>,
    },
    Kind {
        group_version: "v1",
        plural: "resourcequotas",
        kind: "ResourceQuota",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ResourceQuota>,
    },
    Kind {
        group_version: "v1",
        plural: "limitranges",
        kind: "LimitRange",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::LimitRange>,
    },
    Kind {
        group_version: "apps/v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        roundtrip: roundtrip::<apps::v1::Deployment>,
    },
    Kind {
        group_version: "apps/v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        roundtrip: roundtrip::<apps::v1::StatefulSet>,
    },
    Kind {
        group_version: "networking.k8s.io/v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        roundtrip: roundtrip::<networking::v1::Ingress>,
    },
    Kind {
        group_version: "batch/v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        roundtrip: roundtrip::<k8s_openapi::api::batch::v1::Job>,
    },
    Kind {
        group_version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ServiceAccount>,
    },
    Kind {
        group_version: "rbac.authorization.k8s.io/v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        roundtrip: roundtrip::<rbac::v1::ClusterRole>,
    },
    Kind {
        group_version: "rbac.authorization.k8s.io/v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        roundtrip: roundtrip::<rbac::v1::ClusterRoleBinding>,
    },
    Kind {
        group_version: "autoscaling/v2",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        roundtrip: roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>,
    },
];

fn kind_of(group_version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.group_version == group_version && k.plural == plural)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    group_version: &'static str,
    plural: &'static str,
    namespace: String,
    name: String,
}

impl Key {
    fn of(kind: &Kind, namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key { group_version: kind.group_version, plural: kind.plural, namespace: namespace.into(), name: name.into() }
    }
}

/// A stored object and which manager owns which of its fields.
#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    owners: BTreeMap<String, BTreeSet<Vec<String>>>,
}

#[derive(Debug, Clone)]
struct Event {
    key: Key,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct Inner {
    objects: Mutex<BTreeMap<Key, Stored>>,
    failures: Mutex<Vec<(String, PodFailure)>>,
    /// Kinds (plurals) whose dry runs are refused, as an admission webhook without
    /// `sideEffects: None` makes a real server refuse them.
    no_dry_run: Mutex<BTreeSet<String>>,
    log: Mutex<Vec<String>>,
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

fn status(code: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message.into(), "reason": reason, "code": code.as_u16()});
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok_json(code: StatusCode, value: &Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

/// Leaf paths of an object (objects recurse; arrays and scalars are leaves).
fn leaves(value: &Value, path: &mut Vec<String>, out: &mut BTreeMap<Vec<String>, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), other.clone());
        }
    }
}

fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

fn set_path(value: &mut Value, path: &[String], leaf: Value) {
    let mut at = value;
    for (i, k) in path.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().expect("object");
        if i == path.len() - 1 {
            map.insert(k.clone(), leaf);
            return;
        }
        at = map.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = value;
    for k in parents {
        match at.get_mut(k) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
}

/// The fields an apply manages: everything but identity, server-set metadata and status.
fn applied_fields(patch: &Value) -> BTreeMap<Vec<String>, Value> {
    let mut body = patch.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in
                ["name", "namespace", "resourceVersion", "managedFields", "uid", "creationTimestamp", "generation"]
            {
                meta.remove(field);
            }
        }
    }
    let mut out = BTreeMap::new();
    leaves(&body, &mut Vec::new(), &mut out);
    out.retain(|path, _| !(path.is_empty() || path.len() == 1 && path[0] == "metadata"));
    out
}

/// `managedFields` as a real server reports them (FieldsV1).
fn managed_fields(owners: &BTreeMap<String, BTreeSet<Vec<String>>>, api_version: &str) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(manager, paths)| {
            let mut fields = Value::Object(Map::new());
            for path in paths {
                let keyed: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
                set_path(&mut fields, &keyed, json!({}));
            }
            json!({"manager": manager, "operation": "Apply", "apiVersion": api_version, "fieldsType": "FieldsV1",
                "fieldsV1": fields})
        })
        .collect();
    Value::Array(entries)
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

/// FNV-1a: a stable short hash for pod-template-hash.
fn fxhash(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// `/api/v1/...` or `/apis/{group}/{version}/...` → (group_version, rest segments).
fn split_path(path: &str) -> Option<(String, Vec<String>)> {
    let segments: Vec<String> = path.trim_matches('/').split('/').map(str::to_owned).collect();
    match segments.first().map(String::as_str) {
        Some("api") if segments.len() >= 2 => Some((segments[1].clone(), segments[2..].to_vec())),
        Some("apis") if segments.len() >= 3 => {
            Some((format!("{}/{}", segments[1], segments[2]), segments[3..].to_vec()))
        }
        _ => None,
    }
}

fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn matches_selector(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else { return true };
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k.trim_end_matches('=')] == json!(v.trim_start_matches('=')),
        None => object["metadata"]["labels"].get(term).is_some(),
    })
}

async fn handle(State(sim): State<KubeSim>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = query_map(request.uri().query());
    let logged = match request.uri().query() {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    };
    sim.inner.log.lock().expect("lock").push(logged);
    match path.as_str() {
        "/version" => {
            return ok_json(
                StatusCode::OK,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-slipway-sim", "platform": "linux/amd64"}),
            );
        }
        "/api" => {
            return ok_json(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            );
        }
        "/apis" => {
            let groups: BTreeSet<&str> =
                KINDS.iter().filter(|k| k.group_version.contains('/')).map(|k| k.group_version).collect();
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|gv| {
                    let (group, version) = gv.split_once('/').expect("group/version");
                    json!({"name": group, "versions": [{"groupVersion": gv, "version": version}],
                        "preferredVersion": {"groupVersion": gv, "version": version}})
                })
                .collect();
            return ok_json(StatusCode::OK, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        _ => {}
    }
    let Some((group_version, rest)) = split_path(&path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find {path}"));
    };
    let (namespace, plural, name) = match rest.as_slice() {
        [] => {
            let resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group_version == group_version)
                .map(|k| {
                    json!({"name": k.plural, "singularName": "", "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
                })
                .collect();
            return ok_json(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}),
            );
        }
        [p] => (String::new(), p.clone(), None),
        [p, n] => (String::new(), p.clone(), Some(n.clone())),
        [ns_word, ns, p] if ns_word == "namespaces" => (ns.clone(), p.clone(), None),
        [ns_word, ns, p, n] if ns_word == "namespaces" => (ns.clone(), p.clone(), Some(n.clone())),
        [ns_word, ns, p, n, sub] if ns_word == "namespaces" && sub == "status" => {
            (ns.clone(), p.clone(), Some(n.clone()))
        }
        _ => return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find {path}")),
    };
    let Some(kind) = kind_of(&group_version, &plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server doesn't have a resource type {plural} in {group_version}"),
        );
    };
    if kind.namespaced == namespace.is_empty() && name.is_some() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural} is {}namespaced", if kind.namespaced { "" } else { "not " }),
        );
    }
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap_or_default();
    match (method, name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(sim, kind, namespace, query)
        }
        (Method::GET, None) => {
            let objects = sim.inner.objects.lock().expect("lock");
            let items: Vec<Value> = objects
                .iter()
                .filter(|(k, s)| {
                    k.group_version == kind.group_version
                        && k.plural == kind.plural
                        && (namespace.is_empty() || k.namespace == namespace)
                        && matches_selector(&s.object, query.get("labelSelector"))
                })
                .map(|(_, s)| s.object.clone())
                .collect();
            let rv = sim.rv.load(Ordering::SeqCst).to_string();
            ok_json(
                StatusCode::OK,
                &json!({"apiVersion": kind.group_version, "kind": format!("{}List", kind.kind),
                "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => match sim.get(kind.group_version, kind.plural, &namespace, &name) {
            Some(object) => ok_json(StatusCode::OK, &object),
            None => status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural)),
        },
        (Method::DELETE, Some(name)) => {
            let key = Key::of(kind, namespace.clone(), name.clone());
            if kind.plural == "namespaces" {
                let mut objects = sim.inner.objects.lock().expect("lock");
                let Some(stored) = objects.get_mut(&key) else {
                    return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{name}\" not found"));
                };
                stored.object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                stored.object["status"] = json!({"phase": "Terminating"});
                let object = stored.object.clone();
                drop(objects);
                sim.finalize_namespace(name);
                return ok_json(StatusCode::OK, &object);
            }
            match sim.delete_key(&key) {
                Some(object) => {
                    if kind.plural == "deployments" {
                        let pods: Vec<Key> = sim
                            .inner
                            .objects
                            .lock()
                            .expect("lock")
                            .iter()
                            .filter(|(k, s)| {
                                k.plural == "pods"
                                    && k.namespace == namespace
                                    && s.object["metadata"]["labels"]["slipway-sim/deployment"] == json!(name)
                            })
                            .map(|(k, _)| k.clone())
                            .collect();
                        for pod in pods {
                            sim.delete_key(&pod);
                        }
                    }
                    ok_json(StatusCode::OK, &object)
                }
                None => status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural)),
            }
        }
        (method @ (Method::POST | Method::PUT | Method::PATCH), name) => {
            write(sim, kind, namespace, name, method, &content_type, &query, body)
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not supported by the simulator"),
    }
}

#[allow(clippy::too_many_arguments)]
fn write(
    sim: KubeSim,
    kind: &'static Kind,
    namespace: String,
    name: Option<String>,
    method: Method,
    content_type: &str,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Response {
    let input: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", format!("the body is not JSON: {e}")),
    };
    let name = match name.or_else(|| input["metadata"]["name"].as_str().map(str::to_owned)) {
        Some(n) => n,
        None => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required value"),
    };
    let invalid = |problem: String| {
        status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("{} \"{name}\" is invalid: {problem}", kind.kind))
    };
    if let Some(problem) = normalize::invalid_name(kind.kind, &name) {
        return invalid(problem);
    }
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    if dry_run && sim.inner.no_dry_run.lock().expect("lock").contains(kind.plural) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "admission webhook \"sim.example.com\" does not support dry run",
        );
    }
    // The server decodes what it is sent into its types first: quantities canonical,
    // empty lists and maps gone. (The unknown-field check below reads the raw body.)
    let raw = input;
    let mut input = raw.clone();
    normalize::normalize(kind.kind, &mut input);
    if kind.namespaced && namespace.is_empty() {
        return status(StatusCode::NOT_FOUND, "NotFound", "a namespaced resource needs a namespace in its path");
    }
    let key = Key::of(kind, namespace.clone(), name.clone());
    let existing = sim.inner.objects.lock().expect("lock").get(&key).cloned();
    if kind.namespaced {
        match sim.get("v1", "namespaces", "", &namespace) {
            None => return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{namespace}\" not found")),
            Some(ns) if ns["metadata"].get("deletionTimestamp").is_some() && existing.is_none() => {
                return status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!("unable to create new content in namespace {namespace} because it is being terminated"),
                );
            }
            Some(_) => {}
        }
    }
    let (object, owners, created) = if method == Method::PATCH && content_type.starts_with("application/apply-patch") {
        let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "PATCH with apply-patch needs a fieldManager");
        };
        let force = query.get("force").is_some_and(|f| f == "true");
        if input["apiVersion"] != json!(kind.group_version) || input["kind"] != json!(kind.kind) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("apply needs apiVersion {} and kind {}", kind.group_version, kind.kind),
            );
        }
        let fields = applied_fields(&input);
        let mut owners = existing.as_ref().map(|s| s.owners.clone()).unwrap_or_default();
        let mut object = existing.as_ref().map(|s| s.object.clone()).unwrap_or_else(|| json!({"metadata": {}}));
        let mut conflicts = Vec::new();
        for (path, value) in &fields {
            for (other, paths) in &owners {
                if other != manager && paths.contains(path) && get_path(&object, path) != Some(value) {
                    conflicts.push(format!("conflict with \"{other}\": .{}", path.join(".")));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Apply failed with {} conflicts: {}", conflicts.len(), conflicts.join("; ")),
            );
        }
        // Fields this manager applied before and no longer applies are removed, unless
        // another manager still owns them.
        let previous = owners.get(manager).cloned().unwrap_or_default();
        for path in previous.iter().filter(|p| !fields.contains_key(*p)) {
            if !owners.iter().any(|(m, ps)| m != manager && ps.contains(path)) {
                remove_path(&mut object, path);
            }
        }
        for (path, value) in &fields {
            set_path(&mut object, path, value.clone());
        }
        for (other, paths) in owners.iter_mut() {
            if other != manager {
                paths.retain(|p| !fields.contains_key(p));
            }
        }
        owners.insert(manager.clone(), fields.keys().cloned().collect());
        (object, owners, existing.is_none())
    } else if method == Method::PATCH {
        let Some(existing) = &existing else {
            return status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural));
        };
        let mut object = existing.object.clone();
        merge_patch(&mut object, &raw);
        normalize::normalize(kind.kind, &mut object);
        (object, existing.owners.clone(), false)
    } else {
        if method == Method::POST && existing.is_some() {
            return status(StatusCode::CONFLICT, "AlreadyExists", format!("{} \"{name}\" already exists", kind.plural));
        }
        if method == Method::PUT {
            let Some(existing) = &existing else {
                return status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural));
            };
            let given = input["metadata"]["resourceVersion"].as_str();
            if given.is_some() && given != existing.object["metadata"]["resourceVersion"].as_str() {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
        }
        (input.clone(), existing.as_ref().map(|e| e.owners.clone()).unwrap_or_default(), method == Method::POST)
    };
    // Validate against the kind's type: wrong types fail to deserialize, unknown fields
    // are dropped by the type and found missing.
    if let Err(e) = (kind.roundtrip)(object.clone()) {
        return invalid(e);
    }
    // A whole object sent (apply, create, replace) must not carry fields its type lacks,
    // at any depth (inside `containers[]`, `ports[]`, Ingress rules, HPA metrics…).
    let partial = method == Method::PATCH && !content_type.starts_with("application/apply-patch");
    if !partial {
        let typed = match (kind.roundtrip)(raw.clone()) {
            Ok(typed) => typed,
            Err(e) => return invalid(e),
        };
        if let Some(field) = normalize::unknown_field(&raw, &typed) {
            return invalid(format!("unknown field \"{field}\""));
        }
    }
    let labels = object["metadata"]["labels"].as_object().into_iter().flatten();
    for (key, value) in labels.chain(object["spec"]["template"]["metadata"]["labels"].as_object().into_iter().flatten())
    {
        if let Some(problem) = normalize::invalid_label(key, value.as_str().unwrap_or_default()) {
            return invalid(problem);
        }
    }
    // A workload's selector is fixed at creation.
    if let Some(existing) = &existing
        && matches!(kind.kind, "Deployment" | "StatefulSet")
        && existing.object["spec"]["selector"] != object["spec"]["selector"]
    {
        return invalid(format!("spec.selector: Invalid value: {}: field is immutable", object["spec"]["selector"]));
    }
    // A StatefulSet's spec is fixed at creation but for these fields.
    if let Some(existing) = &existing
        && kind.kind == "StatefulSet"
    {
        let fixed = |object: &Value| {
            let mut spec = object["spec"].clone();
            if let Some(spec) = spec.as_object_mut() {
                for field in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    spec.remove(field);
                }
            }
            spec
        };
        if fixed(&existing.object) != fixed(&object) {
            return invalid(
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are \
                 forbidden"
                    .to_owned(),
            );
        }
    }
    // Defaulting: a Deployment without a count has one replica.
    let mut object = object;
    if kind.kind == "Deployment" && object["spec"].get("replicas").is_none() {
        object["spec"]["replicas"] = json!(1);
    }
    if dry_run {
        let (preview, _) = sim.commit(&key, kind, object, owners, true);
        return ok_json(if created { StatusCode::CREATED } else { StatusCode::OK }, &preview);
    }
    let (stored, _) = sim.commit(&key, kind, object, owners, false);
    if kind.plural == "jobs" {
        // The job controller: it succeeds, unless its image was told to fail.
        let key = Key::of(kind, namespace.clone(), name.clone());
        let failing = {
            let failures = sim.inner.failures.lock().expect("lock");
            let objects = sim.inner.objects.lock().expect("lock");
            let image =
                objects.get(&key).map(|s| s.object["spec"]["template"]["spec"]["containers"][0]["image"].to_string());
            image.is_some_and(|i| failures.iter().any(|(part, _)| i.contains(part.as_str())))
        };
        let mut objects = sim.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key) {
            stored.object["status"] = if failing {
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}]})
            } else {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            };
        }
    }
    if kind.plural == "statefulsets" {
        // The stateful set controller: its pods are ready at once.
        let key = Key::of(kind, namespace.clone(), name.clone());
        let mut objects = sim.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key) {
            let replicas = stored.object["spec"]["replicas"].as_i64().unwrap_or(1);
            stored.object["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
                "observedGeneration": stored.object["metadata"]["generation"]});
        }
    }
    if kind.plural == "horizontalpodautoscalers"
        && let Some(target) = stored["spec"]["scaleTargetRef"]["name"].as_str()
    {
        sim.autoscale(&namespace, target);
    }
    if kind.plural == "deployments" {
        sim.autoscale(&namespace, &name);
        sim.reconcile_deployment(&namespace, &name);
        // Pods become ready a moment later, as on a real cluster.
        let later = sim.clone();
        let (ns, n) = (namespace.clone(), name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later.reconcile_deployment(&ns, &n);
        });
    }
    let stored = if kind.plural == "deployments" {
        sim.get(kind.group_version, kind.plural, &namespace, &name).unwrap_or(stored)
    } else {
        stored
    };
    ok_json(if created { StatusCode::CREATED } else { StatusCode::OK }, &stored)
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let target_map = target.as_object_mut().expect("object");
            for (k, v) in map {
                if v.is_null() {
                    target_map.remove(k);
                } else {
                    merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn watch(sim: KubeSim, kind: &'static Kind, namespace: String, query: HashMap<String, String>) -> Response {
    let mut rx = sim.events.subscribe();
    let since: u64 = query.get("resourceVersion").and_then(|rv| rv.parse().ok()).unwrap_or(0);
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(290u64);
    let selector = query.get("labelSelector").cloned();
    let name = query.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).map(str::to_owned);
    let matches = move |key: &Key, object: &Value| {
        key.group_version == kind.group_version
            && key.plural == kind.plural
            && (namespace.is_empty() || key.namespace == namespace)
            && name.as_ref().is_none_or(|n| &key.name == n)
            && matches_selector(object, selector.as_ref())
    };
    // Without a resourceVersion a watch starts with the current objects.
    let initial: Vec<Value> = if since == 0 {
        sim.inner
            .objects
            .lock()
            .expect("lock")
            .iter()
            .filter(|(k, s)| matches(k, &s.object))
            .map(|(_, s)| json!({"type": "ADDED", "object": s.object}))
            .collect()
    } else {
        Vec::new()
    };
    let stream = async_stream(initial, move |tx| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                () = tokio::time::sleep_until(deadline) => return,
            };
            match event {
                Ok(event) => {
                    let rv: u64 = event.object["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(u64::MAX);
                    if rv > since && matches(&event.key, &event.object) {
                        let line = json!({"type": event.kind, "object": event.object}).to_string() + "\n";
                        if tx.send(Ok::<_, std::convert::Infallible>(Bytes::from(line))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

/// A body stream: `initial` lines, then what `producer` sends.
fn async_stream<F, Fut>(
    initial: Vec<Value>,
    producer: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::convert::Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let first = tx.clone();
    let task = producer(tx);
    tokio::spawn(async move {
        for event in initial {
            if first.send(Ok(Bytes::from(event.to_string() + "\n"))).await.is_err() {
                return;
            }
        }
        drop(first);
        task.await;
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
