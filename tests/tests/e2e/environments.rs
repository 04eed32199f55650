//! Environments from templates: templates published and deprecated, environments
//! created (with a dry run), upgraded with a diff and destroyed on the local runtime,
//! previews made by branch pushes and reaped by TTL or idleness (with a clock the test moves),
//! quota refusals, and bad input refused without leaving anything behind.

use crate::both_databases;
use crate::each_database;
use serde_json::{Value, json};
use slipway_e2e::{Db, TestApp, TestClock, borrowed, fixture_app, git, local_repo, nonce};

async fn setup(app: &TestApp) -> String {
    app.team("payments").await;
    app.service("shop", "payments").await;
    app.admin_api_token("cli").await
}

crate::both_databases!(
    templates_are_listed_published_and_deprecated,
    bad_environment_requests_are_refused_and_change_nothing,
    quotas_refuse_growth_and_name_the_limit
);

const CUSTOM: &str = "apiVersion: slipway.dev/v1\nkind: EnvironmentTemplate\n\
metadata: {name: web, version: 1.1.0, description: web with one replica by default}\n\
parameters:\n  replicas: {type: integer, default: 1, minimum: 1, maximum: 3}\n\
spec:\n  workloads:\n    web: {replicas: \"${replicas}\", port: 8080, health: /, memory: 64Mi}\n";

