//! Config vars and secrets: they reach the replicas as environment variables, a change
//! rolls out as a new release, a rollback restores the config its release ran with, and a
//! secret's value appears nowhere Slipway shows or stores it in the clear.

use crate::each_database;
use serde_json::{Value, json};
use slipway_e2e::{CliOutput, Db, TestApp, git, local_repo, nonce};

/// An app that serves its config vars as files and prints its secret (as careless apps
/// do) at boot and in its release command.
fn config_app() -> Vec<(&'static str, Vec<u8>)> {
    let containerfile = "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\n\
        CMD [\"sh\", \"-c\", \"echo \\\"$GREETING\\\" > /www/greeting.txt; echo \\\"$API_KEY\\\" > /www/key.txt; \
        echo booting with API_KEY=$API_KEY; exec httpd -f -p 8080 -h /www\"]\n";
    let toml = "[web]\nport = 8080\nhealth = \"/\"\n[release]\ncommand = \"echo release sees $API_KEY\"\n";
    vec![
        ("Containerfile", containerfile.as_bytes().to_vec()),
        ("slipway.toml", toml.as_bytes().to_vec()),
        ("index.html", b"config app\n".to_vec()),
    ]
}

async fn cli(app: &TestApp, token: &str, args: &[&str], stdin: &str) -> CliOutput {
    app.slipway(token, args, stdin).await
}

