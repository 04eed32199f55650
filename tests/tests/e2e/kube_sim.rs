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
    let reason = pods[0]
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
