//! Per-environment traffic figures: what the app router served an environment shows in
//! the API, `slipway status` and the environment page, counted as answered (5xx as
//! errors), only for environments routed here, and kept across a restart (the minute
//! being counted is stored when slipwayd stops).

use serde_json::Value;
use slipway_e2e::portal::Portal;
use slipway_e2e::{TestApp, USER_PASSWORD, borrowed, git, keepalive_app, local_repo, nonce};

use crate::both_databases;

async fn traffic(app: &TestApp) -> Value {
    let (status, env) = app.admin("GET", "/services/shop/environments/production", None).await;
    assert_eq!(status, 200, "{env}");
    env["traffic"].clone()
}

both_databases!(traffic_figures_count_what_the_router_served);
async fn traffic_figures_count_what_the_router_served(mut app: TestApp) {
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let work = local_repo(&borrowed(&keepalive_app(&format!("v1 {}", nonce()), false))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    // Health checks go to the replicas, not through the router: nothing counted yet.
    let before = traffic(&app).await;
    assert_eq!(before["requests"], 0, "{before}");
    assert!(before["p50_ms"].is_null() && before["error_rate"].is_null(), "{before}");

    for _ in 0..38 {
        assert_eq!(app.get_app("shop", "production", "/").await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(app.get_app("shop", "production", "/fail").await.0, 503);
    }
    // Hosts that name no environment here are answered 404 and counted nowhere.
    for host in ["nope-production", "shop-nope"] {
        let (service, env) = host.split_once('-').expect("pair");
        assert_eq!(app.get_app(service, env, "/").await.0, 404);
    }

    let live = traffic(&app).await;
    assert_eq!(live["requests"], 40, "{live}");
    assert_eq!(live["error_rate"].as_f64(), Some(0.05), "{live}");
    let (p50, p99) = (live["p50_ms"].as_f64().expect("p50"), live["p99_ms"].as_f64().expect("p99"));
    assert!(p50 > 0.0 && p50 <= p99, "{live}");
    assert!(live["requests_per_second"].as_f64().expect("rate") > 0.0, "{live}");
    let window = live["window_seconds"].as_u64().expect("window");
    assert!((1..=3600).contains(&window), "{live}");

    let out = app.slipway(&token, &["status", "shop"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let section = out.stdout.split("Traffic through the app router, last hour:").nth(1).expect("a traffic section");
    let row = section.lines().find(|l| l.contains("production")).expect("a row for production");
    assert!(row.contains(" 40 ") && row.contains("5.0%"), "{row}");

    app.user("ana").await;
    let ana = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    let page = ana.get("/services/shop/envs/production").await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert_eq!(page.texts("#traffic [data-figure=requests]"), ["40"], "{}", page.html);
    assert_eq!(page.texts("#traffic [data-figure=errors]"), ["5.0 %"]);
    assert!(page.texts("#traffic [data-figure=p99]")[0].ends_with(" ms"));

    // A stop stores the minute being counted; the figures come back from the database.
    assert!(app.stop().await.success());
    app.restart().await;
    let stored = traffic(&app).await;
    assert_eq!(stored["requests"], 40, "{stored}");
    assert_eq!(stored["error_rate"].as_f64(), Some(0.05), "{stored}");
    assert_eq!(app.get_app("shop", "production", "/").await.0, 200);
    assert!(app.stop().await.success());
    app.restart().await;
    assert_eq!(traffic(&app).await["requests"], 41, "counted once each");
}