async fn templates_are_listed_published_and_deprecated(app: TestApp) {
    let (status, list) = app.admin("GET", "/templates", None).await;
    assert_eq!(status, 200);
    let names: Vec<String> =
        list["items"].as_array().expect("list").iter().map(|t| format!("{}@{}", t["name"], t["version"])).collect();
    for builtin in ["web", "worker", "web-postgres", "static", "preview"] {
        assert!(names.contains(&format!("\"{builtin}\"@\"1.0.0\"")), "{builtin} in {names:?}");
    }
    let (status, web) = app.admin("GET", "/templates/web", None).await;
    assert_eq!(status, 200);
    assert_eq!(web["parameters"]["replicas"]["type"], "integer");
    assert_eq!(web["parameters"]["replicas"]["default"], 2);
    assert!(web["source"].as_str().unwrap_or_default().contains("kind: EnvironmentTemplate"));

    // A YAML mistake is refused with its position; nothing is published.
    let broken = CUSTOM.replace("parameters:\n", "parameters:\n  oops: [\n");
    let (status, problem) = app.admin("POST", "/templates", Some(json!({"source": broken}))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().starts_with("line "), "{problem}");
    assert_eq!(problem["field"], "source");
    let bad_default = CUSTOM.replace("default: 1,", "default: 5,");
    let (status, problem) = app.admin("POST", "/templates", Some(json!({"source": bad_default}))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("above the maximum 3"), "{problem}");

    let (status, published) = app.admin("POST", "/templates", Some(json!({"source": CUSTOM}))).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["version"], "1.1.0");
    assert_eq!(published["builtin"], false);
    // A published version never changes.
    let (status, problem) = app.admin("POST", "/templates", Some(json!({"source": CUSTOM}))).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(app.admin("GET", "/templates/web", None).await.1["version"], "1.1.0", "the newest wins");

    // Deprecated versions are not offered to new environments.
    let (status, _) = app.admin("POST", "/templates/web/1.0.0/deprecate", None).await;
    assert_eq!(status, 200);
    let body = json!({"name": "qa", "template": "web@1.0.0", "dry_run": true});
    let (status, problem) = app.admin("POST", "/services/nope/environments", Some(body.clone())).await;
    assert_eq!(status, 404, "{problem}");
    app.team("payments").await;
    app.service("shop", "payments").await;
    let (status, problem) = app.admin("POST", "/services/shop/environments", Some(body)).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("use web@1.1.0"), "{problem}");
    let (status, _) = app.admin("POST", "/templates/web/9.9.9/deprecate", None).await;
    assert_eq!(status, 404);

    // The CLI shows the parameters with their rules.
    let token = app.admin_api_token("cli").await;
    let out = app.slipway(&token, &["templates", "show", "preview"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ttl") && out.stdout.contains("48h"), "{out:?}");
    let out = app.slipway(&token, &["templates", "list"], "").await;
    assert!(out.stdout.contains("deprecated"), "{out:?}");
}

async fn bad_environment_requests_are_refused_and_change_nothing(app: TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    let before = app.snapshot().await;
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"name": "Bad", "template": "web"}), 400, "name", "lower-case"),
        (json!({"name": "qa", "template": "nope"}), 404, "", "nope"),
        (json!({"name": "qa", "template": "web@9.9.9"}), 404, "", "web@9.9.9"),
        (json!({"name": "qa", "template": "web@latest"}), 400, "template", "not a version"),
        (
            json!({"name": "qa", "template": "web", "parameters": {"replicas": 0}}),
            422,
            "parameters.replicas",
            "below the minimum 1",
        ),
        (
            json!({"name": "qa", "template": "web", "parameters": {"replicas": "x"}}),
            422,
            "parameters.replicas",
            "not a valid integer",
        ),
        (
            json!({"name": "qa", "template": "web", "parameters": {"memory": "lots"}}),
            422,
            "parameters.memory",
            "does not match the pattern",
        ),
        (
            json!({"name": "qa", "template": "web", "parameters": {"colour": "red"}}),
            422,
            "parameters.colour",
            "not declared",
        ),
        (json!({"name": "qa", "template": "web", "ttl": "soon"}), 400, "ttl", "not a duration"),
        (json!({"name": "qa", "template": "web", "ttl": "+5h"}), 400, "ttl", "not a duration"),
        (json!({"name": "qa", "template": "web", "ttl": "05h"}), 400, "ttl", "not a duration"),
        (json!({"name": "qa", "template": "web", "ttl": " 5h"}), 400, "ttl", "not a duration"),
        (json!({"name": "qa", "template": "web", "ttl": "999999999d"}), 422, "ttl", "longest ttl, 3650d"),
        (
            json!({"name": "qa", "template": "preview", "ttl": "72h"}),
            422,
            "ttl",
            "longer than template preview's ttl of 48h",
        ),
        (json!({"name": "qa", "template": "web", "runtime": "prod-cluster"}), 404, "", "no cluster named"),
        (json!({"name": "qa", "template": "web", "branch": "a..b"}), 400, "branch", "not a valid git branch"),
        (json!({"name": "production", "template": "web"}), 409, "", "already has an environment production"),
        (
            json!({"name": "qa", "template": "web", "branch": "main"}),
            409,
            "",
            "branch main already deploys to production",
        ),
        (json!({"name": "qa", "template": "web", "colour": 1}), 400, "", "colour"),
    ];
    for (body, status, field, message) in cases {
        let (got, problem) = app.admin("POST", "/services/shop/environments", Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains(message), "{body}: {problem}");
        if !field.is_empty() {
            assert_eq!(problem["field"], field, "{body}: {problem}");
        }
    }
    let (status, problem) = app
        .admin("PATCH", "/services/shop/environments/production", Some(json!({"parameters": {"replicas": 11}})))
        .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = app.admin("DELETE", "/services/shop/environments/nope", None).await;
    assert_eq!(status, 404);
    assert_eq!(app.snapshot().await, before, "a refused request changed the database");
}

