//! slipwayd as a process: configuration errors, first start, health, metrics, the
//! OpenAPI document, JSON logs and graceful shutdown.

use crate::both_databases;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use slipway_e2e::{TestApp, slipwayd_bin, start_process};
use tokio::process::Command;

/// Runs slipwayd expecting it to exit; answers the code and stderr.
async fn run_to_exit(args: &[&str]) -> (i32, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(slipwayd_bin()).args(args).env_remove("SLIPWAY_ADMIN_PASSWORD").stdin(Stdio::null()).output(),
    )
    .await
    .expect("slipwayd exits in time")
    .expect("run slipwayd");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn bad_configuration_exits_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--listen", "nowhere"], 2, "--listen \"nowhere\" is not an address"),
        (&["--database-url", "mysql://db/x"], 2, "use sqlite://PATH or postgres://"),
        (&["--runtime", "kubernetes"], 2, "needs --registry"),
        (&["--no-such-flag"], 2, "--no-such-flag"),
        (&["--database-url", "postgres://slipway@127.0.0.1:1/none"], 1, "cannot open the database"),
        (
            &["--engine", "unix:///nonexistent/engine.sock"],
            1,
            "the container engine at unix:///nonexistent/engine.sock does not answer",
        ),
        (&["--engine", "/var/run/docker.sock"], 2, "is not an engine address"),
        (&["--workers", "0"], 2, "--workers"),
    ];
    for (flags, code, message) in cases {
        let mut args = vec!["--data-dir", data];
        args.extend_from_slice(flags);
        let (got, stderr) = run_to_exit(&args).await;
        assert_eq!(got, *code, "{flags:?}: {stderr}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
    }
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = 7700\n").expect("write");
    let (code, stderr) = run_to_exit(&["--config", config.to_str().expect("utf-8")]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml is not valid"), "{stderr}");
}

// SQLite only: it is the first start with no flags, whose database is SQLite.
#[tokio::test]
async fn first_start_creates_admin_with_a_password_shown_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8").to_owned();
    let args = ["--listen", "127.0.0.1:0", "--data-dir", data.as_str()];
    let started = start_process(&args, &[]).await;
    let line = started
        .stdout_before
        .iter()
        .find_map(|l| l.strip_prefix("Created user admin with password: "))
        .map(str::to_owned);
    let password = line.unwrap_or_else(|| panic!("password line missing: {:?}", started.stdout_before));
    let file = dir.path().join("initial-admin-password");
    assert_eq!(std::fs::read_to_string(&file).expect("password file").trim(), password);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).expect("file").permissions().mode() & 0o777, 0o600);
    }
    let http = slipway_e2e::http_client();
    let response = http
        .post(format!("{}/api/v1/login", started.url))
        .json(&serde_json::json!({"username": "admin", "password": password}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 200);
    let session: serde_json::Value = response.json().await.expect("json");
    let token = session["token"].as_str().expect("token");

    // Once the admin has chosen a password, the first one's file goes.
    let changed = http
        .post(format!("{}/api/v1/user/password", started.url))
        .bearer_auth(token)
        .json(&serde_json::json!({"current_password": password, "new_password": "a password of my own"}))
        .send()
        .await
        .expect("change");
    assert_eq!(changed.status(), 200);
    assert!(!file.exists(), "the stale first password is deleted");
    drop(started);

    // A second start on the same data keeps the account and prints nothing about it.
    let again = start_process(&args, &[]).await;
    assert!(again.stdout_before.iter().all(|l| !l.contains("Created user admin")), "{:?}", again.stdout_before);
}

both_databases!(health_metrics_and_openapi);
async fn health_metrics_and_openapi(app: TestApp) {
    let get = |path: &str| app.http.get(format!("{}{path}", app.url)).send();
    assert_eq!(get("/healthz").await.expect("healthz").status(), 200);
    assert_eq!(get("/readyz").await.expect("readyz").status(), 200);
    app.call("GET", "/services", Some(&app.admin_token), None).await;

    let metrics = get("/metrics").await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains(r#"slipway_http_requests_total{method="GET",route="/api/v1/services",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_http_request_duration_seconds_bucket"), "{metrics}");

    let doc: Value = get("/api/openapi.json").await.expect("openapi").json().await.expect("json");
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3."));
    for path in ["/api/v1/services/{service}", "/api/v1/teams/{team}/members", "/api/v1/tokens", "/api/v1/audit"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"].get("Problem").is_some());
    assert!(doc["components"]["securitySchemes"].get("bearer").is_some());

    let response = app.http.get(app.api("/no/such/route")).bearer_auth(&app.admin_token).send().await.expect("request");
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    let status = app.terminate().await;
    assert!(status.success(), "SIGTERM must shut down cleanly: {status:?}");
}

#[tokio::test]
async fn json_logs_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let started = start_process(
        &["--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json"],
        &[("SLIPWAY_LOG", "info"), ("SLIPWAY_ADMIN_PASSWORD", "a-long-password")],
    )
    .await;
    let pid = started.child.id().expect("pid");
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
    tokio::time::timeout(Duration::from_secs(30), started.stderr_done).await.expect("logs end").expect("drained");
    let output = started.stderr.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines.len() >= 2, "{output}");
    for line in lines {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(entry["level"].is_string() && entry["timestamp"].is_string(), "{line}");
    }
    assert!(output.contains("database ready"), "{output}");
}

/// SIGTERM right after the server says it listens must stop both the API server and the
/// app router: the signal handlers are in place before that line is printed.
#[tokio::test]
async fn sigterm_right_after_start_stops_everything() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().to_str().expect("utf-8");
        let mut started = start_process(
            &["--listen", "127.0.0.1:0", "--data-dir", data],
            &[("SLIPWAY_ADMIN_PASSWORD", "a-long-password")],
        )
        .await;
        let pid = started.child.id().expect("pid");
        std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
        let status = tokio::time::timeout(Duration::from_secs(20), started.child.wait())
            .await
            .expect("slipwayd must exit after SIGTERM")
            .expect("wait");
        assert!(status.success(), "{status:?}");
    }
}
