//! The REST API's behaviour for teams, services, users, pagination and the audit log.

use serde_json::json;
use slipway_e2e::TestApp;

crate::both_databases!(
    catalog_lifecycle,
    pagination_walks_every_item,
    audit_records_every_change,
    current_user_lists_teams,
    writes_racing_a_delete_answer_without_a_server_error
);

async fn catalog_lifecycle(app: TestApp) {
    app.team("payments").await;
    let ana = app.user("ana").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    app.member("payments", "ana", "maintainer").await;
    app.member("payments", "bob", "member").await;

    let (status, shop) = app
        .call(
            "POST",
            "/services",
            Some(&ana),
            Some(json!({
                "name": "shop", "team": "payments", "description": "The shop front",
                "lifecycle": "production", "tier": "tier-1", "on_call": "#payments-oncall",
                "links": [{"name": "runbook", "url": "https://wiki.example.com/shop"}],
                "depends_on": ["billing"]
            })),
        )
        .await;
    assert_eq!(status, 201, "{shop}");
    assert_eq!(shop["team"], "payments");
    assert_eq!(shop["lifecycle"], "production");
    assert_eq!(shop["links"][0]["url"], "https://wiki.example.com/shop");
    assert_eq!(shop["git_url"], format!("{}/git/shop.git", app.url));

    // Everyone signed in reads the catalog.
    let (status, seen) = app.call("GET", "/services/shop", Some(&carol), None).await;
    assert_eq!(status, 200);
    assert_eq!(seen["description"], "The shop front");

    // A member of the owning team changes it; only the fields sent change.
    let (status, updated) =
        app.call("PATCH", "/services/shop", Some(&bob), Some(json!({"description": "Shop", "tier": "tier-2"}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["description"], "Shop");
    assert_eq!(updated["tier"], "tier-2");
    assert_eq!(updated["lifecycle"], "production");
    assert_eq!(updated["depends_on"], json!(["billing"]));

    // An outsider may not.
    let (status, problem) = app.call("PATCH", "/services/shop", Some(&carol), Some(json!({"description": "x"}))).await;
    assert_eq!(status, 403);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("owning team"), "{problem}");

    let (status, _) =
        app.call("POST", "/services", Some(&ana), Some(json!({"name": "shop", "team": "payments"}))).await;
    assert_eq!(status, 409);
    let (status, problem) = app.call("GET", "/services/nope", Some(&carol), None).await;
    assert_eq!(status, 404);
    assert_eq!(problem["detail"], "service \"nope\" does not exist");

    app.team("search").await;
    app.service("finder", "search").await;
    let (status, page) = app.call("GET", "/services?team=payments", Some(&carol), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = page["items"].as_array().expect("items").iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["shop"]);

    // A team that owns services cannot be deleted.
    let (status, problem) = app.admin("DELETE", "/teams/payments", None).await;
    assert_eq!(status, 409, "{problem}");
    let (status, _) = app.call("DELETE", "/services/shop", Some(&bob), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("GET", "/services/shop", Some(&carol), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.admin("DELETE", "/teams/payments", None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("GET", "/teams/payments", Some(&carol), None).await;
    assert_eq!(status, 404);

    // Maintainers manage members; members cannot.
    app.team("infra").await;
    app.member("infra", "ana", "maintainer").await;
    let (status, team) =
        app.call("POST", "/teams/infra/members", Some(&ana), Some(json!({"username": "bob", "role": "member"}))).await;
    assert_eq!(status, 200, "{team}");
    let (status, _) = app.call("POST", "/teams/infra/members", Some(&bob), Some(json!({"username": "carol"}))).await;
    assert_eq!(status, 403);
    let (status, _) = app.call("DELETE", "/teams/infra/members/bob", Some(&ana), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("DELETE", "/teams/infra/members/bob", Some(&ana), None).await;
    assert_eq!(status, 404);
}

async fn pagination_walks_every_item(app: TestApp) {
    app.team("many").await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let name = format!("svc-{i}");
        app.service(&name, "many").await;
        expected.push(name);
    }
    let mut seen = Vec::new();
    let mut path = "/services?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = app.admin("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|s| s["name"].as_str().expect("name").to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/services?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    let (status, problem) = app.admin("GET", "/services?limit=0", None).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("limit")));
    let (status, problem) = app.admin("GET", "/teams?cursor=***", None).await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("cursor")));
    let (status, _) = app.admin("GET", "/users?limit=201", None).await;
    assert_eq!(status, 400);
}