async fn quotas_refuse_growth_and_name_the_limit(app: TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    let quota = json!({"max_environments": 2, "max_replicas": 4, "max_memory_mb": 1024});
    let (status, set) = app.admin("PUT", "/teams/payments/quota", Some(quota)).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["usage"], json!({"environments": 1, "previews": 0, "replicas": 2, "memory_mb": 512}));

    let create = |name: &str| json!({"name": name, "template": "web"});
    let (status, created) = app.admin("POST", "/services/shop/environments", Some(create("staging"))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["run"], Value::Null, "nothing is pushed to its branch yet");
    let (status, problem) = app.admin("POST", "/services/shop/environments", Some(create("qa"))).await;
    assert_eq!(status, 403, "{problem}");
    assert_eq!(
        problem["detail"].as_str().unwrap_or_default().split(';').next(),
        Some("quota max_environments of the team is 2: 2 in use, this needs 1 more")
    );
    let (status, problem) =
        app.admin("POST", "/services/shop/environments/production/scale", Some(json!({"replicas": 3}))).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("quota max_replicas of the team is 4: 4 in use"));
    let (status, _) =
        app.admin("POST", "/services/shop/environments/production/scale", Some(json!({"replicas": 1}))).await;
    assert_eq!(status, 200, "shrinking is always allowed");
    let (status, problem) =
        app.admin("PATCH", "/services/shop/environments/staging", Some(json!({"parameters": {"memory": "1Gi"}}))).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("quota max_memory_mb of the team is 1024 MiB"));

    // Members read their team's quota; other teams may not; limits are validated.
    let ana = app.user("ana").await;
    app.member("payments", "ana", "member").await;
    let (status, quota) = app.call("GET", "/teams/payments/quota", Some(&ana), None).await;
    assert_eq!(status, 200);
    assert_eq!(quota["usage"]["replicas"], 3);
    assert_eq!(quota["max_environments"], 2);
    app.team("search").await;
    let eve = app.user("eve").await;
    app.member("search", "eve", "maintainer").await;
    assert_eq!(app.call("GET", "/teams/payments/quota", Some(&eve), None).await.0, 403);
    let (status, _) = app.admin("PUT", "/teams/payments/quota", Some(json!({"max_environments": -1}))).await;
    assert_eq!(status, 400);
    // Raising the limit lets the team grow again.
    let (status, _) = app.admin("PUT", "/teams/payments/quota", Some(json!({"max_environments": 3}))).await;
    assert_eq!(status, 200);
    let (status, created) = app.admin("POST", "/services/shop/environments", Some(create("qa"))).await;
    assert_eq!(status, 201, "{created}");
}