each_database!(config_reaches_the_replicas_and_secrets_never_leave);
async fn config_reaches_the_replicas_and_secrets_never_leave(db: Db) {
    let app = TestApp::start_with_env(
        db,
        &[],
        &[("SLIPWAY_LOG", "info,slipwayd=debug,slipway_service=debug,slipway_engine=debug,slipway_git=debug")],
    )
    .await;
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("cli").await;
    let secret = format!("sk-live-{}", nonce());
    let mut seen: Vec<String> = Vec::new();

    // Config set before the first release waits for it.
    let out = cli(&app, &token, &["config", "set", "shop", "production", "GREETING=hello"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("has no release yet"), "{out:?}");
    // A secret's value comes from stdin, so it is in no process list.
    let out =
        cli(&app, &token, &["config", "set", "shop", "production", "API_KEY", "--secret"], &format!("{secret}\n"))
            .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Set API_KEY on shop production (config v2)"), "{out:?}");
    seen.push(format!("{out:?}"));

    let files = config_app();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
    let work = local_repo(&files).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("release sees ********"), "the release command's output is masked: {out:?}");
    seen.push(format!("{out:?}"));
    // The replicas got both, as environment variables.
    assert_eq!(app.get_app("shop", "production", "/greeting.txt").await, (200, "hello\n".to_owned()));
    assert_eq!(app.get_app("shop", "production", "/key.txt").await, (200, format!("{secret}\n")));

    // A change is a new config version rolled out as a new release.
    let out = cli(&app, &token, &["config", "set", "shop", "production", "GREETING=bonjour"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("config v3"), "{out:?}");
    assert!(out.stdout.contains("Deploy production v2"), "{out:?}");
    seen.push(format!("{out:?}"));
    assert_eq!(app.get_app("shop", "production", "/greeting.txt").await, (200, "bonjour\n".to_owned()));
    assert_eq!(app.get_app("shop", "production", "/key.txt").await, (200, format!("{secret}\n")));
    let (_, releases) = app.call("GET", "/services/shop/environments/production/releases", Some(&token), None).await;
    let releases = &releases["items"];
    assert_eq!(releases[0]["version"], 2, "{releases}");
    assert_eq!(releases[0]["config_version"], 3, "{releases}");
    assert_eq!(releases[1]["config_version"], 2, "{releases}");

    // The replicas' output is masked too.
    let out = cli(&app, &token, &["app-logs", "shop", "production"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("booting with API_KEY=********"), "{out:?}");
    seen.push(format!("{out:?}"));

    // A rollback restores the config its release ran with.
    let out = cli(&app, &token, &["rollback", "shop", "production", "--to", "v1"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    seen.push(format!("{out:?}"));
    assert_eq!(app.get_app("shop", "production", "/greeting.txt").await, (200, "hello\n".to_owned()));
    let out = cli(&app, &token, &["config", "list", "shop", "production", "--json"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let config: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(config["version"], 4, "{config}");
    assert_eq!(
        config["vars"],
        json!([
            {"key": "API_KEY", "value": null, "secret": true},
            {"key": "GREETING", "value": "hello", "secret": false},
        ])
    );
    let out = cli(&app, &token, &["config", "list", "shop", "production"], "").await;
    assert!(out.stdout.contains("(secret)") && out.stdout.contains("hello"), "{out:?}");
    seen.push(format!("{out:?}"));

    // Unset removes a var in a new release.
    let out = cli(&app, &token, &["config", "unset", "shop", "production", "GREETING"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/greeting.txt").await, (200, "\n".to_owned()));

    // Every API answer about the service, its runs and their logs, and the audit log.
    for path in [
        "/services/shop",
        "/services/shop/environments",
        "/services/shop/environments/production",
        "/services/shop/environments/production/config",
        "/services/shop/environments/production/releases",
        "/services/shop/runs",
        "/audit",
    ] {
        let (status, body) = app.call("GET", path, Some(&token), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        seen.push(body.to_string());
    }
    let (_, runs) = app.call("GET", "/services/shop/runs", Some(&token), None).await;
    let runs = runs["items"].as_array().expect("runs").clone();
    assert!(runs.len() >= 4, "{runs:?}");
    for run in runs {
        let (status, log) = app.call("GET", &format!("/runs/{}/log", run["id"]), Some(&token), None).await;
        assert_eq!(status, 200);
        seen.push(log.to_string());
    }
    let out = cli(&app, &token, &["logs", "shop"], "").await;
    seen.push(format!("{out:?}"));
    seen.push(app.server_output());
    // At rest: the database files hold only the sealed value.
    for file in ["slipway.db", "slipway.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.data_dir.path().join(file)) {
            seen.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    for (i, text) in seen.iter().enumerate() {
        assert!(!text.contains(&secret), "the secret leaked in output #{i}: {text}");
    }
    assert!(seen.iter().any(|t| t.contains("********")), "masking was exercised");
}

// Who may read and change config, and what bad changes get.
crate::both_databases!(config_changes_are_validated_and_owned);

async fn config_changes_are_validated_and_owned(app: TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    let path = "/services/shop/environments/production/config";
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"set": {"1BAD": "x"}}), 400, "set.1BAD", "is not valid"),
        (json!({"set": {"PORT": "9"}}), 400, "set.PORT", "reserved"),
        (json!({"set": {"SLIPWAY_X": "9"}}), 400, "set.SLIPWAY_X", "reserved"),
        (json!({"set": {"PW": "abc"}, "secret": true}), 400, "set.PW", "shorter than 6"),
        (json!({"set": {"A": "a\u{0}b"}}), 400, "set.A", "NUL"),
        (json!({"set": {"A": "x".repeat(32 * 1024 + 1)}}), 400, "set.A", "longer than"),
        (json!({"unset": ["NOPE"]}), 404, "", "NOPE is not set"),
        (json!({"set": {"A": "1"}, "unset": ["A"]}), 400, "set.A", "given twice"),
        (json!({}), 400, "set", "nothing to change"),
        (json!({"set": {"A": 1}}), 400, "", "set"),
        (json!({"sett": {"A": "1"}}), 400, "", "sett"),
    ];
    for (body, status, field, message) in cases {
        let (got, problem) = app.admin("PATCH", path, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(message), "{body}: {problem}");
        if !field.is_empty() {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
    // Nothing was half-written: the config is still empty.
    let (status, config) = app.admin("GET", path, None).await;
    assert_eq!(status, 200);
    assert_eq!(config["version"], 0, "{config}");
    assert_eq!(config["vars"], json!([]));

    let (status, changed) = app.admin("PATCH", path, Some(json!({"set": {"A": "1", "B": "2"}}))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["config"]["version"], 1);
    assert_eq!(changed["run"], Value::Null, "nothing runs yet, so nothing rolls out");
    let (status, _) = app.admin("GET", "/services/shop/environments/nope/config", None).await;
    assert_eq!(status, 404);

    // Members of another team may neither read nor change it.
    app.team("search").await;
    let eve = app.user("eve").await;
    app.member("search", "eve", "maintainer").await;
    let (status, _) = app.call("GET", path, Some(&eve), None).await;
    assert_eq!(status, 403);
    let (status, _) = app.call("PATCH", path, Some(&eve), Some(json!({"set": {"A": "evil"}}))).await;
    assert_eq!(status, 403);
    let (status, _) = app.call("GET", path, None, None).await;
    assert_eq!(status, 401);
    // The owning team's members may.
    let ana = app.user("ana").await;
    app.member("payments", "ana", "member").await;
    let (status, config) = app.call("GET", path, Some(&ana), None).await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["vars"][0], json!({"key": "A", "value": "1", "secret": false}));
}
