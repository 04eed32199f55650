//! catalog-info.yaml read on push, its owner checked against the owning team, and DORA
//! metrics following deploys and rollbacks, in the API, the CLI and the portal.

use crate::both_databases;
use serde_json::{Value, json};
use slipway_e2e::portal::Portal;
use slipway_e2e::{TestApp, USER_PASSWORD, borrowed, commit, fixture_app, git, local_repo};

const CATALOG_INFO: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  description: Sells things
  links:
    - url: https://runbooks.example.com/shop
      title: Runbook
spec:
  type: service
  lifecycle: production
  owner: group:default/growth
  dependsOn: [component:billing, resource:default/shop-db]
";

both_databases!(catalog_info_and_dora_metrics_follow_pushes_and_rollbacks);
async fn catalog_info_and_dora_metrics_follow_pushes_and_rollbacks(app: TestApp) {
    app.team("payments").await;
    app.user("ana").await;
    app.member("payments", "ana", "maintainer").await;
    app.service("shop", "payments").await;
    app.service("billing", "payments").await;
    let token = app.admin_api_token("git").await;
    let url = app.git_url("shop", &token);

    let mut files = fixture_app("v1\n");
    files.push(("catalog-info.yaml", CATALOG_INFO.as_bytes().to_vec()));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("Catalog updated from catalog-info.yaml"), "{}", out.stderr);
    assert!(
        out.stderr.contains("catalog-info.yaml names owner \"growth\", but shop is owned by team \"payments\""),
        "an owner mismatch is a warning in the push output: {}",
        out.stderr
    );
    let (_, shop) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(shop["description"], "Sells things");
    assert_eq!(shop["lifecycle"], "production");
    assert_eq!(shop["depends_on"], json!(["billing"]), "resources are not services");
    assert_eq!(shop["links"][0], json!({"name": "Runbook", "url": "https://runbooks.example.com/shop"}));
    assert_eq!(shop["team"], "payments", "the declared owner is reported, not applied");
    assert_eq!(shop["declared_owner"], "growth");

    // A bad descriptor is reported and changes nothing; the push still deploys.
    commit(
        work.path(),
        &[
            ("catalog-info.yaml", b"apiVersion: backstage.io/v1alpha1\nkind: Component\nspec: {lifecycle: prod}\n"),
            ("index.html", b"v2\n"),
        ],
        "v2",
    )
    .await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("lifecycle \"prod\" is not one of"), "{}", out.stderr);
    let (_, shop) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(shop["lifecycle"], "production", "a refused descriptor leaves the catalog as it was");

    // The portal flags the mismatch and shows both directions of the dependency.
    let ana = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    let catalog = ana.get("/catalog?flagged=true").await;
    assert_eq!(catalog.count("tr[data-service=shop] [data-flag=owner-mismatch]"), 1, "{}", catalog.html);
    assert_eq!(catalog.count("tr[data-service=billing]"), 0, "billing is not flagged");
    let page = ana.get("/services/shop").await;
    assert!(page.texts(".warning").join("").contains("names owner growth"), "{}", page.html);
    assert!(ana.get("/services/billing").await.texts("#rdeps-h + ul li").contains(&"shop".to_owned()));

    // Roll back through the releases list: a third deploy, and a failure signal.
    let page = ana.post("/services/shop/envs/production/rollback", &[("to", "1")]).await;
    assert_eq!(page.status, 303, "{}", page.html);
    let run: i64 = page
        .location
        .as_deref()
        .and_then(|l| l.strip_prefix("/runs/"))
        .and_then(|id| id.parse().ok())
        .expect("run page");
    let run = app
        .wait_for_run(run, 60, |r| r["status"] != "queued" && r["status"] != "running" && r["status"] != "preparing")
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(app.get_app("shop", "production", "/").await.1, "v1\n");

    let (status, m) = app.admin("GET", "/services/shop/metrics?days=7", None).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["deployments"], 3, "{m}");
    assert_eq!(m["failures"], 1, "the rollback counts as a change failure: {m}");
    let rate = m["change_failure_rate"].as_f64().expect("rate");
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{m}");
    assert!(m["lead_time_ms"].as_i64().is_some_and(|ms| ms >= 0), "{m}");
    assert!(m["time_to_restore_ms"].as_i64().is_some(), "{m}");
    assert_eq!(m["daily_deployments"].as_array().map(Vec::len), Some(7));
    assert_eq!(m["daily_deployments"][6], 3, "all three today: {m}");
    let (_, team) = app.admin("GET", "/teams/payments/metrics?days=90", None).await;
    assert_eq!((team["scope"].as_str(), team["deployments"].as_u64()), (Some("team"), Some(3)), "{team}");
    let (status, problem) = app.admin("GET", "/services/shop/metrics?days=8", None).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("7, 30 or 90"), "{problem}");

    // The same figures in `slipway status --json` and on the service page.
    let out = app.slipway(&token, &["status", "shop", "--json", "--days", "7"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let status: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(status["dora"], m, "the CLI shows what the API computes");
    let out = app.slipway(&token, &["status", "shop"], "").await;
    assert!(
        out.stdout.contains("deployment frequency   3") && out.stdout.contains("change failure rate    33%"),
        "{}",
        out.stdout
    );
    let page = ana.get("/services/shop?days=7").await;
    assert_eq!(page.texts("[data-metric=deployments]").join("").split_whitespace().next(), Some("3"));
    assert_eq!(page.texts("[data-metric=failure-rate]").join("").split_whitespace().next(), Some("33"));
    assert_eq!(page.count("svg.chart rect"), 7, "one bar per day");

    // The environment page pages through releases, newest first ("33" is the cursor "3").
    let env_page = ana.get("/services/shop/envs/production").await;
    let versions = |p: &slipway_e2e::portal::Page| -> Vec<String> {
        p.texts("table.releases tbody tr td:first-child")
            .iter()
            .map(|t| t.split_whitespace().next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(versions(&env_page), vec!["v3", "v2", "v1"]);
    assert_eq!(versions(&ana.get("/services/shop/envs/production?releases=33").await), vec!["v2", "v1"]);
}
