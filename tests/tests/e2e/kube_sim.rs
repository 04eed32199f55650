//! The Kubernetes API-server simulator behaves as a real API server does where Slipway
//! depends on it, driven through kube-rs exactly as Slipway drives a cluster.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use serde_json::json;
use slipway_e2e::kube_sim::{KubeSim, PodFailure};

fn client(sim: &KubeSim) -> kube::Client {
    kube::Client::new(sim.router(), "default")
}

fn deployment(image: &str, replicas: i32, label: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"team": label}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    })
}

async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(name, &PatchParams::apply("slipway"), &Patch::Apply(ns)).await.expect("namespace");
}

#[tokio::test]
async fn server_side_apply_tracks_generation_ownership_and_conflicts() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let ssa = PatchParams::apply("slipway");

    let created = api.patch("web", &ssa, &Patch::Apply(deployment("app:1", 2, "a"))).await.expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let rv = created.metadata.resource_version.clone();
    assert_eq!(
        created.metadata.managed_fields.as_ref().map(|m| m[0].manager.clone()),
        Some(Some("slipway".to_owned()))
    );

    // The same apply again changes nothing: no new resourceVersion, no generation bump.
    let again = api.patch("web", &ssa, &Patch::Apply(deployment("app:1", 2, "a"))).await.expect("no-op");
    assert_eq!(again.metadata.resource_version, rv);
    assert_eq!(again.metadata.generation, Some(1));
    // A label change is not a spec change.
    let relabelled = api.patch("web", &ssa, &Patch::Apply(deployment("app:1", 2, "b"))).await.expect("labels");
    assert_eq!(relabelled.metadata.generation, Some(1));
    assert_ne!(relabelled.metadata.resource_version, rv);
    // A spec change is.
    let updated = api.patch("web", &ssa, &Patch::Apply(deployment("app:2", 2, "b"))).await.expect("update");
    assert_eq!(updated.metadata.generation, Some(2));

    // Another manager changing an owned field conflicts unless it forces.
    let other = PatchParams::apply("kubectl");
    let err = api.patch("web", &other, &Patch::Apply(deployment("app:3", 2, "b"))).await.expect_err("conflict");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
    let forced =
        api.patch("web", &other.clone().force(), &Patch::Apply(deployment("app:3", 5, "b"))).await.expect("force");
    assert_eq!(forced.spec.and_then(|s| s.replicas), Some(5));

    // A field the type does not have is refused, as a real server refuses it.
    let mut bad = deployment("app:1", 1, "a");
    bad["spec"]["replicaz"] = json!(3);
    let err = api.patch("web", &ssa.clone().force(), &Patch::Apply(bad)).await.expect_err("unknown field");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("replicaz")), "{err:?}");
}

#[tokio::test]
async fn the_deployment_controller_makes_pods_ready_or_fails_them() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    api.patch("web", &PatchParams::apply("slipway"), &Patch::Apply(deployment("good:1", 2, "a"))).await.expect("apply");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = api.get("web").await.expect("get");
        let status = d.status.clone().unwrap_or_default();
        if status.ready_replicas == Some(2) && status.observed_generation == d.metadata.generation {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never ready: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    assert_eq!(pods.list(&ListParams::default().labels("app=web")).await.expect("pods").items.len(), 2);

    sim.fail_image("broken", PodFailure::CrashLoopBackOff);
    api.patch("web", &PatchParams::apply("slipway"), &Patch::Apply(deployment("broken:2", 2, "a")))
        .await
        .expect("apply");
    let d = api.get("web").await.expect("get");
    let progressing =
        d.status.and_then(|s| s.conditions).unwrap_or_default().into_iter().find(|c| c.type_ == "Progressing");
    assert_eq!(progressing.and_then(|c| c.reason).as_deref(), Some("ProgressDeadlineExceeded"));
    let pods = pods.list(&ListParams::default()).await.expect("pods").items;
    let broken =
        pods.iter().find(|p| p.spec.as_ref().is_some_and(|s| s.containers[0].image.as_deref() == Some("broken:2")));
    let reason = broken
        .expect("a pod of the new template")
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.clone())
        .and_then(|s| s.waiting)
        .and_then(|w| w.reason);
    assert_eq!(reason.as_deref(), Some("CrashLoopBackOff"));
}

