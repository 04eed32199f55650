//! The tests' view of the container engine, through its API socket (what `scripts/podman
//! start` printed, in `SLIPWAY_ENGINE`) with curl, since reqwest does not speak to unix
//! sockets; the podman CLI would open the rootless engine's storage behind its back.

use serde_json::{Value, json};

/// The engine's API socket.
pub fn socket() -> String {
    let engine =
        std::env::var("SLIPWAY_ENGINE").unwrap_or_else(|_| "unix:///var/tmp/slipway-podman/run/podman.sock".to_owned());
    engine.strip_prefix("unix://").expect("tests talk to a unix-socket engine").to_owned()
}

/// One call to the engine's API (blocking: usable from `Drop`): the status and the body
/// read as JSON (`Null` when it is not).
pub fn call(method: &str, path: &str, query: &[(&str, &str)], body: Option<&Value>) -> (u16, Value) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-X", method, "--unix-socket", &socket(), "-w", "\n%{http_code}"]);
    if !query.is_empty() {
        cmd.arg("-G");
        for (key, value) in query {
            cmd.args(["--data-urlencode", &format!("{key}={value}")]);
        }
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    }
    let output = cmd.arg(format!("http://engine{path}")).output().expect("curl");
    let text = String::from_utf8_lossy(&output.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `call` off the async runtime's threads.
pub async fn call_async(method: &str, path: &str, query: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
    let (method, path) = (method.to_owned(), path.to_owned());
    let query: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        call(&method, &path, &query, body.as_ref())
    })
    .await
    .expect("engine call")
}

/// Force-removes every container and volume labelled with a slipwayd node id (blocking;
/// used from `Drop`).
pub fn remove_containers_of(node: &str) {
    let filters = json!({"label": [format!("dev.slipway.node={node}")]}).to_string();
    let (_, containers) = call("GET", "/v1.41/containers/json", &[("all", "1"), ("filters", &filters)], None);
    for id in containers.as_array().into_iter().flatten().filter_map(|c| c["Id"].as_str()) {
        call("DELETE", &format!("/v1.41/containers/{id}"), &[("force", "1")], None);
    }
    // Add-on volumes go too (after their containers).
    let (_, volumes) = call("GET", "/v1.41/volumes", &[("filters", &filters)], None);
    for name in volumes["Volumes"].as_array().into_iter().flatten().filter_map(|v| v["Name"].as_str()) {
        call("DELETE", &format!("/v1.41/volumes/{name}"), &[("force", "1")], None);
    }
}

/// The running containers carrying every one of `labels` (`key=value`), as the engine
/// lists them.
pub async fn running(labels: &[String]) -> Vec<Value> {
    let filters = json!({"label": labels, "status": ["running"]}).to_string();
    let (_, list) = call_async("GET", "/v1.41/containers/json", &[("filters", &filters)], None).await;
    list.as_array().into_iter().flatten().filter(|c| carries_all(&c["Labels"], labels)).cloned().collect()
}

/// Whether an object's labels hold every `key=value` of `labels`. Checked here too:
/// Podman's API answers objects carrying *any* of several label filters (volumes at
/// least), so a test would see another test's objects.
fn carries_all(have: &Value, labels: &[String]) -> bool {
    labels.iter().all(|label| match label.split_once('=') {
        Some((key, value)) => have[key].as_str() == Some(value),
        None => !have[label.as_str()].is_null(),
    })
}

/// Ids of the running containers carrying every one of `labels`.
pub async fn running_containers(labels: &[String]) -> Vec<String> {
    running(labels).await.iter().filter_map(|c| c["Id"].as_str().map(str::to_owned)).collect()
}

/// A container as the engine inspects it.
pub async fn inspect(id: &str) -> Value {
    let (status, info) = call_async("GET", &format!("/v1.41/containers/{id}/json"), &[], None).await;
    assert_eq!(status, 200, "inspecting {id}: {info}");
    info
}

/// Runs `cmd` in a running container and answers its output (stdout and stderr).
pub async fn exec(id: &str, cmd: &[&str]) -> String {
    let create = json!({"Cmd": cmd, "AttachStdout": true, "AttachStderr": true, "Tty": true});
    let (status, made) = call_async("POST", &format!("/v1.41/containers/{id}/exec"), &[], Some(create)).await;
    assert_eq!(status, 201, "exec in {id}: {made}");
    let exec = made["Id"].as_str().expect("exec id").to_owned();
    let socket = socket();
    let output = tokio::process::Command::new("curl")
        .args(["-s", "-X", "POST", "--unix-socket", &socket, "-H", "Content-Type: application/json"])
        .args(["--data-binary", r#"{"Detach":false,"Tty":true}"#])
        .arg(format!("http://engine/v1.41/exec/{exec}/start"))
        .output()
        .await
        .expect("curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Names of the volumes carrying every one of `labels`.
pub async fn volumes(labels: &[String]) -> Vec<String> {
    let filters = json!({"label": labels}).to_string();
    let (_, list) = call_async("GET", "/v1.41/volumes", &[("filters", &filters)], None).await;
    let volumes = list["Volumes"].as_array().into_iter().flatten();
    volumes
        .filter(|v| carries_all(&v["Labels"], labels))
        .filter_map(|v| v["Name"].as_str().map(str::to_owned))
        .collect()
}

/// Whether the engine has an image.
pub async fn engine_has_image(image: &str) -> bool {
    call_async("GET", &format!("/v1.41/images/{image}/json"), &[], None).await.0 == 200
}