both_databases!(environments_are_created_upgraded_and_destroyed_on_the_local_runtime);
async fn environments_are_created_upgraded_and_destroyed_on_the_local_runtime(app: TestApp) {
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);
    let body = format!("staging {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&body))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main:staging"]).await.code, 0);

    let out = app
        .slipway(
            &token,
            &["envs", "create", "shop", "staging", "--template", "web", "--set", "replicas=1", "--dry-run"],
            "",
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Plan for staging from web@1.0.0"), "{out:?}");
    assert!(out.stdout.contains("\"replicas\": 1"), "the rendered plan: {out:?}");
    assert_eq!(app.admin("GET", "/services/shop/environments/staging", None).await.0, 404, "a dry run creates nothing");

    let out = app
        .slipway(&token, &["envs", "create", "shop", "staging", "--template", "web", "--set", "replicas=1"], "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Created environment staging of shop, tracking branch staging"), "{out:?}");
    assert!(out.stdout.contains("Deploy staging v1: 1/1 replicas healthy"), "{out:?}");
    assert_eq!(app.get_app("shop", "staging", "/").await, (200, body.clone()));
    assert_eq!(app.replicas_of("shop", "staging").await.len(), 1);

    // An upgrade shows its diff first, then rolls out as a new release.
    let out = app.slipway(&token, &["envs", "update", "shop", "staging", "--set", "replicas=3", "--dry-run"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("-      \"replicas\": 1,") && out.stdout.contains("+      \"replicas\": 3,"),
        "{out:?}"
    );
    let out = app.slipway(&token, &["envs", "update", "shop", "staging", "--set", "replicas=3"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Deploy staging v2: 3/3 replicas healthy"), "{out:?}");
    app.eventually(10, "the old release's replica is retired", || async {
        app.replicas_of("shop", "staging").await.len() == 3
    })
    .await;
    let out = app.slipway(&token, &["envs", "show", "shop", "staging", "--json"], "").await;
    let env: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(env["template"], "web@1.0.0");
    assert_eq!(env["parameters"]["replicas"], 3);
    assert_eq!(env["release"], 2);

    // A worker: no port, no route, but its replicas run the template's command.
    let out = app
        .slipway(
            &token,
            &[
                "envs",
                "create",
                "shop",
                "jobs",
                "--template",
                "worker",
                "--branch",
                "staging",
                "--set",
                "command=sleep 600",
            ],
            "",
        )
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("branch staging already deploys to staging"), "{out:?}");
    assert_eq!(git(work.path(), &[], &["push", &url, "main:jobs"]).await.code, 0);
    let out = app
        .slipway(&token, &["envs", "create", "shop", "jobs", "--template", "worker", "--set", "command=sleep 600"], "")
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("(worker) healthy"), "{out:?}");
    assert_eq!(app.replicas_of("shop", "jobs").await.len(), 1);
    let (status, page) = app.get_app("shop", "jobs", "/").await;
    assert_eq!(status, 404, "a worker gets no route: {page}");

    let out = app.slipway(&token, &["envs", "destroy", "shop", "staging"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("shop", "staging", "/").await.0, 404);
    assert!(app.replicas_of("shop", "staging").await.is_empty(), "every replica is gone");
    let (_, envs) = app.admin("GET", "/services/shop/environments", None).await;
    let names: Vec<&str> = envs["items"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["jobs", "production"]);
    // Deleting the service stops what still runs.
    assert_eq!(app.admin("DELETE", "/services/shop", None).await.0, 204);
    assert!(app.replicas_of("shop", "jobs").await.is_empty());
}

both_databases!(a_failed_creation_leaves_nothing_behind);
async fn a_failed_creation_leaves_nothing_behind(app: TestApp) {
    let token = setup(&app).await;
    let mut files = fixture_app("broken\n");
    files.retain(|(name, _)| *name != "slipway.toml");
    files.push(("slipway.toml", b"[web]\nport = \"eighty\"\n".to_vec()));
    let work = local_repo(&borrowed(&files)).await;
    assert_eq!(git(work.path(), &[], &["push", &app.git_url("shop", &token), "main:broken"]).await.code, 0);
    let before = app.snapshot().await;
    let (status, problem) =
        app.admin("POST", "/services/shop/environments", Some(json!({"name": "broken", "template": "web"}))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("slipway.toml"), "{problem}");
    assert_eq!(app.snapshot().await, before, "the environment was removed with its failed first step");
    assert_eq!(app.admin("GET", "/services/shop/environments/broken", None).await.0, 404);
}

each_database!(branch_pushes_make_previews_that_ttl_idleness_and_branch_deletion_remove);
async fn branch_pushes_make_previews_that_ttl_idleness_and_branch_deletion_remove(db: Db) {
    // In-process, so the reaper's clock is the test's to move (slipwayd reads no test
    // hook from its environment).
    let clock = std::sync::Arc::new(TestClock::default());
    let app = TestApp::start_in_process(db, clock.clone()).await;
    let token = setup(&app).await;
    let url = app.git_url("shop", &token);
    let (status, problem) = app.admin("PATCH", "/services/shop", Some(json!({"preview_template": "nope"}))).await;
    assert_eq!(status, 404, "the preview template must exist: {problem}");
    assert_eq!(problem["detail"], "preview_template: template \"nope\" does not exist");
    assert_eq!(app.admin("PATCH", "/services/shop", Some(json!({"preview_template": "preview"}))).await.0, 200);

    let body = format!("preview {}\n", nonce());
    let work = local_repo(&borrowed(&fixture_app(&body))).await;
    let out = git(work.path(), &[], &["push", &url, "main:feature/Login"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Created preview pr-feature-login from template preview@1.0.0"), "{out:?}");
    assert!(out.stderr.contains("http://shop-pr-feature-login.localhost:"), "the push prints its URL: {out:?}");
    assert_eq!(app.get_app("shop", "pr-feature-login", "/").await, (200, body.clone()));
    let (_, env) = app.admin("GET", "/services/shop/environments/pr-feature-login", None).await;
    assert_eq!(env["preview"], true);
    assert_eq!(env["idle_ttl"], "1d");
    assert!(env["expires_at"].is_string(), "{env}");

    // Old but busy: requested at 23 h, then at 30 h it is older than its 24 h idle TTL
    // but was requested 7 h ago, so it stays. An environment whose TTL has ended, made
    // after the clock moved, goes in the reaper's first pass at 30 h, which handles
    // environments in the order they were made: once it is gone, the reaper has judged
    // the preview at 30 h.
    clock.set_ahead(23 * 3600);
    assert_eq!(app.get_app("shop", "pr-feature-login", "/").await, (200, body.clone()));
    clock.set_ahead(30 * 3600);
    let (status, created) = app
        .admin("POST", "/services/shop/environments", Some(json!({"name": "probe", "template": "web", "ttl": "1h"})))
        .await;
    assert_eq!(status, 201, "{created}");
    app.eventually(30, "the reaper's pass at 30 h removes the probe", || async {
        app.admin("GET", "/services/shop/environments/probe", None).await.0 == 404
    })
    .await;
    let (status, _) = app.admin("GET", "/services/shop/environments/pr-feature-login", None).await;
    assert_eq!(status, 200, "a preview requested 7 h ago is not idle, however old it is");
    // Idle: no request for 24.5 h, still within its 48 h TTL: it goes.
    clock.set_ahead(47 * 3600 + 1800);
    app.eventually(30, "the idle preview is destroyed", || async {
        app.admin("GET", "/services/shop/environments/pr-feature-login", None).await.0 == 404
    })
    .await;
    assert_eq!(app.get_app("shop", "pr-feature-login", "/").await.0, 404);
    assert!(app.replicas_of("shop", "pr-feature-login").await.is_empty());
    let (_, audit) = app.admin("GET", "/audit", None).await;
    assert!(audit.to_string().contains("destroy expired environment"), "{audit}");

    // An environment created with --ttl goes when it ends.
    clock.set_ahead(0);
    let (status, created) = app
        .admin("POST", "/services/shop/environments", Some(json!({"name": "demo", "template": "web", "ttl": "1h"})))
        .await;
    assert_eq!(status, 201, "{created}");
    clock.set_ahead(2 * 3600);
    app.eventually(30, "the demo environment's TTL ends", || async {
        app.admin("GET", "/services/shop/environments/demo", None).await.0 == 404
    })
    .await;

    // Deleting the branch destroys its preview.
    clock.set_ahead(0);
    assert_eq!(git(work.path(), &[], &["push", &url, "main:two"]).await.code, 0);
    assert_eq!(app.get_app("shop", "pr-two", "/").await.0, 200);
    let out = git(work.path(), &[], &["push", &url, "--delete", "two"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Destroyed preview pr-two"), "{out:?}");
    assert_eq!(app.admin("GET", "/services/shop/environments/pr-two", None).await.0, 404);
    assert!(app.replicas_of("shop", "pr-two").await.is_empty());
    // A team at its preview quota gets its pushes stored but no new preview.
    let (status, _) = app.admin("PUT", "/teams/payments/quota", Some(json!({"max_previews": 0}))).await;
    assert_eq!(status, 200);
    let out = git(work.path(), &[], &["push", &url, "main:three"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("nothing deploys") && out.stderr.contains("quota max_previews of the team is 0"),
        "{out:?}"
    );
    assert_eq!(app.admin("GET", "/services/shop/environments/pr-three", None).await.0, 404);
    // Production is never a preview: pushing main deploys it as before.
    assert_eq!(app.admin("GET", "/services/shop/environments/production", None).await.1["preview"], false);
}

/// A template with both add-ons, and an app that serves the URLs it was given.
const DATA_TEMPLATE: &str = "apiVersion: slipway.dev/v1\nkind: EnvironmentTemplate\n\
metadata: {name: web-data, version: 1.0.0}\n\
spec:\n  workloads:\n    web: {replicas: 1, port: 8080, health: /}\n  addons: [postgres, {type: redis}]\n";

/// An app that serves the URLs it was given, and what Redis answered it over the
/// container network (busybox's nc needs an address: nslookup asks the engine's DNS).
fn data_app() -> Vec<(&'static str, Vec<u8>)> {
    let containerfile = "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\nCOPY start.sh /start.sh\n\
        CMD [\"sh\", \"/start.sh\"]\n";
    let start = r#"echo "$DATABASE_URL" > /www/db.txt
echo "$REDIS_URL" > /www/redis.txt
rest=${REDIS_URL#redis://:}
password=${rest%%@*}
host=${rest#*@}
host=${host%%:*}
ip=$(nslookup "$host" | awk '/^Address/ { a = $NF } END { print a }')
printf 'AUTH %s\r\nPING\r\nQUIT\r\n' "$password" | nc -w 5 "$ip" 6379 > /www/ping.txt
exec httpd -f -p 8080 -h /www
"#;
    vec![
        ("Containerfile", containerfile.as_bytes().to_vec()),
        ("index.html", b"data\n".to_vec()),
        ("start.sh", start.as_bytes().to_vec()),
    ]
}

both_databases!(add_ons_are_provisioned_injected_and_removed_with_the_environment);
async fn add_ons_are_provisioned_injected_and_removed_with_the_environment(app: TestApp) {
    let token = setup(&app).await;
    assert_eq!(app.admin("POST", "/templates", Some(json!({"source": DATA_TEMPLATE}))).await.0, 201);
    let work = local_repo(&borrowed(&data_app())).await;
    assert_eq!(git(work.path(), &[], &["push", &app.git_url("shop", &token), "main:data"]).await.code, 0);

    let out = app.slipway(&token, &["envs", "create", "shop", "data", "--template", "web-data"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let (status, db_url) = app.get_app("shop", "data", "/db.txt").await;
    assert_eq!(status, 200);
    let db_url = db_url.trim().to_owned();
    assert!(db_url.starts_with("postgres://app:"), "{db_url}");
    // The replica reached Redis by its name on the container network, with its password.
    let (_, ping) = app.get_app("shop", "data", "/ping.txt").await;
    assert!(ping.contains("+OK") && ping.contains("+PONG"), "{ping:?}");
    let (_, redis_url) = app.get_app("shop", "data", "/redis.txt").await;
    assert!(redis_url.contains("@slipway-shop-data-redis-"), "{redis_url}");
    // Its password is not on a command line (every local user can read those in `ps`).
    let redis_password = redis_url.trim().trim_start_matches("redis://:").split('@').next().expect("password");
    let node = format!("dev.slipway.node={}", app.node());
    let redis = slipway_e2e::engine::running(&[node.clone(), "dev.slipway.addon=redis".to_owned()]).await;
    assert_eq!(redis.len(), 1);
    assert!(!redis[0]["Command"].to_string().contains(redis_password), "{}", redis[0]["Command"]);
    // The DATABASE_URL names the add-on and holds a password a real PostgreSQL takes
    // (asked here through the loopback port slipwayd's readiness probe uses).
    let host = db_url.split('@').nth(1).and_then(|h| h.split(':').next()).expect("host").to_owned();
    assert!(host.starts_with("slipway-shop-data-postgres-"), "{db_url}");
    let addon = slipway_e2e::engine::running(&[
        format!("dev.slipway.node={}", app.node()),
        "dev.slipway.addon=postgres".to_owned(),
    ])
    .await;
    let port = addon[0]["Ports"][0]["PublicPort"].as_u64().expect("a loopback port");
    let local_url = db_url.replace(&format!("@{host}:5432/"), &format!("@127.0.0.1:{port}/"));
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&local_url).await.expect("add-on database");
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.expect("query");
    assert_eq!(one, 1);
    // The password is masked in the run log like a secret.
    let password = db_url.split(':').nth(2).and_then(|p| p.split('@').next()).expect("password").to_owned();
    let (_, runs) = app.admin("GET", "/services/shop/runs", None).await;
    let run = runs["items"][0]["id"].as_i64().expect("run");
    let (_, log) = app.admin("GET", &format!("/runs/{run}/log"), None).await;
    assert!(!log.to_string().contains(&password));

    let labels = [format!("dev.slipway.node={}", app.node()), "dev.slipway.environment=data".to_owned()];
    // This slipwayd's (the other database's variant of this test shares the engine).
    assert_eq!(slipway_e2e::volumes(&labels).await.len(), 2, "one volume per add-on");
    assert_eq!(app.slipway(&token, &["envs", "destroy", "shop", "data"], "").await.code, 0);
    assert!(slipway_e2e::running_containers(&labels).await.is_empty(), "replicas and add-ons are gone");
    assert!(slipway_e2e::volumes(&labels).await.is_empty(), "and so are the volumes");
}

both_databases!(an_add_on_that_cannot_start_leaves_nothing_behind with ["--postgres-image", "localhost/slipway/no-such-image"]);
async fn an_add_on_that_cannot_start_leaves_nothing_behind(app: TestApp) {
    setup(&app).await;
    let before = app.snapshot().await;
    let (status, problem) =
        app.admin("POST", "/services/shop/environments", Some(json!({"name": "db", "template": "web-postgres"}))).await;
    assert_eq!(status, 503, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("postgres add-on(s) of db failed"), "{problem}");
    assert_eq!(app.snapshot().await, before, "the environment was removed again");
    let labels = [format!("dev.slipway.node={}", app.node()), "dev.slipway.environment=db".to_owned()];
    assert!(slipway_e2e::volumes(&labels).await.is_empty());
    assert!(app.server_output().contains("no-such-image"), "the log says why");
}
