//! The API contract as an integrator meets it: the OpenAPI document passes an OpenAPI 3.1
//! validator, and Schemathesis (every check, every phase including the stateful one,
//! four workers so that races show) finds nothing as a developer or as an admin.
//!
//! The tools come from `scripts/python-tools` (pinned, installed by `scripts/test`), whose
//! bin directory is in `SLIPWAY_PYTHON_TOOLS`.

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::json;
use slipway_e2e::{ADMIN_PASSWORD, Db, TestApp, USER_PASSWORD, borrowed, commit, fixture_app, git, local_repo, nonce};

crate::each_database!(schemathesis_finds_nothing_as_a_developer_or_an_admin);
crate::both_databases!(the_document_is_valid_openapi_3_1);
crate::both_databases!(a_client_generated_from_the_document_makes_each_kind_of_call);

fn tool(name: &str) -> PathBuf {
    let dir = std::env::var("SLIPWAY_PYTHON_TOOLS").unwrap_or_else(|_| {
        panic!(
            "SLIPWAY_PYTHON_TOOLS is not set: run scripts/test, or export SLIPWAY_PYTHON_TOOLS=$(scripts/python-tools)"
        )
    });
    let path = PathBuf::from(dir).join(name);
    assert!(path.exists(), "{} is missing: run scripts/python-tools", path.display());
    path
}

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a tool to its end; answers whether it succeeded and what it printed.
async fn run(mut cmd: tokio::process::Command) -> (bool, String) {
    let out = cmd.stdin(Stdio::null()).output().await.expect("the tool runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn the_document_is_valid_openapi_3_1(app: TestApp) {
    let doc = app.http.get(format!("{}/api/openapi.json", app.url)).send().await.expect("openapi");
    let doc: serde_json::Value = doc.json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let file = app.data_dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write the document");
    let mut cmd = tokio::process::Command::new(tool("openapi-spec-validator"));
    cmd.arg(&file);
    let (ok, out) = run(cmd).await;
    assert!(ok && out.contains("OK"), "the document is not valid OpenAPI 3.1:\n{out}");
}

/// openapi-python-client (a standard generator) makes a client from the document, and
/// `contract/client_check.py` signs in, creates, reads one, pages a list through its
/// cursor, patches, puts, deletes and reads a problem document with it.
async fn a_client_generated_from_the_document_makes_each_kind_of_call(app: TestApp) {
    let doc = app.http.get(format!("{}/api/openapi.json", app.url)).send().await.expect("openapi");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.bytes().await.expect("the document")).expect("write the document");
    let mut cmd = tokio::process::Command::new(tool("openapi-python-client"));
    cmd.current_dir(dir.path())
        .args(["generate", "--meta", "none", "--output-path", "slipway_client", "--path"])
        .arg(&file);
    let (ok, out) = run(cmd).await;
    assert!(ok && dir.path().join("slipway_client/client.py").exists(), "the generator failed:\n{out}");
    let mut cmd = tokio::process::Command::new(tool("python"));
    cmd.env("PYTHONPATH", dir.path()).arg(repo_file("contract/client_check.py")).arg(&app.url).arg(ADMIN_PASSWORD);
    let (ok, out) = run(cmd).await;
    assert!(ok && out.contains("the generated client works"), "the generated client failed:\n{out}");
}

/// A team the developer belongs to, with a service and a second environment, and
/// another team's service, so that every kind of answer (200, 403, 404, 409…) is
/// reachable for both callers; two pushes give shop runs, logs and two releases, so
/// that runs, releases and rollback are fuzzed with data, not only 404s.
async fn seed(app: &TestApp) {
    app.team("payments").await;
    app.team("search").await;
    app.user("dev").await;
    app.member("payments", "dev", "maintainer").await;
    app.service("shop", "payments").await;
    app.service("catalog", "search").await;
    let (status, body) =
        app.admin("POST", "/services/shop/environments", Some(json!({"name": "staging", "template": "web"}))).await;
    assert_eq!(status, 201, "{body}");
    let token = app.admin_api_token("seed").await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&fixture_app(&format!("v1 {}\n", nonce())))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    commit(work.path(), &[("index.html", format!("v2 {}\n", nonce()).as_bytes())], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
}

async fn schemathesis_finds_nothing_as_a_developer_or_an_admin(db: Db) {
    let app = TestApp::start(db).await;
    seed(&app).await;
    // Run in a directory of its own: Schemathesis keeps its example database there.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = repo_file("contract/schemathesis.toml");
    for (user, password) in [("dev", USER_PASSWORD), ("admin", ADMIN_PASSWORD)] {
        let mut cmd = tokio::process::Command::new(tool("schemathesis"));
        cmd.current_dir(dir.path())
            .env("SCHEMATHESIS_HOOKS", repo_file("contract/hooks.py"))
            .env("SLIPWAY_URL", &app.url)
            .env("SLIPWAY_USER", user)
            .env("SLIPWAY_PASSWORD", password)
            .env("NO_COLOR", "1")
            .args(["--config-file", config.to_str().expect("utf-8"), "run"])
            .arg(format!("{}/api/openapi.json", app.url));
        let (ok, out) = run(cmd).await;
        let tail: Vec<&str> = out.lines().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
        assert!(ok, "Schemathesis found failures as {user} on {db:?}:\n{}", tail.join("\n"));
    }
}
