//! Bad input is refused with a problem document naming the field, and leaves the
//! database exactly as it was.

use serde_json::{Value, json};
use slipway_e2e::TestApp;

crate::both_databases!(bad_input_is_refused_and_changes_nothing);

async fn bad_input_is_refused_and_changes_nothing(app: TestApp) {
    app.team("payments").await;
    app.service("shop", "payments").await;
    let ana = app.user("ana").await;
    app.member("payments", "ana", "maintainer").await;
    let before = app.snapshot().await;

    let long = "a".repeat(41);
    let bad_names = ["Shop", long.as_str(), "1shop", "shop/api", "..", "shop-", "", "sh op", "caf\u{e9}"];
    for name in bad_names {
        for (path, field, body) in [
            ("/services", "name", json!({"name": name, "team": "payments"})),
            ("/teams", "name", json!({"name": name})),
            ("/users", "username", json!({"username": name, "password": "long-enough-pw"})),
        ] {
            let (status, problem) = app.admin("POST", path, Some(body)).await;
            assert_eq!(status, 400, "{path} {name:?}: {problem}");
            assert_eq!(problem["field"], field, "{path} {name:?}: {problem}");
            assert!(problem["detail"].as_str().unwrap_or_default().contains(field), "{problem}");
        }
    }
    let (status, problem) = app.admin("POST", "/services", Some(json!({"name": "ok", "team": "No-Such"}))).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("team")));

    let cases: Vec<(&str, &str, Value, &str)> = vec![
        ("POST", "/services", json!({"name": "x", "team": "payments", "colour": "red"}), "colour"),
        ("POST", "/services", json!({"name": 42, "team": "payments"}), "name"),
        ("POST", "/services", json!({"team": "payments"}), "name"),
        ("POST", "/services", json!({"name": "x", "team": "payments", "lifecycle": " "}), "lifecycle"),
        ("POST", "/services", json!({"name": "x", "team": "payments", "lifecycle": "x".repeat(65)}), "lifecycle"),
        ("POST", "/services", json!({"name": "x", "team": "payments", "tier": "gold"}), "tier"),
        (
            "POST",
            "/services",
            json!({"name": "x", "team": "payments", "links": [{"name": "a", "url": "javascript:alert(1)"}]}),
            "links",
        ),
        ("POST", "/services", json!({"name": "x", "team": "payments", "depends_on": ["Billing"]}), "depends_on"),
        ("PATCH", "/services/shop", json!({"on_call": "a\u{1b}[31m"}), "on_call"),
        ("PATCH", "/services/shop", json!({"description": "d".repeat(1001)}), "description"),
        ("PATCH", "/services/shop", json!({"preview_template": "Preview"}), "preview_template"),
        ("PATCH", "/services/shop", json!({"team": "other"}), "team"),
        ("POST", "/users", json!({"username": "zed", "password": "short"}), "password"),
        ("POST", "/teams/payments/members", json!({"username": "ana", "role": "owner"}), "role"),
        ("POST", "/tokens", json!({"name": "has space"}), "name"),
    ];
    for (method, path, body, field) in cases {
        let (status, problem) = app.call(method, path, Some(&ana_or_admin(&app, &ana, path)), Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {problem}");
        assert_eq!(problem["field"], field, "{method} {path} {body}: {problem}");
    }

    // Malformed JSON, a missing content type and an oversize body.
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut req = app.http.post(app.api("/services")).bearer_auth(&app.admin_token).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req
    };
    let response = raw("{\"name\": \"x\",", Some("application/json")).send().await.expect("request");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("not valid JSON"), "{problem}");
    let response = raw("{\"name\": \"x\", \"team\": \"payments\"}", None).send().await.expect("request");
    assert_eq!(response.status(), 415);
    let big = json!({"name": "big", "team": "payments", "description": "x".repeat(100 * 1024)}).to_string();
    let response = app
        .http
        .post(app.api("/services"))
        .bearer_auth(&app.admin_token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");

    assert_eq!(app.snapshot().await, before, "refused requests changed the database");
}

/// Token routes act on the caller's own tokens; everything else is sent as admin so
/// that only validation can refuse it.
fn ana_or_admin(app: &TestApp, ana: &str, path: &str) -> String {
    if path.starts_with("/tokens") { ana.to_owned() } else { app.admin_token.clone() }
}
