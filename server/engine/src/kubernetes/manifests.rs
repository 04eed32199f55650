//! The objects of an environment on a cluster, built from its release: namespace,
//! config, limits, per-workload Deployments (with Service, Ingress and autoscaler), add-on
//! StatefulSets and the release Job. Pure: applying them is the parent module's work.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use slipway_core::template::{AddonKind, Spec, WEB};

use crate::context;

/// The ConfigMap holding an environment's plain config vars.
pub(crate) const CONFIG_MAP: &str = "slipway-config";
/// The Secret holding its secret vars and add-on URLs.
pub(crate) const SECRETS: &str = "slipway-secrets";

/// The namespace of an environment.
pub fn namespace_of(service: &str, environment: &str) -> String {
    format!("slipway-{service}-{environment}")
}

/// An add-on as a cluster runs it: a StatefulSet with a volume claim and a Service named
/// after its kind, in the environment's namespace.
#[derive(Debug, Clone)]
pub struct ClusterAddon {
    pub kind: AddonKind,
    pub password: String,
    pub image: String,
    pub port: u16,
}

/// What one apply of an environment needs.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    pub service: &'a str,
    pub environment: &'a str,
    pub team: &'a str,
    /// `repository:tag@sha256:…`.
    pub image: &'a str,
    pub spec: &'a Spec,
    /// Plain config vars (a ConfigMap).
    pub config: &'a [(String, String)],
    /// Secret vars and add-on URLs (a Secret).
    pub secrets: &'a [(String, String)],
    /// Changes with every config version, so pods restart to read the new Secret.
    pub config_version: i32,
    pub host: String,
    pub ingress_class: &'a str,
    pub progress_deadline: Duration,
    /// The environment's drain: a pod has that and the engine's stop timeout (2 s) after
    /// SIGTERM to finish what it serves before it is killed
    /// (`terminationGracePeriodSeconds`, never 0, which would force-delete pods).
    pub drain: Duration,
    /// What the environment may use in its namespace (a ResourceQuota): memory in MiB and
    /// pods, with room for a rolling update's extra pod per workload. None: no quota.
    pub quota: Option<(i64, i64)>,
    pub addons: &'a [ClusterAddon],
}

fn labels(d: &Desired<'_>) -> Value {
    json!({
        "app.kubernetes.io/name": d.service,
        "app.kubernetes.io/instance": format!("{}-{}", d.service, d.environment),
        "app.kubernetes.io/managed-by": "slipway",
        "app.kubernetes.io/part-of": d.service,
        "slipway.dev/service": d.service,
        "slipway.dev/env": d.environment,
        "slipway.dev/team": d.team,
    })
}

/// The objects of an environment, in apply order (namespace first).
pub fn manifests(d: &Desired<'_>) -> Vec<Value> {
    let ns = namespace_of(d.service, d.environment);
    let labels = labels(d);
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        // `data` (base64), not `stringData`: the API server stores and returns `data`, so
        // drift checks compare like with like.
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG_MAP, "namespace": ns, "labels": labels},
            "data": d.config.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>()}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRETS, "namespace": ns, "labels": labels},
            "type": "Opaque",
            "data": d.secrets.iter().map(|(k, v)| (k.clone(), json!(BASE64.encode(v)))).collect::<serde_json::Map<_, _>>()}),
        // Containers without their own limits get these.
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "slipway-defaults", "namespace": ns, "labels": labels},
            "spec": {"limits": [{"type": "Container", "default": {"memory": "256Mi"}, "defaultRequest": {"memory": "256Mi"}}]}}),
    ];
    for addon in d.addons {
        out.extend(addon_manifests(d, &ns, &labels, addon));
    }
    if let Some((memory_mb, pods)) = d.quota {
        out.push(json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "slipway-quota", "namespace": ns, "labels": labels},
            "spec": {"hard": {"limits.memory": format!("{memory_mb}Mi"), "pods": pods.to_string()}}}));
    }
    for (name, w) in &d.spec.workloads {
        let mut workload_labels = labels.clone();
        workload_labels["app.kubernetes.io/component"] = json!(name);
        let selector = json!({"slipway.dev/env": d.environment, "slipway.dev/service": d.service, "app.kubernetes.io/component": name});
        let mut container = json!({
            "name": name,
            "image": d.image,
            "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": SECRETS}}],
        });
        if let Some(port) = w.port {
            container["ports"] = json!([{"name": "http", "containerPort": port, "protocol": "TCP"}]);
            container["env"] = json!([{"name": "PORT", "value": port.to_string()}]);
            let health = w.health.clone().unwrap_or_else(|| context::DEFAULT_HEALTH.to_owned());
            let probe = json!({"httpGet": {"path": health, "port": port}, "periodSeconds": 5, "failureThreshold": 3});
            container["readinessProbe"] = probe.clone();
            container["livenessProbe"] = json!({"httpGet": {"path": health, "port": port}, "periodSeconds": 10,
                "failureThreshold": 6, "initialDelaySeconds": 10});
        }
        if let Some(command) = &w.command {
            container["command"] = json!(["/bin/sh", "-c", command]);
        }
        let mut limits = serde_json::Map::new();
        if let Some(memory) = &w.memory {
            limits.insert("memory".to_owned(), json!(memory));
        }
        // Millicores: the API server would rewrite `0.5` as `500m` and the drift check
        // would see a difference that is none.
        if let Some(nanos) = w.cpu.as_deref().and_then(slipway_core::template::cpu_nanos) {
            limits.insert("cpu".to_owned(), json!(format!("{}m", nanos / 1_000_000)));
        }
        if !limits.is_empty() {
            container["resources"] = json!({"limits": limits, "requests": limits});
        }
        let mut deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": workload_labels},
            "spec": {
                "selector": {"matchLabels": selector},
                "progressDeadlineSeconds": d.progress_deadline.as_secs().max(1),
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {"slipway.dev/env": d.environment, "slipway.dev/service": d.service,
                        "app.kubernetes.io/component": name, "app.kubernetes.io/name": d.service},
                        "annotations": {"slipway.dev/config-version": d.config_version.to_string()}},
                    "spec": {"terminationGracePeriodSeconds": d.drain.as_secs() + 2, "containers": [container]},
                },
            },
        });
        // With an autoscaler the replica count is the autoscaler's to set.
        if w.autoscale.is_none() {
            deployment["spec"]["replicas"] = json!(w.replicas);
        }
        out.push(deployment);
        if let Some(a) = &w.autoscale {
            out.push(json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": name, "namespace": ns, "labels": workload_labels},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": a.min, "maxReplicas": a.max,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": a.cpu_percent}}}],
                },
            }));
        }
        if name == WEB
            && let Some(port) = w.port
        {
            out.push(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns, "labels": workload_labels},
                "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}]},
            }));
            let mut ingress = json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "namespace": ns, "labels": workload_labels},
                "spec": {"rules": [{"host": d.host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]},
            });
            if !d.ingress_class.is_empty() {
                ingress["spec"]["ingressClassName"] = json!(d.ingress_class);
            }
            out.push(ingress);
        }
    }
    out
}

