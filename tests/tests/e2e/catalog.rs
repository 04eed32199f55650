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
        out.stderr.contains("catalog-info.yaml names owner \"group:default/growth\", which is not team \"payments\""),
        "an owner mismatch is a warning in the push output: {}",
        out.stderr
    );
    let (_, shop) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(shop["description"], "Sells things");
    assert_eq!(shop["lifecycle"], "production");
    assert_eq!(shop["depends_on"], json!(["billing"]), "resources are not services");
    assert_eq!(shop["links"][0], json!({"name": "Runbook", "url": "https://runbooks.example.com/shop"}));
    assert_eq!(shop["team"], "payments", "the declared owner is reported, not applied");
    assert_eq!(shop["declared_owner"], "group:default/growth");
    assert_eq!(shop["owner_mismatch"], true);
    assert_eq!(shop["resources"], json!(["resource:default/shop-db"]), "resources are kept as resources");

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
    assert!(out.stderr.contains("document 1: metadata.name: missing; the document is ignored"), "{}", out.stderr);
    assert!(out.stderr.contains("catalog-info.yaml declares no Component"), "{}", out.stderr);
    let (_, shop) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(shop["lifecycle"], "production", "a descriptor without a Component leaves the catalog as it was");

    // The portal flags the mismatch and shows both directions of the dependency.
    let ana = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    let catalog = ana.get("/catalog?flagged=true").await;
    assert_eq!(catalog.count("tr[data-service=shop] [data-flag=owner-mismatch]"), 1, "{}", catalog.html);
    assert_eq!(catalog.count("tr[data-service=billing]"), 0, "billing is not flagged");
    let page = ana.get("/services/shop").await;
    assert!(page.texts(".warning").join("").contains("names owner group:default/growth"), "{}", page.html);
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

/// A pushed `catalog-info.yaml` that is a Location naming the real descriptor.
const LOCATION: &str = "apiVersion: backstage.io/v1alpha1
kind: Location
metadata: {name: shop-descriptors}
spec:
  targets: [./catalog/shop.yaml]
";

fn shop_descriptor(owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1
kind: System
metadata: {{name: storefront, title: Store front}}
spec: {{owner: payments}}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  title: The shop
  description: |
    Sells things
  tags: [web]
spec:
  type: website
  lifecycle: unknown
  owner: {owner}
  system: storefront
  providesApis: [shop-api]
  dependsOn: [resource:default/shop-db]
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {{name: shop-api, description: Orders}}
spec: {{type: openapi, lifecycle: production, owner: payments, definition: 'openapi: 3.1.0'}}
---
apiVersion: backstage.io/v1alpha1
kind: Resource
metadata: {{name: search-db}}
spec: {{type: database, owner: search}}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {{name: payments}}
spec: {{type: team, children: []}}
"
    )
}

