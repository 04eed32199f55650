//! Ownership is enforced on every route. The routes come from the server's own OpenAPI
//! document (the router and the document are built from the same list), so a new route
//! that is missing from the table below fails this test until its policy is stated here
//! and shown to hold.

use serde_json::{Value, json};
use slipway_e2e::TestApp;

crate::both_databases!(every_mutating_route_refuses_another_teams_member, every_route_but_login_requires_sign_in);

/// What a signed-in member of team `alpha` (a maintainer there) must get on each
/// state-changing route when it targets team `beta`'s things.
enum Expect {
    /// Refused by the policy.
    Forbidden(Value),
    /// A route that acts only on the caller's own things, with why that is safe.
    OwnOnly(&'static str),
    /// Open to anyone, with why.
    Public(&'static str),
    /// Answers 200 with a report in which everything of another team is skipped (an
    /// import applies what the caller may write and says why it skipped the rest).
    SkipsOthers(Value),
}

fn table() -> Vec<(&'static str, Expect)> {
    use Expect::*;
    vec![
        ("POST /api/v1/login", Public("signing in is how credentials are obtained")),
        ("POST /api/v1/logout", OwnOnly("ends only the session that calls it")),
        ("POST /api/v1/user/password", OwnOnly("changes only the caller's password, after checking it")),
        ("POST /api/v1/tokens", OwnOnly("creates a token for the caller")),
        ("DELETE /api/v1/tokens/{name}", OwnOnly("revokes only the caller's token of that name")),
        ("POST /api/v1/users", Forbidden(json!({"username": "newbie", "password": "long-enough-pw"}))),
        ("POST /api/v1/teams", Forbidden(json!({"name": "newteam"}))),
        ("PATCH /api/v1/teams/{team}", Forbidden(json!({"aliases": ["stolen"]}))),
        (
            "POST /api/v1/catalog/import",
            SkipsOthers(json!({"apply": true, "files": [{"path": "c.yaml", "content":
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: beta-svc}\nspec: {owner: beta}\n---\n\
                 apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata: {name: beta-api}\nspec: {owner: group:beta}\n"}]})),
        ),
        ("DELETE /api/v1/teams/{team}", Forbidden(Value::Null)),
        ("POST /api/v1/teams/{team}/members", Forbidden(json!({"username": "mallory", "role": "maintainer"}))),
        ("DELETE /api/v1/teams/{team}/members/{user}", Forbidden(Value::Null)),
        ("POST /api/v1/services", Forbidden(json!({"name": "sneaky", "team": "beta"}))),
        ("PATCH /api/v1/services/{service}", Forbidden(json!({"description": "defaced"}))),
        ("DELETE /api/v1/services/{service}", Forbidden(Value::Null)),
        ("POST /api/v1/services/{service}/runs", Forbidden(json!({"environment": "production"}))),
        ("POST /api/v1/runs/{id}/cancel", Forbidden(Value::Null)),
        ("POST /api/v1/services/{service}/environments/{env}/rollback", Forbidden(json!({}))),
        ("POST /api/v1/services/{service}/environments/{env}/scale", Forbidden(json!({"replicas": 3}))),
        ("PATCH /api/v1/services/{service}/environments/{env}/config", Forbidden(json!({"set": {"A": "1"}}))),
        ("POST /api/v1/services/{service}/environments", Forbidden(json!({"name": "evil", "template": "web"}))),
        ("PATCH /api/v1/services/{service}/environments/{env}", Forbidden(json!({"parameters": {"replicas": 1}}))),
        ("DELETE /api/v1/services/{service}/environments/{env}", Forbidden(Value::Null)),
        ("POST /api/v1/templates", Forbidden(json!({"source": "apiVersion: slipway.dev/v1"}))),
        ("POST /api/v1/templates/{name}/{version}/deprecate", Forbidden(Value::Null)),
        ("PUT /api/v1/teams/{team}/quota", Forbidden(json!({"max_environments": 100}))),
        ("POST /api/v1/clusters", Forbidden(json!({"name": "evil", "kubeconfig": "apiVersion: v1"}))),
        ("DELETE /api/v1/clusters/{name}", Forbidden(Value::Null)),
        ("POST /api/v1/services/{service}/promote", Forbidden(json!({"from": "production", "to": "production"}))),
    ]
}

/// Every operation of the OpenAPI document as (METHOD, path).
async fn operations(app: &TestApp) -> Vec<(String, String)> {
    let doc: Value = app
        .http
        .get(format!("{}/api/openapi.json", app.url))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(ops.len() >= 15, "the OpenAPI document lists too few operations: {ops:?}");
    ops
}

fn fill(path: &str, run: i64) -> String {
    path.replace("{id}", &run.to_string())
        .replace("{env}", "production")
        .replace("{team}", "beta")
        .replace("{service}", "beta-svc")
        .replace("{user}", "bob")
        .replace("{name}", "shared-name")
        .replace("{version}", "1.0.0")
}

async fn every_mutating_route_refuses_another_teams_member(app: TestApp) {
    app.team("alpha").await;
    app.team("beta").await;
    app.service("beta-svc", "beta").await;
    let mallory = app.user("mallory").await;
    let bob = app.user("bob").await;
    app.member("alpha", "mallory", "maintainer").await;
    app.member("beta", "bob", "maintainer").await;
    let (status, bobs) = app.call("POST", "/tokens", Some(&bob), Some(json!({"name": "shared-name"}))).await;
    assert_eq!(status, 201);
    let bobs_token = bobs["token"].as_str().expect("token").to_owned();
    // A run of beta's service: a push to a branch no environment tracks.
    let work = slipway_e2e::local_repo(&slipway_e2e::borrowed(&slipway_e2e::fixture_app("beta\n"))).await;
    let url = app.git_url("beta-svc", &app.admin_api_token("git").await);
    let out = slipway_e2e::git(work.path(), &[], &["push", &url, "main:scratch"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (_, runs) = app.admin("GET", "/services/beta-svc/runs", None).await;
    let run = runs["items"][0]["id"].as_i64().expect("a run of beta-svc");
    let before = app.snapshot().await;

    let table = table();
    let ops = operations(&app).await;
    for (method, path) in &ops {
        if method == "GET" {
            continue;
        }
        let key = format!("{method} {path}");
        let (_, expect) = table
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("route {key} is not in the ownership table: state its policy there"));
        let api_path = fill(path.trim_start_matches("/api/v1"), run);
        match expect {
            Expect::Forbidden(body) => {
                let body = if body.is_null() { None } else { Some(body.clone()) };
                let (status, problem) = app.call(method, &api_path, Some(&mallory), body).await;
                assert_eq!(status, 403, "{key} as another team's maintainer: {problem}");
            }
            Expect::SkipsOthers(body) => {
                let (status, report) = app.call(method, &api_path, Some(&mallory), Some(body.clone())).await;
                assert_eq!(status, 200, "{key} as another team's maintainer: {report}");
                let entities = report["files"][0]["entities"].as_array().cloned().unwrap_or_default();
                assert_eq!(entities.len(), 2, "{report}");
                for entity in entities {
                    assert_eq!(entity["action"], "skip", "{key}: {report}");
                    assert!(entity["detail"].as_str().unwrap_or_default().contains("team \"beta\""), "{report}");
                }
            }
            Expect::OwnOnly(why) | Expect::Public(why) => assert!(!why.is_empty(), "{key}: say why it is exempt"),
        }
    }
    for (key, _) in &table {
        assert!(ops.iter().any(|(m, p)| format!("{m} {p}") == *key), "table entry {key} is not a route any more");
    }
    assert_eq!(app.snapshot().await, before, "a refused request changed the database");

    // Logs carry whatever the team's code printed: another team's member reads none.
    for path in ["/runs/{id}/log", "/runs/{id}/events", "/services/{service}/environments/{env}/logs"] {
        let (status, problem) = app.call("GET", &fill(path, run), Some(&mallory), None).await;
        assert_eq!(status, 403, "GET {path} as another team's member: {problem}");
        assert!(problem["detail"].as_str().unwrap_or_default().contains("may read this service's logs"), "{problem}");
    }
    let (status, log) = app.call("GET", &fill("/runs/{id}/log", run), Some(&bob), None).await;
    assert_eq!(status, 200, "the owners read their own build log: {log}");

    // Own-only routes: mallory revoking "shared-name" touches only her own tokens.
    let (status, _) = app.call("DELETE", "/tokens/shared-name", Some(&mallory), None).await;
    assert_eq!(status, 404);
    assert_eq!(app.call("GET", "/user", Some(&bobs_token), None).await.0, 200, "bob's token must survive");

    // And the owners themselves are allowed, so the 403s above were the policy speaking.
    let (status, _) = app.call("PATCH", "/services/beta-svc", Some(&bob), Some(json!({"description": "ours"}))).await;
    assert_eq!(status, 200);
    let (status, _) =
        app.call("POST", "/services", Some(&bob), Some(json!({"name": "beta-two", "team": "beta"}))).await;
    assert_eq!(status, 201);
}

async fn every_route_but_login_requires_sign_in(app: TestApp) {
    app.team("beta").await;
    app.service("beta-svc", "beta").await;
    let before = app.snapshot().await;
    for (method, path) in operations(&app).await {
        let api_path = fill(path.trim_start_matches("/api/v1"), 1);
        let body = if method == "GET" || method == "DELETE" { None } else { Some(json!({})) };
        let (status, problem) = app.call(&method, &api_path, None, body).await;
        if path == "/api/v1/login" {
            assert_eq!(status, 400, "login with an empty body: {problem}");
        } else {
            assert_eq!(status, 401, "{method} {path} without credentials: {problem}");
        }
    }
    assert_eq!(app.snapshot().await, before);
}