async fn audit_records_every_change(app: TestApp) {
    app.team("payments").await;
    let eve = app.user("eve").await;
    let (status, _) = app.call("POST", "/teams", Some(&eve), Some(json!({"name": "rogue"}))).await;
    assert_eq!(status, 403);
    let (status, _) =
        app.call("POST", "/login", None, Some(json!({"username": "eve", "password": "wrong-password"}))).await;
    assert_eq!(status, 401);
    let (status, _) = app.admin("POST", "/services", Some(json!({"name": "Bad", "team": "payments"}))).await;
    assert_eq!(status, 400);

    let (status, problem) = app.call("GET", "/audit", Some(&eve), None).await;
    assert_eq!(status, 403, "{problem}");

    let (status, page) = app.admin("GET", "/audit?limit=200", None).await;
    assert_eq!(status, 200);
    let entries = page["items"].as_array().expect("items");
    let find = |actor: &str, action: &str| {
        entries
            .iter()
            .find(|e| e["actor"] == actor && e["action"] == action)
            .unwrap_or_else(|| panic!("no audit entry for {actor} {action}: {entries:?}"))
    };
    let created = find("admin", "POST /api/v1/teams");
    assert_eq!((created["outcome"].as_str(), created["target"].as_str()), (Some("success"), Some("/api/v1/teams")));
    assert_eq!(find("eve", "POST /api/v1/teams")["outcome"], "denied");
    let failed_login = entries
        .iter()
        .find(|e| e["action"] == "POST /api/v1/login" && e["status"] == 401)
        .expect("failed login audited");
    assert_eq!((failed_login["actor"].as_str(), failed_login["outcome"].as_str()), (Some("eve"), Some("denied")));
    assert_eq!(find("admin", "POST /api/v1/services")["outcome"], "failed");
    // Reads are not audited, and the newest entry comes first.
    assert!(entries.iter().all(|e| !e["action"].as_str().unwrap_or_default().starts_with("GET ")));
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    // What an outsider sends without getting anywhere writes nothing: made-up paths,
    // anonymous requests to routes that need sign-in, throttled logins.
    let count = |page: &serde_json::Value| page["items"].as_array().map_or(0, Vec::len);
    let before = count(&app.admin("GET", "/audit?limit=200", None).await.1);
    let long = "x".repeat(5000);
    for _ in 0..20 {
        assert_eq!(app.call("POST", &format!("/nothing/{long}"), None, None).await.0, 404);
        assert_eq!(app.call("POST", &format!("/teams/{long}/members"), None, Some(json!({}))).await.0, 401);
    }
    let mut throttled = 0;
    for _ in 0..20 {
        let (status, _) =
            app.call("POST", "/login", None, Some(json!({"username": "eve", "password": "wrong-password"}))).await;
        throttled += usize::from(status == 429);
    }
    assert!(throttled >= 9, "{throttled}");
    let after = count(&app.admin("GET", "/audit?limit=200", None).await.1);
    assert_eq!(after - before, 20 - throttled, "only the logins that were tried are entries");
}

async fn current_user_lists_teams(app: TestApp) {
    app.team("payments").await;
    app.team("search").await;
    let ana = app.user("ana").await;
    app.member("payments", "ana", "maintainer").await;
    app.member("search", "ana", "member").await;
    let (status, me) = app.call("GET", "/user", Some(&ana), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        me,
        json!({"username": "ana", "admin": false, "teams": [
            {"team": "payments", "role": "maintainer"}, {"team": "search", "role": "member"}]})
    );
    let (status, users) = app.call("GET", "/users", Some(&ana), None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        users["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["admin", "ana"]);
    assert!(users["items"][0].get("password_hash").is_none());
}

/// A service deleted while other requests change it: each of those requests finds it or
/// does not (404/409), never a server error (Schemathesis found a 500 from a PATCH that
/// lost the race to a DELETE).
async fn writes_racing_a_delete_answer_without_a_server_error(app: TestApp) {
    app.team("payments").await;
    let mut seen = std::collections::BTreeMap::<(&str, u16), usize>::new();
    for round in 0..12 {
        let (status, body) = app.admin("POST", "/services", Some(json!({"name": "shop", "team": "payments"}))).await;
        assert_eq!(status, 201, "round {round}: {body}");
        let config = "/services/shop/environments/production/config";
        let (delete, patch, set, env, deploy, again) = tokio::join!(
            app.admin("DELETE", "/services/shop", None),
            app.admin("PATCH", "/services/shop", Some(json!({"description": format!("round {round}")}))),
            app.admin("PATCH", config, Some(json!({"set": {"ROUND": round.to_string()}}))),
            app.admin("POST", "/services/shop/environments", Some(json!({"name": "staging", "template": "web"}))),
            app.admin("POST", "/services/shop/runs", Some(json!({"environment": "production"}))),
            app.admin("PATCH", "/services/shop", Some(json!({"tier": "tier-2"}))),
        );
        assert_eq!(delete.0, 204, "round {round}: {}", delete.1);
        for (what, (status, body)) in
            [("patch", patch), ("config", set), ("environment", env), ("deploy", deploy), ("patch", again)]
        {
            assert!(status < 500, "round {round}: {what} answered {status}: {body}");
            assert!(body["detail"].is_string() || status < 300, "round {round}: {what}: {body}");
            *seen.entry((what, status)).or_default() += 1;
        }
        let (status, _) = app.admin("GET", "/services/shop", None).await;
        assert_eq!(status, 404, "round {round}: the delete won in the end");
    }
    assert!(seen.keys().any(|(_, status)| [404, 409].contains(status)), "some request lost the race: {seen:?}");
}
