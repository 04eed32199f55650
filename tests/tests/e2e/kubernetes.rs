//! Environments on a Kubernetes cluster (the API-server simulator served on 127.0.0.1
//! behind a kubeconfig): cluster registration, a deploy that applies the namespace,
//! Secret, Deployment, Service and Ingress and waits for the rollout, a no-op redeploy, an
//! update, a failed rollout rolled back automatically, and destroy.
//!
//! SQLite only: what it checks is the Kubernetes runtime against the simulator; the
//! releases and environments it records are the same rows the deploy tests write on both.

use serde_json::{Value, json};
use slipway_e2e::kube_sim::{KubeSim, PodFailure};
use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

fn deployment(sim: &KubeSim) -> Value {
    sim.get("apps/v1", "deployments", "slipway-shop-k8s", "web").expect("the web deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn environments_deploy_to_a_cluster_and_roll_back_when_pods_fail() {
    let sim = KubeSim::new();
    let sim_url = sim.serve().await;
    let kubeconfig = KubeSim::kubeconfig(&sim_url, "sim-context");
    let location = slipway_e2e::registry_location('k');
    let app = TestApp::start_with(Db::Sqlite, &["--registry", &location]).await;
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("cli").await;

    // Registration checks the kubeconfig and never returns it.
    for (body, field, message) in [
        (json!({"name": "prod", "kubeconfig": "clusters: [unclosed"}), "kubeconfig", "does not parse"),
        (json!({"name": "prod", "kubeconfig": kubeconfig, "context": "nope"}), "kubeconfig", "no context \"nope\""),
        (json!({"name": "local", "kubeconfig": kubeconfig}), "name", "machine's own engine"),
        (json!({"name": "prod", "kubeconfig": kubeconfig, "base_domain": "bad domain"}), "base_domain", "not a domain"),
    ] {
        let (status, problem) = app.admin("POST", "/clusters", Some(body)).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(message), "{problem}");
    }
    let file = app.data_dir.path().join("sim.kubeconfig");
    std::fs::write(&file, &kubeconfig).expect("kubeconfig file");
    let file = file.to_str().expect("utf-8");
    let add = [
        "clusters",
        "add",
        "prod",
        "--kubeconfig",
        file,
        "--base-domain",
        "apps.example.com",
        "--ingress-class",
        "nginx",
    ];
    let out = app.slipway(&token, &add, "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.slipway(&token, &add, "").await.code, 1, "a name is registered once");
    let (_, clusters) = app.admin("GET", "/clusters", None).await;
    let clusters = &clusters["items"];
    assert_eq!(clusters[0]["server"], sim_url);
    assert_eq!(clusters[0]["context"], "sim-context");
    assert!(!clusters.to_string().contains("sim-token"), "the kubeconfig's credentials never come back");

    // The team's quota becomes the namespace's ResourceQuota.
    assert_eq!(app.admin("PUT", "/teams/payments/quota", Some(json!({"max_replicas": 10}))).await.0, 200);

    // An environment on the cluster: built, pushed by digest, applied, rolled out.
    let work = local_repo(&borrowed(&fixture_app(&format!("k8s {}\n", nonce())))).await;
    let url = app.git_url("shop", &token);
    assert_eq!(git(work.path(), &[], &["push", &url, "main:k8s"]).await.code, 0);
    let out =
        app.slipway(&token, &["envs", "create", "shop", "k8s", "--template", "web", "--runtime", "prod"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("web: 2/2 updated, 2/2 ready"), "rollout progress is streamed: {out:?}");
    assert!(out.stdout.contains("Deploy k8s v1: 2/2 replicas ready on cluster prod"), "{out:?}");

    let ns = sim.get("v1", "namespaces", "", "slipway-shop-k8s").expect("namespace");
    assert_eq!(ns["metadata"]["labels"]["slipway.dev/team"], "payments");
    assert_eq!(ns["metadata"]["labels"]["app.kubernetes.io/managed-by"], "slipway");
    let d = deployment(&sim);
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    let image = container["image"].as_str().expect("image").to_owned();
    assert!(image.starts_with(&format!("{location}/shop:")) && image.contains("@sha256:"), "by digest: {image}");
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/");
    assert_eq!(container["envFrom"][0]["configMapRef"]["name"], "slipway-config");
    assert_eq!(container["envFrom"][1]["secretRef"]["name"], "slipway-secrets");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "slipway");
    let ingress = sim.get("networking.k8s.io/v1", "ingresses", "slipway-shop-k8s", "web").expect("ingress");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "shop-k8s.apps.example.com");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert!(sim.get("v1", "services", "slipway-shop-k8s", "web").is_some());
    let quota = sim.get("v1", "resourcequotas", "slipway-shop-k8s", "slipway-quota").expect("resource quota");
    assert_eq!(quota["spec"]["hard"]["pods"], "4", "two replicas, with room for a rolling update");
    assert!(sim.get("v1", "limitranges", "slipway-shop-k8s", "slipway-defaults").is_some());
    let (_, env) = app.admin("GET", "/services/shop/environments/k8s", None).await;
    assert_eq!(env["runtime"], "prod");
    assert_eq!(env["url"], "http://shop-k8s.apps.example.com");
    let generation = d["metadata"]["generation"].clone();

    // Deploying the same commit again applies the same objects: nothing changes.
    let out = app.slipway(&token, &["deploy", "shop", "k8s"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let again = deployment(&sim);
    assert_eq!(again["spec"]["template"]["spec"]["containers"][0]["image"], image.as_str());
    assert_eq!(again["metadata"]["generation"], generation, "a no-op apply bumps no generation");

    // Drift: changes made out of band are put back, deleted objects re-created.
    sim.tamper("apps/v1", "deployments", "slipway-shop-k8s", "web", |d| d["spec"]["replicas"] = json!(5));
    assert!(sim.remove("v1", "services", "slipway-shop-k8s", "web"));
    app.eventually(15, "the drift is repaired", || async {
        deployment(&sim)["spec"]["replicas"] == json!(2)
            && sim.get("v1", "services", "slipway-shop-k8s", "web").is_some()
    })
    .await;
    assert!(app.server_output().contains("drift repaired"), "the repair is logged");
    let watches = sim.requests().into_iter().filter(|r| {
        r.starts_with("GET /apis/apps/v1/deployments?")
            && r.contains("watch=true")
            && r.contains("managed-by%3Dslipway")
    });
    assert!(watches.count() > 0, "slipwayd watches the managed deployments: {:?}", sim.requests());
    // Scaling applies the new count to the Deployment.
    let out = app.slipway(&token, &["scale", "shop", "k8s", "3"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    app.eventually(15, "the deployment is scaled", || async { deployment(&sim)["spec"]["replicas"] == json!(3) }).await;
    let generation = deployment(&sim)["metadata"]["generation"].clone();

    // A config change rolls out (pods restart to read the new Secret).
    let out = app.slipway(&token, &["config", "set", "shop", "k8s", "GREETING=hello"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let config = sim.get("v1", "configmaps", "slipway-shop-k8s", "slipway-config").expect("config map");
    assert_eq!(config["data"]["GREETING"], "hello");
    let out = app.slipway(&token, &["config", "set", "shop", "k8s", "API_KEY", "--secret"], "s3cret-value\n").await;
    assert_eq!(out.code, 0, "{out:?}");
    let secret = sim.get("v1", "secrets", "slipway-shop-k8s", "slipway-secrets").expect("secret");
    assert_eq!(secret["data"]["API_KEY"], "czNjcmV0LXZhbHVl", "secrets go to the Secret, base64");
    assert!(config["data"].get("API_KEY").is_none());
    assert_ne!(deployment(&sim)["metadata"]["generation"], generation);

    // A release whose pods crash is rolled back and the push refused with the reason.
    commit(work.path(), &[("index.html", b"crashing\n")], "crash").await;
    let head = git(work.path(), &[], &["rev-parse", "HEAD"]).await.stdout.trim().to_owned();
    sim.fail_image(&head[..12], PodFailure::CrashLoopBackOff);
    let out = git(work.path(), &[], &["push", &url, "HEAD:k8s"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("CrashLoopBackOff"), "{out:?}");
    assert!(
        out.stderr.contains("event: BackOff: Back-off restarting failed container"),
        "the cluster's events: {out:?}"
    );
    assert!(out.stderr.contains("Rolled back to v"), "{out:?}");
    assert_eq!(
        deployment(&sim)["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str(),
        "the old image runs again"
    );

    // Add-ons run on the cluster as StatefulSets, reached by their Service's name.
    assert_eq!(git(work.path(), &[], &["push", &url, "HEAD~1:refs/heads/db"]).await.code, 0, "the last good commit");
    let out = app
        .slipway(&token, &["envs", "create", "shop", "db", "--template", "web-postgres", "--runtime", "prod"], "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let set = sim.get("apps/v1", "statefulsets", "slipway-shop-db", "postgres").expect("postgres stateful set");
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert!(sim.get("v1", "services", "slipway-shop-db", "postgres").is_some());
    let secrets = sim.get("v1", "secrets", "slipway-shop-db", "slipway-secrets").expect("secrets");
    let url_b64 = secrets["data"]["DATABASE_URL"].as_str().expect("DATABASE_URL");
    let db_url =
        String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, url_b64).expect("b64"))
            .expect("utf-8");
    assert!(db_url.starts_with("postgres://app:") && db_url.ends_with("@postgres:5432/app"), "{db_url}");
    assert_eq!(app.slipway(&token, &["envs", "destroy", "shop", "db"], "").await.code, 0);
    assert!(sim.get("apps/v1", "statefulsets", "slipway-shop-db", "postgres").is_none());

    // A second cluster: each environment's objects land on its own.
    let edge = KubeSim::new();
    let edge_file = app.data_dir.path().join("edge.kubeconfig");
    std::fs::write(&edge_file, KubeSim::kubeconfig(&edge.serve().await, "edge")).expect("kubeconfig");
    let out =
        app.slipway(&token, &["clusters", "add", "edge", "--kubeconfig", edge_file.to_str().expect("utf-8")], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    // This app has a release command: on a cluster it runs as a Job before the rollout.
    let mut files = fixture_app(&format!("edge {}\n", nonce()));
    files.retain(|(name, _)| *name != "slipway.toml");
    files.push(("slipway.toml", b"[web]\nport = 8080\n[release]\ncommand = \"echo migrating\"\n".to_vec()));
    let edge_work = local_repo(&borrowed(&files)).await;
    assert_eq!(git(edge_work.path(), &[], &["push", &url, "main:edge"]).await.code, 0);
    let out =
        app.slipway(&token, &["envs", "create", "shop", "edge", "--template", "web", "--runtime", "edge"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Release command (a Job): echo migrating"), "{out:?}");
    let jobs = edge.names("batch/v1", "jobs", "slipway-shop-edge");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = edge.get("batch/v1", "jobs", "slipway-shop-edge", &jobs[0]).expect("job");
    assert_eq!(job["spec"]["template"]["spec"]["containers"][0]["command"][2], "echo migrating");
    assert!(edge.get("apps/v1", "deployments", "slipway-shop-edge", "web").is_some());
    assert!(sim.get("v1", "namespaces", "", "slipway-shop-edge").is_none(), "nothing of it on the other cluster");
    assert!(edge.get("v1", "namespaces", "", "slipway-shop-k8s").is_none());
    assert_eq!(app.slipway(&token, &["envs", "destroy", "shop", "edge"], "").await.code, 0);
    assert!(edge.get("v1", "namespaces", "", "slipway-shop-edge").is_none());

    // A cluster with environments stays; destroying the environment deletes its namespace.
    assert_eq!(app.admin("DELETE", "/clusters/prod", None).await.0, 409);
    let out = app.slipway(&token, &["envs", "destroy", "shop", "k8s"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        sim.get("v1", "namespaces", "", "slipway-shop-k8s").is_none(),
        "the namespace is gone when destroy returns"
    );
    assert_eq!(app.admin("DELETE", "/clusters/prod", None).await.0, 204);
}

/// The manifests that run Slipway itself (`deploy/`) are valid objects, in an order a
/// cluster accepts, with least-privilege RBAC and two replicas on PostgreSQL.
#[tokio::test]
async fn slipways_own_manifests_apply_and_keep_to_least_privilege() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
    let sim = KubeSim::new();
    let client = kube::Client::new(sim.router(), "default");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut objects = Vec::new();
    for file in ["namespace.yaml", "rbac.yaml", "postgres.yaml", "slipwayd.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("manifest");
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            objects.push((file, value));
        }
    }
    for (file, object) in &objects {
        let (group, version) = object["apiVersion"].as_str().expect("apiVersion").split_once('/').unwrap_or(("", "v1"));
        let version = if group.is_empty() { object["apiVersion"].as_str().unwrap_or("v1") } else { version };
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().expect("kind"));
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let name = object["metadata"]["name"].as_str().expect("name");
        api.patch(name, &PatchParams::apply("kubectl"), &Patch::Apply(object))
            .await
            .unwrap_or_else(|e| panic!("{file}: {} {name}: {e}", object["kind"]));
    }
    let slipwayd = sim.get("apps/v1", "deployments", "slipway-system", "slipwayd").expect("deployment");
    assert!(slipwayd["spec"]["replicas"].as_i64().unwrap_or(0) >= 2, "several replicas");
    assert_eq!(slipwayd["spec"]["template"]["spec"]["serviceAccountName"], "slipway");
    let env = slipwayd["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("SLIPWAY_NODE_ID") && env.contains("metadata.name"), "each replica its own node id");
    let role = sim.get("rbac.authorization.k8s.io/v1", "clusterroles", "", "slipway").expect("cluster role");
    for rule in role["rules"].as_array().expect("rules") {
        for field in ["verbs", "resources", "apiGroups"] {
            assert!(!rule[field].to_string().contains('*'), "no wildcard {field}: {rule}");
        }
        let writes = rule["verbs"].to_string().contains("create");
        let resources = rule["resources"].to_string();
        assert!(
            !(writes && (resources.contains("pods") || resources.contains("events"))),
            "pods and events are read-only: {rule}"
        );
    }

    // Its container really starts slipwayd: the Deployment's arguments and environment as
    // written, the Secret's placeholders filled in as an operator would (SQLite here, for
    // want of the PostgreSQL service) and, as in a pod, no container engine.
    let container = &slipwayd["spec"]["template"]["spec"]["containers"][0];
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let mut args: Vec<String> =
        container["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("text").to_owned()).collect();
    for (flag, value) in [("--listen", "127.0.0.1:0"), ("--apps-listen", "127.0.0.1:0"), ("--data-dir", &data_dir)] {
        let at = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} in {args:?}"));
        args[at + 1] = value.to_owned();
    }
    let mut envs: Vec<(String, String)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned())))
        // The public URL names the cluster's host; the test reaches this process directly.
        .filter(|(name, _)| name != "SLIPWAY_PUBLIC_URL")
        .collect();
    envs.extend([
        ("SLIPWAY_NODE_ID".to_owned(), "slipwayd-0".to_owned()),
        ("SLIPWAY_DATABASE_URL".to_owned(), format!("sqlite://{data_dir}/slipway.db")),
        ("SLIPWAY_JWT_SECRET".to_owned(), "j".repeat(48)),
        ("SLIPWAY_SECRET_KEY".to_owned(), "ab".repeat(32)),
        ("SLIPWAY_ENGINE".to_owned(), format!("unix://{data_dir}/no-engine.sock")),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let started = slipway_e2e::start_process(&args, &envs).await;
    let ready = reqwest::get(format!("{}/readyz", started.url)).await.expect("readyz");
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.expect("body").contains("engine: unavailable"));
}

/// What Slipway generates for a workload also runs under `podman kube play` (one replica,
/// env from the ConfigMap): the Deployment and ConfigMap are what a container runtime
/// understands, not only what the simulator accepts.
#[tokio::test]
async fn generated_deployments_play_on_podman() {
    use slipway_core::template::{Spec, Workload};
    let name = format!("play{}", &nonce().replace('-', "")[..8]);
    // A memory limit plays only where the engine can apply one (kube play fails on it, on
    // a rootless engine over cgroup v1, rather than ignore it as the Docker API does).
    let engine =
        slipway_engine::LocalEngine::connect(&format!("unix://{}", slipway_e2e::engine::socket())).expect("engine");
    let enforces_limits = engine.isolation().await.expect("isolation").enforces_limits;
    let workload = Workload {
        replicas: 3,
        port: None,
        health: None,
        cpu: None,
        memory: enforces_limits.then(|| "64Mi".into()),
        command: Some("exec httpd -f -p 8080 -h /".into()),
        process: None,
        env: Default::default(),
        autoscale: None,
    };
    let spec = Spec { workloads: [(name.clone(), workload)].into(), addons: Vec::new(), policy: Default::default() };
    let objects = slipway_engine::kubernetes::manifests(&slipway_engine::kubernetes::Desired {
        service: "shop",
        environment: "play",
        team: "payments",
        image: "localhost/slipway/busybox",
        spec: &spec,
        config: &[("GREETING".into(), "hello from kube play".into())],
        secrets: &[],
        config_version: 1,
        host: "shop-play.example.com".into(),
        ingress_class: "",
        progress_deadline: std::time::Duration::from_secs(60),
        drain: std::time::Duration::from_secs(30),
        quota: None,
        addons: &[],
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("play.yaml");
    std::fs::write(&file, slipway_engine::kubernetes::playable(&objects)).expect("yaml");

    // The podman CLI in remote mode, through the engine's API (never behind its back).
    let envs = [("CONTAINER_HOST".to_owned(), format!("unix://{}", slipway_e2e::engine::socket()))];
    let podman = |args: &[&str]| {
        let out = std::process::Command::new("podman").args(args).envs(envs.iter().cloned()).output().expect("podman");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let path = file.to_str().expect("utf-8");
    let (ok, out) = podman(&["kube", "play", "--replace", path]);
    let container = format!("{name}-pod-0-{name}");
    let (env_ok, env) = podman(&["exec", &container, "/bin/env"]);
    let _ = podman(&["kube", "down", path]);
    assert!(ok, "podman kube play failed: {out}");
    assert!(env_ok && env.contains("GREETING=hello from kube play"), "the ConfigMap reached the container: {env}");
}
