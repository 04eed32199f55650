//! A cluster environment against a server that rewrites what it stores, as a real
//! kube-apiserver does (canonical quantities, empty fields dropped): an idle environment
//! gets no writes, drift is still repaired, status comes from the workloads, an
//! autoscaled workload's rollout waits on the autoscaler's count, and the push prints the
//! cluster's URL. Also: an installation whose environments run on clusters starts
//! without a container engine.
//!
//! SQLite only: what they check is the Kubernetes runtime against the simulator; the
//! releases and environments they record are the same rows the deploy tests write on both.

use serde_json::{Value, json};
use slipway_e2e::kube_sim::KubeSim;
use slipway_e2e::{Db, TestApp, borrowed, fixture_app, git, local_repo, nonce};

const NS: &str = "slipway-shop-k8s";

/// A template whose web workload is autoscaled from 3 to 6 replicas.
const AUTOSCALED: &str = "apiVersion: slipway.dev/v1
kind: EnvironmentTemplate
metadata: {name: web-auto, version: 1.0.0, description: An autoscaled web service}
parameters: {}
spec:
  workloads:
    web: {replicas: 1, port: 8080, health: /, memory: 512Mi, cpu: \"1\", autoscale: {min: 3, max: 6}}
  addons: []
  policy: {ttl: null, max_replicas: 10}
";

/// Writes the simulator received: anything but reads and dry runs.
fn writes(sim: &KubeSim) -> Vec<String> {
    sim.requests().into_iter().filter(|r| !r.starts_with("GET ") && !r.contains("dryRun=All")).collect()
}

/// How often the live object at `path` was read (once per drift check).
fn reads(sim: &KubeSim, path: &str) -> usize {
    sim.requests().iter().filter(|r| *r == &format!("GET {path}")).count()
}

async fn cluster_app(sim: &KubeSim) -> (TestApp, String) {
    let kubeconfig = KubeSim::kubeconfig(&sim.serve().await, "sim");
    let location = slipway_e2e::registry_location('d');
    let app = TestApp::start_with(Db::Sqlite, &["--registry", &location]).await;
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("cli").await;
    let file = app.data_dir.path().join("sim.kubeconfig");
    std::fs::write(&file, &kubeconfig).expect("kubeconfig file");
    let add =
        ["clusters", "add", "prod", "--kubeconfig", file.to_str().expect("utf-8"), "--base-domain", "apps.example.com"];
    let out = app.slipway(&token, &add, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    (app, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_cluster_environment_gets_no_writes_and_drift_is_still_repaired() {
    let sim = KubeSim::new();
    let (app, token) = cluster_app(&sim).await;
    let work = local_repo(&borrowed(&fixture_app(&format!("drift {}\n", nonce())))).await;
    let url = app.git_url("shop", &token);
    assert_eq!(git(work.path(), &[], &["push", &url, "main:k8s"]).await.code, 0);
    // 1024Mi and 0.5 are stored as 1Gi and 500m; with no config vars the ConfigMap's
    // empty `data` is dropped.
    let create = ["envs", "create", "shop", "k8s", "--template", "web", "--runtime", "prod", "--set", "memory=1024Mi"];
    let out = app.slipway(&token, &create, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let deployment = sim.get("apps/v1", "deployments", NS, "web").expect("deployment");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"], "1Gi");
    let config = sim.get("v1", "configmaps", NS, "slipway-config").expect("config map");
    assert!(config.get("data").is_none(), "the server dropped the empty data: {config}");

    // Idle: several drift checks, not one write.
    let before = writes(&sim);
    let checks = reads(&sim, "/apis/apps/v1/namespaces/slipway-shop-k8s/deployments/web");
    app.eventually(20, "three drift checks ran", || async {
        reads(&sim, "/apis/apps/v1/namespaces/slipway-shop-k8s/deployments/web") >= checks + 3
    })
    .await;
    assert_eq!(writes(&sim), before, "an unchanged environment is not written to");
    assert!(!app.server_output().contains("drift repaired"), "{}", app.server_output());

    // Status comes from the workloads on the cluster.
    app.eventually(10, "the environment reports its ready replicas", || async {
        let (_, env) = app.admin("GET", "/services/shop/environments/k8s", None).await;
        env["healthy_replicas"] == json!(2) && env["replicas"] == json!(2)
    })
    .await;
    let out = app.slipway(&token, &["status", "shop"], "").await;
    assert!(out.stdout.contains("2/2"), "{out:?}");
    let (_, env) = app.admin("GET", "/services/shop/environments/k8s", None).await;
    assert!(env.get("condition").is_none(), "all is well: {env}");
    // A Deployment condition that turns false is shown (here its pods stop getting ready).
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"].as_str().expect("image").to_owned();
    sim.fail_image(&image, slipway_e2e::kube_sim::PodFailure::CrashLoopBackOff);
    sim.tamper("apps/v1", "deployments", NS, "web", |d| {
        d["metadata"]["annotations"]["ops.example.com/poke"] = json!("1")
    });
    app.eventually(10, "the false condition is shown", || async {
        let (_, env) = app.admin("GET", "/services/shop/environments/k8s", None).await;
        env["condition"].as_str().is_some_and(|c| c.starts_with("Progressing: ProgressDeadlineExceeded"))
    })
    .await;
    let out = app.slipway(&token, &["envs", "show", "shop", "k8s"], "").await;
    assert!(out.stdout.contains("condition:   Progressing: ProgressDeadlineExceeded"), "{out:?}");

    // A push prints the cluster's URL, not the local router's.
    fixture_commit(&work).await;
    let out = git(work.path(), &[], &["push", &url, "HEAD:k8s"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("http://shop-k8s.apps.example.com is live"), "{out:?}");

    // Drift is still repaired: an edit and a deletion out of band are undone, also when
    // the server refuses to dry-run another of the environment's objects.
    sim.refuse_dry_runs("limitranges");
    sim.tamper("v1", "limitranges", NS, "slipway-defaults", |l| l["metadata"]["labels"]["x"] = json!("y"));
    sim.tamper("apps/v1", "deployments", NS, "web", |d| d["spec"]["replicas"] = json!(5));
    assert!(sim.remove("v1", "services", NS, "web"));
    app.eventually(15, "the drift is repaired", || async {
        sim.get("apps/v1", "deployments", NS, "web").is_some_and(|d| d["spec"]["replicas"] == json!(2))
            && sim.get("v1", "services", NS, "web").is_some()
    })
    .await;
    assert!(app.server_output().contains("drift repaired"));
}

async fn fixture_commit(work: &tempfile::TempDir) {
    slipway_e2e::commit(work.path(), &[("index.html", format!("again {}\n", nonce()).as_bytes())], "again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_autoscaled_rollout_waits_on_the_autoscalers_count() {
    let sim = KubeSim::new();
    let (app, token) = cluster_app(&sim).await;
    let (status, problem) = app.admin("POST", "/templates", Some(json!({"source": AUTOSCALED}))).await;
    assert_eq!(status, 201, "{problem}");
    let work = local_repo(&borrowed(&fixture_app(&format!("auto {}\n", nonce())))).await;
    let url = app.git_url("shop", &token);
    assert_eq!(git(work.path(), &[], &["push", &url, "main:k8s"]).await.code, 0);
    let create = ["envs", "create", "shop", "k8s", "--template", "web-auto", "--runtime", "prod"];
    let out = app.slipway(&token, &create, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web: 3/3 updated, 3/3 ready (the autoscaler's count)"), "{out:?}");
    let deployment: Value = sim.get("apps/v1", "deployments", NS, "web").expect("deployment");
    assert_eq!(deployment["spec"]["replicas"], 3, "the autoscaler's count");
    assert!(
        !deployment["metadata"]["managedFields"].to_string().contains("f:replicas"),
        "Slipway does not own the count: {deployment}"
    );
    app.eventually(10, "the environment reports the autoscaler's count", || async {
        let (_, env) = app.admin("GET", "/services/shop/environments/k8s", None).await;
        env["healthy_replicas"] == json!(3) && env["replicas"] == json!(3)
    })
    .await;
}

/// `--runtime kubernetes` with no container engine: the API, portal and clusters work,
/// `/readyz` says the engine is unavailable, and a push fails saying why.
#[tokio::test]
async fn a_cluster_installation_starts_without_a_container_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = format!("unix://{}/no-engine.sock", dir.path().display());
    let args =
        ["--runtime", "kubernetes", "--default-cluster", "prod", "--registry", "127.0.0.1:9/apps", "--engine", &engine];
    let app = TestApp::start_with(Db::Sqlite, &args).await;
    assert!(app.server_output().contains("no container engine answers"), "{}", app.server_output());
    let ready = app.http.get(format!("{}/readyz", app.url)).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    let body = ready.text().await.expect("body");
    assert!(body.contains("database: ok") && body.contains("engine: unavailable"), "{body}");
    assert!(!body.contains("no-engine.sock"), "no internal detail: {body}");
    let portal = app.http.get(format!("{}/login", app.url)).send().await.expect("portal");
    assert_eq!(portal.status(), 200);

    // Clusters are registered and services created as usual.
    let sim = KubeSim::new();
    let token = app.admin_api_token("cli").await;
    let file = app.data_dir.path().join("sim.kubeconfig");
    std::fs::write(&file, KubeSim::kubeconfig(&sim.serve().await, "sim")).expect("kubeconfig file");
    let out =
        app.slipway(&token, &["clusters", "add", "prod", "--kubeconfig", file.to_str().expect("utf-8")], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    app.team("payments").await;
    app.service("shop", "payments").await;
    let work = local_repo(&borrowed(&fixture_app("no engine\n"))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("there is no container engine to build or run on"), "{out:?}");
    assert!(out.stderr.contains("did not answer when slipwayd started"), "{out:?}");
    assert!(!out.stderr.contains("no-engine.sock"), "the engine's address stays in the server's log: {out:?}");
}

/// `--engine none`: a catalog-only installation starts with no engine; a push says so.
#[tokio::test]
async fn a_catalog_only_installation_runs_without_an_engine() {
    let app = TestApp::start_with(Db::Sqlite, &["--engine", "none"]).await;
    let ready = app.http.get(format!("{}/readyz", app.url)).send().await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.expect("body").contains("engine: unavailable"));
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("cli").await;
    let out = app.slipway(&token, &["services", "list"], "").await;
    assert!(out.stdout.contains("shop"), "{out:?}");
    let work = local_repo(&borrowed(&fixture_app("catalog only\n"))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("runs without a container engine (--engine none)"), "{out:?}");
}