#[tokio::test]
async fn namespaces_finalize_and_watches_see_changes() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let list = api.list(&ListParams::default()).await.expect("list");
    let rv = list.metadata.resource_version.expect("list rv");
    let mut stream = api.watch(&WatchParams::default().timeout(5), &rv).await.expect("watch").boxed();
    api.patch("web", &PatchParams::apply("slipway"), &Patch::Apply(deployment("app:1", 1, "a"))).await.expect("apply");
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("an event").expect("item");
    assert!(matches!(first, Ok(WatchEvent::Added(ref d)) if d.metadata.name.as_deref() == Some("web")), "{first:?}");

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete("shop", &DeleteParams::default()).await.expect("delete");
    let terminating = namespaces.get("shop").await.expect("still there while finalizing");
    assert_eq!(terminating.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while namespaces.get_opt("shop").await.expect("get").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the namespace never went");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sim.get("apps/v1", "deployments", "shop", "web").is_none(), "its contents went with it");
}

/// What a real server does to what it stores: quantities become canonical and empty
/// `omitempty` lists and maps are dropped, so a drift check must not compare the sent
/// manifest with the stored object.
#[tokio::test]
async fn quantities_are_stored_canonical_and_empty_fields_dropped() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let mut sent = deployment("app:1", 1, "a");
    sent["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"limits": {"memory": "1024Mi", "cpu": "1000m"}, "requests": {"memory": "0.5Gi", "cpu": "0.5"}});
    sent["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    sent["spec"]["template"]["metadata"]["annotations"] = json!({});
    api.patch("web", &PatchParams::apply("slipway"), &Patch::Apply(sent)).await.expect("apply");
    let stored = sim.get("apps/v1", "deployments", "shop", "web").expect("stored");
    let container = &stored["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["resources"]["limits"], json!({"memory": "1Gi", "cpu": "1"}));
    assert_eq!(container["resources"]["requests"], json!({"memory": "512Mi", "cpu": "500m"}));
    assert!(container.get("env").is_none(), "{container}");
    assert!(stored["spec"]["template"]["metadata"].get("annotations").is_none(), "{stored}");

    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    maps.patch("c", &PatchParams::apply("slipway"), &Patch::Apply(config)).await.expect("config map");
    assert!(sim.get("v1", "configmaps", "shop", "c").expect("stored").get("data").is_none());
}

/// A dry-run apply answers what the server would store and stores nothing.
#[tokio::test]
async fn a_dry_run_apply_answers_the_result_and_writes_nothing() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let created = api.patch("web", &PatchParams::apply("slipway"), &Patch::Apply(deployment("app:1", 2, "a"))).await;
    let rv = created.expect("create").metadata.resource_version;
    let dry = PatchParams::apply("slipway").force().dry_run();
    let preview = api.patch("web", &dry, &Patch::Apply(deployment("app:2", 4, "a"))).await.expect("dry run");
    assert_eq!(preview.spec.as_ref().and_then(|s| s.replicas), Some(4), "the result of the apply");
    let stored = api.get("web").await.expect("get");
    assert_eq!(stored.spec.and_then(|s| s.replicas), Some(2), "nothing stored");
    assert_eq!(stored.metadata.resource_version, rv, "no new version");
    let fresh = api.patch("new", &dry, &Patch::Apply(deployment("app:1", 1, "a"))).await;
    assert!(fresh.is_ok() && api.get_opt("new").await.expect("get").is_none(), "a dry-run create creates nothing");
}

/// Unknown fields are refused at every depth, names and labels follow the server's rules,
/// a workload's selector cannot change, and a Deployment without a count gets one.
#[tokio::test]
async fn the_server_refuses_what_a_real_one_refuses() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let ssa = PatchParams::apply("slipway").force();
    let refused = |err: kube::Error, words: &str| match err {
        kube::Error::Api(s) => s.code == 422 && s.message.contains(words),
        _ => false,
    };
    for (path, typo) in [
        (&["spec", "template", "spec", "containers", "0"][..], "imagePullPolicyy"),
        (&["spec", "template", "spec", "containers", "0", "ports", "0"][..], "containerPortt"),
        (&["spec", "template", "spec", "containers", "0", "envFrom", "0"][..], "configMapReff"),
    ] {
        let mut bad = deployment("app:1", 1, "a");
        bad["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080}]);
        bad["spec"]["template"]["spec"]["containers"][0]["envFrom"] = json!([{"configMapRef": {"name": "c"}}]);
        let mut at = &mut bad;
        for step in path {
            at = match step.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*step],
            };
        }
        at[typo] = json!("x");
        let err = api.patch("web", &ssa, &Patch::Apply(bad)).await.expect_err(typo);
        assert!(refused(err, typo), "{typo}");
    }
    let ingresses: Api<k8s_openapi::api::networking::v1::Ingress> = Api::namespaced(client.clone(), "shop");
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
        "spec": {"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"numberr": 80}}}}]}}]}});
    assert!(refused(ingresses.patch("web", &ssa, &Patch::Apply(ingress)).await.expect_err("ingress"), "numberr"));
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "shop");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "targett": {"type": "Utilization"}}}]}});
    assert!(refused(hpas.patch("web", &ssa, &Patch::Apply(hpa)).await.expect_err("hpa"), "targett"));
    let mut bad_label = deployment("app:1", 1, "a");
    bad_label["metadata"]["labels"]["team"] = json!("not a label!");
    assert!(refused(api.patch("web", &ssa, &Patch::Apply(bad_label)).await.expect_err("label"), "label"));
    let mut bad_name = deployment("app:1", 1, "a");
    bad_name["metadata"]["name"] = json!("Web_1");
    assert!(refused(api.patch("Web_1", &ssa, &Patch::Apply(bad_name)).await.expect_err("name"), "RFC 1123"));

    let mut unscaled = deployment("app:1", 1, "a");
    unscaled["spec"].as_object_mut().expect("spec").remove("replicas");
    let created = api.patch("web", &ssa, &Patch::Apply(unscaled)).await.expect("create");
    assert_eq!(created.spec.as_ref().and_then(|s| s.replicas), Some(1), "the server's default");
    let mut moved = deployment("app:1", 1, "a");
    moved["spec"]["selector"]["matchLabels"] = json!({"app": "other"});
    moved["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    assert!(refused(api.patch("web", &ssa, &Patch::Apply(moved)).await.expect_err("selector"), "immutable"));
}