/// A Backstage-compatible read, outside `/api/v1`.
async fn backstage(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let response = app.http.get(format!("{}{path}", app.url)).bearer_auth(token).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn names(entities: &Value) -> Vec<String> {
    entities
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

both_databases!(descriptors_imports_and_the_backstage_api);
async fn descriptors_imports_and_the_backstage_api(app: TestApp) {
    app.team("payments").await;
    app.team("search").await;
    app.team("cncf").await;
    let ana = app.user("ana").await;
    app.user("jdoe").await;
    app.member("payments", "ana", "maintainer").await;
    app.member("payments", "jdoe", "member").await;
    app.service("shop", "payments").await;
    app.service("billing", "payments").await;
    let (status, _) = app.admin("PATCH", "/services/shop", Some(json!({"depends_on": ["billing"]}))).await;
    assert_eq!(status, 200);

    // An admin records a team's Backstage name; a team may not claim names itself, nor
    // take another team's.
    let out = app.slipway(&ana, &["teams", "set", "payments", "--alias", "DCD_CCD"], "").await;
    assert_ne!(out.code, 0, "a maintainer may not choose aliases: {out:?}");
    let admin = app.admin_api_token("cli").await;
    let out = app.slipway(&admin, &["teams", "set", "payments", "--alias", "DCD_CCD"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let (_, team) = app.admin("GET", "/teams/payments", None).await;
    assert_eq!(team["aliases"], json!(["dcd_ccd"]), "stored in lower case: refs compare case-insensitively");
    let (status, problem) = app.admin("PATCH", "/teams/search", Some(json!({"aliases": ["dcd_ccd"]}))).await;
    assert_eq!(status, 409, "{problem}");
    let (status, problem) = app.admin("PATCH", "/teams/search", Some(json!({"aliases": ["not ok"]}))).await;
    assert_eq!(status, 400, "{problem}");
    let (status, problem) = app.admin("POST", "/teams", Some(json!({"name": "dcd-ccd"}))).await;
    assert_eq!(status, 201, "{problem}");
    let (status, problem) = app.admin("PATCH", "/teams/search", Some(json!({"aliases": ["DCD-CCD"]}))).await;
    assert_eq!(status, 409, "an alias may not be another team's name: {problem}");

    // Push a Location whose target holds a System, the Component and an API.
    let token = app.admin_api_token("git").await;
    let url = app.git_url("shop", &token);
    let mut files = fixture_app("v1\n");
    files.push(("catalog-info.yaml", LOCATION.as_bytes().to_vec()));
    let descriptor = shop_descriptor("user:jdoe");
    files.push(("catalog/shop.yaml", descriptor.as_bytes().to_vec()));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("Catalog updated from catalog-info.yaml, catalog/shop.yaml (5 entities)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("names owner"), "user:jdoe is a member of the owning team: {}", out.stderr);
    assert!(
        out.stderr.contains("Resource \"search-db\" (document 4): spec.owner must be team \"payments\""),
        "a push declares only what its team owns: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Group \"payments\" (document 5): groups and users come from the platform team"),
        "{}",
        out.stderr
    );
    let (_, shop) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(shop["lifecycle"], "unknown", "lifecycle is free text");
    assert_eq!(shop["description"], "Sells things", "block text is trimmed");
    assert_eq!(shop["depends_on"], json!(["billing"]), "resource dependencies never clear component ones");
    assert_eq!(shop["resources"], json!(["resource:default/shop-db"]));
    assert_eq!(shop["system"], "system:default/storefront");
    assert_eq!(shop["provides_apis"], json!(["api:default/shop-api"]));
    assert_eq!((shop["title"].as_str(), shop["type"].as_str()), (Some("The shop"), Some("website")));
    assert_eq!(shop["owner_mismatch"], false, "{shop}");

    // The same descriptor again prints nothing; a changed one is applied once.
    commit(work.path(), &[("index.html", b"v2\n")], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("Catalog"), "an unchanged descriptor is not reported again: {}", out.stderr);
    for (owner, mismatch) in [("DCD_CCD", false), ("group:default/CNCF", true), ("Payments", false)] {
        commit(work.path(), &[("catalog/shop.yaml", shop_descriptor(owner).as_bytes())], owner).await;
        let out = git(work.path(), &[], &["push", &url, "main"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stderr.contains("names owner"), mismatch, "{owner}: {}", out.stderr);
        let (_, shop) = app.admin("GET", "/services/shop", None).await;
        assert_eq!(shop["owner_mismatch"], mismatch, "{owner}: {shop}");
    }

    // Import a directory: a Location naming two files, one of them another team's.
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    std::fs::create_dir(dir.path().join("more")).expect("mkdir");
    write(
        "all.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: all}\nspec:\n  targets: [./legacy.yaml, ./more/search.yaml]\n",
    );
    write(
        "legacy.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: legacy-billing\n  description: The old biller\n  \
         annotations: {github.com/project-slug: acme/legacy-billing}\nspec: {type: service, lifecycle: development, owner: dcd_ccd}\n\
         ---\napiVersion: backstage.io/v1alpha1\nkind: API\nmetadata: {name: billing-api}\nspec: {type: grpc, lifecycle: production, owner: group:dcd_ccd}\n\
         ---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: Bad_Name}\nspec: {owner: payments}\n",
    );
    write(
        "more/search.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: search-ui}\nspec: {type: website, lifecycle: production, owner: search}\n",
    );
    let all = dir.path().join("all.yaml");
    let all = all.to_str().expect("utf-8 path");
    let out = app.slipway(&ana, &["catalog", "import", all, "--json"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let plan: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(plan["applied"], false);
    let actions: Vec<(String, String)> = plan["files"]
        .as_array()
        .expect("files")
        .iter()
        .flat_map(|f| f["entities"].as_array().cloned().unwrap_or_default())
        .map(|e| (e["entity"].as_str().unwrap_or("").to_owned(), e["action"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        actions,
        [
            ("component:default/legacy-billing".to_owned(), "create".to_owned()),
            ("api:default/billing-api".to_owned(), "create".to_owned()),
            ("component:default/Bad_Name".to_owned(), "skip".to_owned()),
            ("component:default/search-ui".to_owned(), "skip".to_owned()),
        ],
        "{plan}"
    );
    assert!(out.stdout.contains("only admins and maintainers of team \\\"search\\\""), "{}", out.stdout);
    let (status, _) = app.admin("GET", "/services/legacy-billing", None).await;
    assert_eq!(status, 404, "a dry run writes nothing");

    let out = app.slipway(&ana, &["catalog", "import", all, "--apply"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("2 created, 0 updated, 2 skipped"), "{}", out.stdout);
    let (_, legacy) = app.admin("GET", "/services/legacy-billing", None).await;
    assert_eq!(legacy["catalog_only"], true, "{legacy}");
    assert_eq!(legacy["git_url"], Value::Null);
    assert_eq!(legacy["repo_url"], "https://github.com/acme/legacy-billing");
    assert_eq!((legacy["team"].as_str(), legacy["lifecycle"].as_str()), (Some("payments"), Some("development")));
    let out = app.slipway(&ana, &["catalog", "import", dir.path().to_str().expect("utf-8"), "--apply"], "").await;
    assert!(out.stdout.contains("0 created, 2 updated, 2 skipped"), "a directory, recursively: {}", out.stdout);

    // Groups and users decide ownership: only admins import them.
    let group = json!({"apply": true, "team": "payments", "files": [{"path": "g.yaml", "content":
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: search}\nspec: {type: team}\n"}]});
    let (status, report) = app.call("POST", "/catalog/import", Some(&ana), Some(group)).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["files"][0]["entities"][0]["action"], "skip", "{report}");
    assert_eq!(report["files"][0]["entities"][0]["detail"], "groups and users are imported by admins");

    // A catalog-only service has no repository and no environments.
    let clone = tempfile::tempdir().expect("tempdir");
    let out = git(clone.path(), &[], &["clone", &app.git_url("legacy-billing", &token), "x"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    let (status, problem) = app
        .admin("POST", "/services/legacy-billing/environments", Some(json!({"name": "staging", "template": "web"})))
        .await;
    assert_eq!(status, 409, "{problem}");

    // The Backstage-compatible API: filters, fields, paging, by name.
    let (status, owned) =
        backstage(&app, &ana, "/api/catalog/entities?filter=kind=component,spec.owner=group:default/dcd_ccd").await;
    assert_eq!(status, 200, "{owned}");
    assert_eq!(names(&owned), ["billing", "legacy-billing", "shop"], "a team and its alias are one owner");
    assert_eq!(owned[1]["spec"]["owner"], "group:default/payments");
    assert_eq!(
        owned[1]["metadata"]["annotations"]["backstage.io/source-location"],
        "url:https://github.com/acme/legacy-billing"
    );
    let (_, apis) =
        backstage(&app, &ana, "/api/catalog/entities?filter=kind=API&filter=kind=system&fields=kind,metadata.name")
            .await;
    assert_eq!(
        apis,
        json!([
            {"kind": "API", "metadata": {"name": "billing-api"}},
            {"kind": "API", "metadata": {"name": "shop-api"}},
            {"kind": "System", "metadata": {"name": "storefront"}}
        ])
    );
    let (_, page) = backstage(&app, &ana, "/api/catalog/entities?filter=kind=component&limit=2&offset=1").await;
    assert_eq!(names(&page), ["legacy-billing", "shop"]);
    // A deep page is read another way (one ordered union); here, past the end.
    let (status, deep) = backstage(&app, &ana, "/api/catalog/entities?limit=2&offset=2000").await;
    assert_eq!((status, deep), (200, json!([])));
    let (_, all) = backstage(&app, &ana, "/api/catalog/entities?limit=500").await;
    assert!(names(&all).len() >= 6, "{all}");
    let (_, lifecycle) = backstage(&app, &ana, "/api/catalog/entities?filter=spec.lifecycle=DEVELOPMENT").await;
    assert_eq!(names(&lifecycle), ["legacy-billing"]);
    let (status, api) = backstage(&app, &ana, "/api/catalog/entities/by-name/api/default/shop-api").await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(
        (api["spec"]["definition"].as_str(), api["relations"][0]["type"].as_str()),
        (Some("openapi: 3.1.0"), Some("ownedBy"))
    );
    let (status, shop) = backstage(&app, &ana, "/api/catalog/entities/by-name/Component/default/SHOP").await;
    assert_eq!(status, 200, "{shop}");
    assert_eq!(shop["spec"]["dependsOn"], json!(["component:default/billing", "resource:default/shop-db"]));
    let (status, _) = backstage(&app, &ana, "/api/catalog/entities/by-name/api/default/nope").await;
    assert_eq!(status, 404);
    let (status, _) = backstage(&app, &ana, "/api/catalog/entities/by-name/resource/default/search-db").await;
    assert_eq!(status, 404, "another team's resource was not stored from the push");
    let (_, by_user) = backstage(&app, &ana, "/api/catalog/entities?filter=spec.owner=user:payments").await;
    assert_eq!(names(&by_user), Vec::<String>::new(), "an owner's kind counts");
    let (status, problem) = backstage(&app, &ana, "/api/catalog/entities?filter=spec.nope=x").await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("spec.nope"), "{problem}");
    let many = ["kind=api"; 6].join(",");
    let (status, problem) = backstage(&app, &ana, &format!("/api/catalog/entities?filter={many}")).await;
    assert_eq!(status, 400, "each owner term costs a lookup, so terms are bounded: {problem}");
    let (status, _) = backstage(&app, "not-a-token", "/api/catalog/entities").await;
    assert_eq!(status, 401, "authenticated like the rest of the API");

    // The portal's catalog shows catalog-only services, systems and APIs.
    let portal = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    let catalog = portal.get("/catalog").await;
    assert_eq!(catalog.count("tr[data-service=legacy-billing] [data-tag=catalog-only]"), 1, "{}", catalog.html);
    assert_eq!(
        catalog.count("[data-kind=system] tr[data-entity=\"system:default/storefront\"]"),
        1,
        "{}",
        catalog.html
    );
    assert_eq!(catalog.count("[data-kind=api] tbody tr[data-entity]"), 2, "{}", catalog.html);
    let page = portal.get("/services/legacy-billing").await;
    assert!(page.html.contains("https://github.com/acme/legacy-billing"), "{}", page.html);
}