/// The Secret, Service and StatefulSet (with a volume claim) of one add-on.
fn addon_manifests(d: &Desired<'_>, ns: &str, labels: &Value, addon: &ClusterAddon) -> Vec<Value> {
    let name = addon.kind.as_str();
    let mut labels = labels.clone();
    labels["app.kubernetes.io/component"] = json!(name);
    let selector = json!({"slipway.dev/env": d.environment, "slipway.dev/service": d.service, "app.kubernetes.io/component": name});
    let secret_name = format!("slipway-addon-{name}");
    let (env, args): (serde_json::Map<String, Value>, Option<Value>) = match addon.kind {
        AddonKind::Postgres => (
            [
                ("POSTGRES_USER", crate::addons::PG_USER),
                ("POSTGRES_DB", crate::addons::PG_USER),
                ("POSTGRES_PASSWORD", addon.password.as_str()),
                ("PGDATA", "/data/pgdata"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(BASE64.encode(v))))
            .collect(),
            None,
        ),
        AddonKind::Redis => (
            [("REDIS_PASSWORD".to_owned(), json!(BASE64.encode(&addon.password)))].into_iter().collect(),
            // Kubernetes expands $(VAR) from the container's environment.
            Some(json!([
                "redis-server",
                "--requirepass",
                "$(REDIS_PASSWORD)",
                "--dir",
                "/data",
                "--appendonly",
                "yes"
            ])),
        ),
    };
    let mut container = json!({
        "name": name,
        "image": addon.image,
        "envFrom": [{"secretRef": {"name": secret_name}}],
        "ports": [{"name": name, "containerPort": addon.port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": addon.port}, "periodSeconds": 5},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    });
    if let Some(args) = args {
        container["args"] = args;
    }
    vec![
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name, "namespace": ns, "labels": labels},
            "type": "Opaque", "data": env}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"selector": selector, "ports": [{"name": name, "port": addon.port, "targetPort": addon.port, "protocol": "TCP"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": {"containers": [container]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        }}),
    ]
}

/// Splits manifests into what a release Job needs first (namespace, config, secrets,
/// limits) and the rest (workloads and their routing).
pub fn split_base(objects: &[Value]) -> (Vec<Value>, Vec<Value>) {
    objects.iter().cloned().partition(|o| {
        matches!(o["kind"].as_str(), Some("Namespace" | "ConfigMap" | "Secret" | "LimitRange" | "ResourceQuota"))
    })
}

/// The Job that runs a release's command once, with the release's image and config.
pub fn release_job(service: &str, environment: &str, run_id: i64, image: &str, command: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": format!("release-{run_id}"), "namespace": namespace_of(service, environment),
            "labels": {"app.kubernetes.io/managed-by": "slipway", "app.kubernetes.io/component": "release",
                "slipway.dev/service": service, "slipway.dev/env": environment}},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "release", "image": image, "command": ["/bin/sh", "-c", command],
                "envFrom": [{"configMapRef": {"name": CONFIG_MAP}}, {"secretRef": {"name": SECRETS}}],
            }]}},
        },
    })
}

/// The manifests `podman kube play` can run on one machine: the ConfigMap and the
/// Deployments with one replica, without namespace (a check that what Slipway generates
/// is what a container runtime understands).
pub fn playable(objects: &[Value]) -> String {
    let mut docs = Vec::new();
    for object in objects.iter().filter(|o| o["kind"] == "ConfigMap" || o["kind"] == "Deployment") {
        let mut object = object.clone();
        if let Some(meta) = object["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
        if object["kind"] == "Deployment" {
            object["spec"]["replicas"] = json!(1);
            // podman has no Secret of this name: the ConfigMap alone feeds the env.
            if let Some(c) = object["spec"]["template"]["spec"]["containers"].as_array_mut() {
                for container in c {
                    container["envFrom"] = json!([{"configMapRef": {"name": CONFIG_MAP}}]);
                }
            }
        }
        docs.push(serde_json::to_string_pretty(&object).unwrap_or_default());
    }
    // JSON is YAML: one document per object.
    docs.join("\n---\n")
}
