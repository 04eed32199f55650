//! Unit tests of the manifests Slipway applies and of reading kubeconfigs.

use super::*;
use serde_json::json;
use slipway_core::template::{Autoscale, WEB, Workload};

fn spec(autoscale: Option<Autoscale>) -> Spec {
    let web = Workload {
        replicas: 2,
        port: Some(8080),
        health: Some("/healthz".into()),
        cpu: Some("0.5".into()),
        memory: Some("128Mi".into()),
        command: None,
        process: None,
        env: Default::default(),
        autoscale,
    };
    Spec { workloads: [(WEB.to_owned(), web)].into(), addons: Vec::new(), policy: Default::default() }
}

fn desired(spec: &Spec, quota: Option<(i64, i64)>) -> Vec<Value> {
    manifests(&Desired {
        service: "shop",
        environment: "staging",
        team: "payments",
        image: "reg/shop:abc@sha256:00",
        spec,
        config: &[("GREETING".into(), "hi".into())],
        secrets: &[("API_KEY".into(), "s3cret".into())],
        config_version: 3,
        host: "shop-staging.example.com".into(),
        ingress_class: "",
        progress_deadline: Duration::from_secs(60),
        drain: Duration::from_secs(45),
        quota,
        addons: &[],
    })
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

#[test]
fn manifests_carry_labels_probes_limits_and_quota() {
    let objects = desired(&spec(None), Some((512, 4)));
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ConfigMap", "Secret", "LimitRange", "ResourceQuota", "Deployment", "Service", "Ingress"]
    );
    let ns = &objects[0];
    assert_eq!(ns["metadata"]["name"], "slipway-shop-staging");
    assert_eq!(ns["metadata"]["labels"]["slipway.dev/team"], "payments");
    let d = find(&objects, "Deployment").unwrap();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["cpu"], "500m", "cores are written as millicores");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 47, "the drain and 2 s");
    assert_eq!(d["spec"]["template"]["metadata"]["annotations"]["slipway.dev/config-version"], "3");
    assert_eq!(find(&objects, "ConfigMap").unwrap()["data"]["GREETING"], "hi");
    assert_eq!(find(&objects, "Secret").unwrap()["data"]["API_KEY"], "czNjcmV0");
    assert_eq!(find(&objects, "ResourceQuota").unwrap()["spec"]["hard"]["limits.memory"], "512Mi");
    assert!(find(&objects, "Ingress").unwrap()["spec"].get("ingressClassName").is_none());
    assert!(find(&desired(&spec(None), None), "ResourceQuota").is_none(), "no team quota, no ResourceQuota");
}

#[test]
fn an_autoscaled_workload_gets_an_hpa_that_owns_its_replicas() {
    let objects = desired(&spec(Some(Autoscale { min: 2, max: 6, cpu_percent: 70 })), None);
    let hpa = find(&objects, "HorizontalPodAutoscaler").expect("hpa");
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
    assert!(find(&objects, "Deployment").unwrap()["spec"].get("replicas").is_none());
}

#[test]
fn drift_ignores_what_changes_without_an_edit() {
    let object = |rv: &str, replicas: i64, ready: i64| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": rv, "generation": replicas,
                "managedFields": [{"manager": rv}]},
            "spec": {"replicas": replicas}, "status": {"readyReplicas": ready}}))
        .expect("object")
    };
    assert_eq!(comparable(&object("1", 2, 0)), comparable(&object("9", 2, 2)));
    assert_ne!(comparable(&object("1", 2, 2)), comparable(&object("1", 5, 2)));
}

#[test]
fn kubeconfigs_are_checked() {
    let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://k:6443\n\
        contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user: {}\n";
    assert_eq!(
        inspect_kubeconfig(yaml, None).ok(),
        Some(KubeTarget { context: "ctx".into(), server: "https://k:6443".into() })
    );
    assert!(inspect_kubeconfig(yaml, Some("other")).unwrap_err().to_string().contains("no context \"other\""));
    assert!(inspect_kubeconfig("not: [yaml", None).is_err());
}
