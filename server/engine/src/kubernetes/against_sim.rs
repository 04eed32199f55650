//! The Kubernetes runtime's calls against the API-server simulator, in-process: what a
//! cluster answers reaches the run's log as a typed error that names the object and keeps
//! the client's error as its source.

use std::error::Error as _;
use std::time::Duration;

use serde_json::json;
use slipway_kube_sim::{KubeSim, PodFailure};

use super::*;

fn client(sim: &KubeSim) -> kube::Client {
    kube::Client::new(sim.router(), "default")
}

fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "slipway-shop-staging"}})
}

fn config_map(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "slipway-shop-staging"}, "data": data})
}

#[tokio::test]
async fn applying_twice_writes_once_and_a_refused_object_is_named_with_its_cause() {
    let sim = KubeSim::new();
    let client = client(&sim);
    apply(&client, &[namespace(), config_map(json!({"a": "1"}))]).await.expect("first apply");
    let version = |sim: &KubeSim| {
        sim.get("v1", "configmaps", "slipway-shop-staging", "settings").expect("stored")["metadata"]["resourceVersion"]
            .clone()
    };
    let first = version(&sim);
    apply(&client, &[namespace(), config_map(json!({"a": "1"}))]).await.expect("same apply");
    assert_eq!(version(&sim), first, "an unchanged apply must not write");

    // A field the server does not know: refused, as kube-apiserver refuses it.
    let mut bad = config_map(json!({"a": "1"}));
    bad["dta"] = json!({"b": "2"});
    let err = apply(&client, &[bad]).await.expect_err("an unknown field is refused");
    assert!(matches!(&err, KubeError::Apply { object, .. } if object == "ConfigMap settings"), "{err:?}");
    assert!(err.to_string().starts_with("applying ConfigMap settings: "), "{err}");
    let source = err.source().expect("the client's error is kept");
    assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
    assert_eq!(version(&sim), first, "a refused apply changes nothing");
}

#[tokio::test]
async fn a_release_job_ends_with_its_outcome() {
    let sim = KubeSim::new();
    let client = client(&sim);
    apply(&client, &[namespace()]).await.expect("namespace");
    let job = release_job("shop", "staging", 7, "registry.test/shop@sha256:1", "bin/migrate");
    run_job(&client, &job, Duration::from_secs(10)).await.expect("a good release command succeeds");

    sim.fail_image("broken", PodFailure::CrashLoopBackOff);
    let job = release_job("shop", "staging", 8, "registry.test/broken@sha256:2", "bin/migrate");
    let err = run_job(&client, &job, Duration::from_secs(10)).await.expect_err("a failing release command fails");
    assert!(matches!(&err, KubeError::ReleaseFailed(why) if why.contains("backoff limit")), "{err:?}");
    assert_eq!(err.to_string(), "the release command failed: Job has reached the specified backoff limit");
}

#[test]
fn kubeconfig_errors_say_what_to_fix() {
    let no_current = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n";
    assert!(matches!(inspect_kubeconfig(no_current, None), Err(KubeError::NoCurrentContext)));
    assert_eq!(
        inspect_kubeconfig(no_current, None).unwrap_err().to_string(),
        "the kubeconfig has no current-context; give --context"
    );
    let err = inspect_kubeconfig("not: [yaml", None).unwrap_err();
    assert!(matches!(err, KubeError::Unparsable(_)) && err.source().is_some(), "{err:?}");
}