/// An HPA sets its target's replica count within its bounds.
#[tokio::test]
async fn an_autoscaler_owns_its_deployments_count() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let ssa = PatchParams::apply("slipway").force();
    let mut unscaled = deployment("app:1", 1, "a");
    unscaled["spec"].as_object_mut().expect("spec").remove("replicas");
    api.patch("web", &ssa, &Patch::Apply(unscaled.clone())).await.expect("deployment");
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> = Api::namespaced(client, "shop");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 3, "maxReplicas": 5}});
    hpas.patch("web", &ssa, &Patch::Apply(hpa)).await.expect("hpa");
    assert_eq!(api.get("web").await.expect("get").spec.and_then(|s| s.replicas), Some(3));
    // Applying the Deployment again without a count leaves the autoscaler's.
    api.patch("web", &ssa, &Patch::Apply(unscaled)).await.expect("again");
    let d = api.get("web").await.expect("get");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3));
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(3));
}

/// Under `maxUnavailable: 0` a new template's pods replace the old ones one by one, and
/// old ones stay serving while new ones are not ready.
#[tokio::test]
async fn a_rolling_update_keeps_the_old_pods_until_new_ones_are_ready() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let ssa = PatchParams::apply("slipway").force();
    let rolling = |image: &str| {
        let mut d = deployment(image, 2, "a");
        d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}});
        d
    };
    api.patch("web", &ssa, &Patch::Apply(rolling("app:1"))).await.expect("v1");
    sim.fail_image("app:2", PodFailure::CrashLoopBackOff);
    api.patch("web", &ssa, &Patch::Apply(rolling("app:2"))).await.expect("v2");
    let status = api.get("web").await.expect("get").status.expect("status");
    assert_eq!(
        (status.replicas, status.updated_replicas, status.ready_replicas),
        (Some(3), Some(1), Some(2)),
        "one surge pod of the new template, the two old ones still ready"
    );
    let pods: Api<Pod> = Api::namespaced(client, "shop");
    let images: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.spec?.containers.first()?.image.clone())
        .collect();
    assert_eq!(images.iter().filter(|i| *i == "app:1").count(), 2, "{images:?}");
    // Back to the old template: the failing pod goes, the old ones were never stopped.
    api.patch("web", &ssa, &Patch::Apply(rolling("app:1"))).await.expect("back");
    let status = api.get("web").await.expect("get").status.expect("status");
    assert_eq!((status.replicas, status.updated_replicas, status.ready_replicas), (Some(2), Some(2), Some(2)));
}

/// A StatefulSet's spec cannot change after creation but for its replicas, template and a
/// few others.
#[tokio::test]
async fn a_stateful_sets_storage_is_fixed_at_creation() {
    let sim = KubeSim::new();
    let client = client(&sim);
    namespace(&client, "shop").await;
    let api: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client, "shop");
    let ssa = PatchParams::apply("slipway").force();
    let set = |storage: &str, replicas: i32| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {"serviceName": "db", "replicas": replicas, "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}}]}})
    };
    api.patch("db", &ssa, &Patch::Apply(set("1Gi", 1))).await.expect("create");
    api.patch("db", &ssa, &Patch::Apply(set("1024Mi", 2)))
        .await
        .expect("the same storage, written otherwise, and a new count");
    let err = api.patch("db", &ssa, &Patch::Apply(set("2Gi", 2))).await.expect_err("storage is fixed");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("Forbidden")), "{err:?}");
}
