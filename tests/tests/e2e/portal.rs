//! The portal over HTTP, as a browser without JavaScript uses it: every page's status,
//! title, key elements and accessibility basics; sign-in and the session cookie; CSRF
//! and ownership on every form; catalog-info.yaml and DORA metrics on the pages.

use crate::both_databases;
use serde_json::json;
use slipway_e2e::portal::Portal;
use slipway_e2e::{ADMIN_PASSWORD, TestApp, USER_PASSWORD, borrowed, commit, fixture_app, git, local_repo, nonce};

crate::both_databases!(pages_render_for_signed_in_users, forms_refuse_other_teams_and_missing_csrf);

/// A run of `service` without a build: a push to a branch no environment tracks.
async fn skipped_run(app: &TestApp, service: &str) -> i64 {
    let work = local_repo(&borrowed(&fixture_app("scratch\n"))).await;
    let url = app.git_url(service, &app.admin_api_token(&format!("git-{service}")).await);
    let out = git(work.path(), &[], &["push", &url, "main:scratch"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let (_, runs) = app.admin("GET", &format!("/services/{service}/runs"), None).await;
    runs["items"][0]["id"].as_i64().expect("a run")
}

async fn pages_render_for_signed_in_users(app: TestApp) {
    app.team("alpha").await;
    app.user("ana").await;
    app.member("alpha", "ana", "maintainer").await;
    app.service("shop", "alpha").await;
    let run = skipped_run(&app, "shop").await;
    let (status, _) = app
        .admin(
            "PATCH",
            "/services/shop/environments/production/config",
            Some(json!({"set": {"API_KEY": "s3cr3t-v4lue"}, "secret": true})),
        )
        .await;
    assert_eq!(status, 200);
    let ana = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;

    let pages: &[(&str, &str, &str)] = &[
        ("/", "Dashboard", "article.card h3 a[href='/services/shop']"),
        ("/catalog", "Catalog", "tr[data-service=shop]"),
        ("/catalog?q=SHO&lifecycle=experimental", "Catalog", "tr[data-service=shop]"),
        ("/teams/alpha", "Team alpha", "#members-h"),
        ("/services/shop", "shop", "#env-production"),
        ("/services/shop/envs/production", "shop/production", "form[action$='/scale']"),
        ("/services/shop/new-environment", "New environment", "input[name='param.replicas']"),
        ("/services/shop/new-environment?template=web-postgres", "New environment", "fieldset"),
        (&format!("/runs/{run}") as &str, "Run #", "#stages li[data-stage=build]"),
        ("/templates", "Templates", "tr[id^=web-]"),
    ];
    for (path, title, element) in pages {
        let page = ana.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.html);
        assert!(page.title().contains(title), "{path}: title {:?}", page.title());
        assert!(page.count(element) > 0, "{path}: no {element}");
        page.assert_accessible(path);
    }
    // Pages follow each other: the next link keeps the filters and ends.
    app.service("shop-b", "alpha").await;
    app.service("shop-c", "alpha").await;
    let first = ana.get("/catalog?q=shop&limit=2").await;
    assert_eq!(first.texts("tr[data-service] td:first-child"), vec!["shop", "shop-b"]);
    let next = first
        .doc()
        .select(&scraper::Selector::parse("a[rel=next]").expect("css"))
        .next()
        .map(|a| a.value().attr("href").unwrap_or_default().to_owned());
    let next = next.expect("a next page link");
    assert!(next.contains("q=shop"), "{next}");
    let second = ana.get(&format!("{next}&limit=2")).await;
    assert_eq!(second.texts("tr[data-service] td:first-child"), vec!["shop-c"]);
    assert_eq!(second.count("a[rel=next]"), 0, "the last page has no next link");
    // The templates page narrows to one template's versions.
    let web = ana.get("/templates?name=web").await;
    assert!(web.count("tr[id^=web-]") >= 1 && web.count("tr[id^=worker-]") == 0, "{}", web.html);
    let all = ana.get("/templates").await;
    assert!(all.count("tr[id^=worker-]") >= 1 && all.count("a[rel=next]") == 0, "few templates fit one page");
    // The search filters: a text that matches nothing lists nothing.
    assert_eq!(ana.get("/catalog?q=nothing-like-it").await.count("tr[data-service]"), 0);
    assert_eq!(ana.get("/catalog?q=%25").await.count("tr[data-service]"), 0, "% is literal, not a wildcard");
    // The owning team sees config with secrets masked; the value is never on a page.
    let service_page = ana.get("/services/shop").await;
    assert!(service_page.html.contains("API_KEY") && service_page.html.contains("••••••••"));
    assert!(!service_page.html.contains("s3cr3t-v4lue"), "a secret's value reached a page");
    let run_page = ana.get(&format!("/runs/{run}")).await;
    assert_eq!(run_page.texts("#run-status"), vec!["skipped"]);

    // A team's quota is shown to its members, and the page still opens for everyone else.
    assert_eq!(ana.get("/teams/alpha").await.count("#quota-h + dl.facts"), 1);
    app.user("outsider").await;
    let outsider = Portal::sign_in(&app.url, "outsider", USER_PASSWORD).await;
    let page = outsider.get("/teams/alpha").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.count("#quota-h + dl.facts"), 0, "another team's quota is not shown");

    // Admins have the admin page; developers get a friendly 403.
    let admin = Portal::sign_in(&app.url, "admin", ADMIN_PASSWORD).await;
    let page = admin.get("/admin").await;
    assert_eq!(page.status, 200);
    page.assert_accessible("/admin");
    assert!(page.count("#audit ~ table.audit tr, table.audit tbody tr") > 0, "the audit log lists entries");
    let filtered = admin.get("/admin?outcome=denied&actor=nobody").await;
    assert!(filtered.html.contains("No entries."), "filters narrow the audit log");
    let page = ana.get("/admin").await;
    assert_eq!(page.status, 403);
    assert!(page.title().contains("Not allowed") && page.html.contains("only platform admins"), "{}", page.html);

    // 404s are pages too, and bad input is a 400 page naming it.
    for path in ["/services/nope", "/runs/999999", "/runs/not-a-number", "/teams/nope", "/no/such/page"] {
        let page = ana.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.title().starts_with("Not found"), "{path}: {}", page.title());
    }
    let page = ana.get("/catalog?flagged=maybe").await;
    assert_eq!(page.status, 400, "a query that does not parse is a 400 page");
    assert!(page.title().contains("That did not work"), "{}", page.title());
    // Lifecycle is free text (as in Backstage), but printable.
    let page = ana.get("/catalog?lifecycle=prod").await;
    assert_eq!(page.status, 200, "no service is in lifecycle prod, which is not an error");
    let page = ana.get("/catalog?lifecycle=a%07b").await;
    assert_eq!(page.status, 400);
    let detail = page.texts(".error-detail").join("");
    assert!(detail.contains("lifecycle contains a control character"), "{detail}");

    // Without a session, pages send the browser to sign in and come back.
    let anonymous = Portal::anonymous(&app.url);
    let page = anonymous.get("/services/shop?days=7").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/login?next=%2Fservices%2Fshop%3Fdays%3D7"));
    let page = anonymous.post_raw("/services/shop/envs/production/scale", &[("replicas", "5")]).await;
    assert_eq!(page.status, 303, "a form without a session is not acted on");
    let mut forged = Portal::anonymous(&app.url);
    forged.cookie = "slipway_session=not-a-token".to_owned();
    let page = forged.get("/").await;
    assert_eq!(page.location.as_deref(), Some("/login?next=%2F&expired=1"));

    // Signing in: the form's CSRF token, wrong passwords, the cookie's attributes.
    let form = anonymous.get("/login").await;
    form.assert_accessible("/login");
    let page = anonymous.post_raw("/login", &[("username", "ana"), ("password", USER_PASSWORD)]).await;
    assert_eq!(page.status, 403, "a sign-in without the form's CSRF token is refused");
    let mut fresh = Portal::anonymous(&app.url);
    let form = fresh.get("/login").await;
    let nonce = form.set_cookies.iter().find(|c| c.starts_with("slipway_login=")).expect("nonce cookie").clone();
    fresh.cookie = nonce.split(';').next().expect("pair").to_owned();
    let csrf = form.csrf().expect("csrf");
    let page =
        fresh.post_raw("/login", &[("csrf_token", &csrf), ("username", "ana"), ("password", "wrong-password")]).await;
    assert_eq!(page.status, 401);
    assert!(page.html.contains("wrong username or password"), "{}", page.html);
    assert!(page.set_cookies.iter().all(|c| !c.starts_with("slipway_session=")), "no session on a failure");
    let page = fresh
        .post_raw(
            "/login",
            &[("csrf_token", &csrf), ("username", "ana"), ("password", USER_PASSWORD), ("next", "//evil.example")],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/"), "only local paths are returned to");
    let session = page.set_cookies.iter().find(|c| c.starts_with("slipway_session=")).expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(session.contains(attribute), "{session} lacks {attribute}");
    }
    assert!(!session.contains("Secure"), "no Secure flag over plain HTTP");
    // Behind a proxy that terminates TLS, cookies are Secure.
    let behind_tls = reqwest::Client::new()
        .get(format!("{}/login", app.url))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("GET /login");
    let nonce = behind_tls.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(nonce.starts_with("slipway_login=") && nonce.contains("Secure"), "{nonce}");

    // The cookie signs in API reads (the run page's event stream), never API changes.
    let cookie_client = reqwest::Client::new();
    let read = cookie_client.get(app.api("/user")).header("cookie", &ana.cookie).send().await.expect("GET");
    assert_eq!(read.status().as_u16(), 200);
    let write = cookie_client
        .post(app.api("/teams"))
        .header("cookie", &ana.cookie)
        .json(&json!({"name": "via-cookie"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(write.status().as_u16(), 401, "a cookie alone must not change anything through the API");

    // Signing out clears the cookie.
    let page = ana.post("/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location.as_deref(), Some("/login"));
    assert!(page.set_cookies.iter().any(|c| c.starts_with("slipway_session=;") && c.contains("Max-Age=0")));
}

/// A form as routed, the path this test posts it to, and the fields it sends.
type Form = (&'static str, String, Vec<(&'static str, &'static str)>);

/// Every portal form: what another team's maintainer must be refused. The table must
/// name every form the portal routes (`slipway_web::form_paths`), but for the two below.
fn forms(run: i64) -> Vec<Form> {
    let env = "/services/beta-svc/envs/production";
    let at = |path: &str| path.to_owned();
    vec![
        ("/services/{service}/envs/{env}/rollback", format!("{env}/rollback"), vec![("to", "1")]),
        ("/services/{service}/envs/{env}/scale", format!("{env}/scale"), vec![("replicas", "3")]),
        ("/services/{service}/envs/{env}/promote", format!("{env}/promote"), vec![("to", "production")]),
        ("/services/{service}/envs/{env}/deploy", format!("{env}/deploy"), vec![("git_ref", "main")]),
        ("/services/{service}/envs/{env}/destroy", format!("{env}/destroy"), vec![("confirm", "production")]),
        (
            "/services/{service}/new-environment",
            at("/services/beta-svc/new-environment"),
            vec![("name", "evil"), ("template", "web"), ("action", "create")],
        ),
        ("/runs/{id}/cancel", format!("/runs/{run}/cancel"), vec![]),
        ("/services", at("/services"), vec![("name", "sneaky"), ("team", "beta")]),
        ("/teams/{team}/members", at("/teams/beta/members"), vec![("username", "mallory"), ("role", "maintainer")]),
        ("/teams/{team}/members/{user}/remove", at("/teams/beta/members/bob/remove"), vec![]),
        ("/teams/{team}/quota", at("/teams/beta/quota"), vec![("max_environments", "100")]),
        ("/templates", at("/templates"), vec![("source", "apiVersion: slipway.dev/v1")]),
        ("/templates/{name}/{version}/deprecate", at("/templates/web/1.0.0/deprecate"), vec![]),
        ("/admin/users", at("/admin/users"), vec![("username", "newbie"), ("password", "long-enough-pw")]),
        ("/admin/teams", at("/admin/teams"), vec![("name", "newteam")]),
        ("/admin/clusters", at("/admin/clusters"), vec![("name", "evil"), ("kubeconfig", "apiVersion: v1")]),
        ("/admin/clusters/{name}/remove", at("/admin/clusters/evil/remove"), vec![]),
    ]
}

/// Forms outside the table, and why that is safe.
const NOT_IN_TABLE: &[(&str, &str)] = &[
    ("/login", "signing in is how a session starts; its CSRF token is bound to a login-nonce cookie (hardening.rs)"),
    ("/logout", "ends only the caller's own session (tested below)"),
];

#[test]
fn the_table_names_every_form_the_portal_routes() {
    let routed: std::collections::BTreeSet<&str> = slipway_web::form_paths().into_iter().collect();
    let mut named: std::collections::BTreeSet<&str> = forms(1).iter().map(|(template, _, _)| *template).collect();
    named.extend(NOT_IN_TABLE.iter().map(|(path, _)| *path));
    assert_eq!(routed, named, "a form the table does not name (or a name no form has): add it to forms()");
}

async fn forms_refuse_other_teams_and_missing_csrf(app: TestApp) {
    app.team("alpha").await;
    app.team("beta").await;
    app.service("beta-svc", "beta").await;
    app.user("mallory").await;
    app.user("bob").await;
    app.member("alpha", "mallory", "maintainer").await;
    app.member("beta", "bob", "maintainer").await;
    let run = skipped_run(&app, "beta-svc").await;
    let mallory = Portal::sign_in(&app.url, "mallory", USER_PASSWORD).await;
    let bob = Portal::sign_in(&app.url, "bob", USER_PASSWORD).await;
    let admin = Portal::sign_in(&app.url, "admin", ADMIN_PASSWORD).await;
    let before = app.snapshot().await;

    for (_, path, fields) in forms(run) {
        let page = mallory.post(&path, &fields).await;
        assert_eq!(page.status, 403, "{path} as another team's maintainer: {}", page.html);
        assert!(page.title().contains("Not allowed"), "{path}: {}", page.title());
        // The owner (and an admin) without the form's token, or with another session's.
        for who in [&bob, &admin] {
            let page = who.post_raw(&path, &fields).await;
            assert_eq!(page.status, 403, "{path} without a CSRF token");
            assert!(page.html.contains("cannot be accepted"), "{path}: {}", page.html);
        }
        let mut stolen = vec![("csrf_token", mallory.csrf().await)];
        stolen.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let stolen: Vec<(&str, &str)> = stolen.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(bob.post_raw(&path, &stolen).await.status, 403, "{path} with another session's token");
    }
    assert_eq!(mallory.get("/services/beta-svc/new-environment").await.status, 403, "another team's form");
    assert_eq!(app.snapshot().await, before, "a refused form changed the database");

    // The creation form: the server's message beside the field, nothing created.
    let bad = [("name", "bad"), ("template", "web"), ("param.replicas", "50"), ("action", "create")];
    let page = bob.post("/services/beta-svc/new-environment", &bad).await;
    assert_eq!(page.status, 422, "{}", page.html);
    let error = page.texts(".field.invalid .field-error").join(" ");
    assert!(error.contains("replicas") && error.contains("50"), "the message names the parameter and value: {error}");
    assert_eq!(page.count("input[name='param.replicas'][aria-invalid=true]"), 1);
    assert_eq!(page.count("input[name='param.replicas'][max='10']"), 1, "the browser checks the bound too");
    let page = bob.post("/services/beta-svc/new-environment", &[("name", "Bad Name"), ("template", "web")]).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert_eq!(app.snapshot().await, before, "a refused creation left something behind");
    // A dry run shows the plan and creates nothing.
    let preview = [("name", "staging"), ("template", "web"), ("param.replicas", "1"), ("action", "preview")];
    let page = bob.post("/services/beta-svc/new-environment", &preview).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.texts("#plan").join("").contains("\"replicas\": 1"), "{}", page.html);
    assert_eq!(app.snapshot().await, before, "a dry run created something");

    // The owners are allowed, so the refusals above were the policy and CSRF speaking.
    let create = [("name", "staging"), ("template", "web"), ("param.replicas", "1"), ("action", "create")];
    let page = bob.post("/services/beta-svc/new-environment", &create).await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert_eq!(page.location.as_deref(), Some("/services/beta-svc/envs/staging"));
    assert_eq!(bob.post("/services/beta-svc/envs/staging/scale", &[("replicas", "2")]).await.status, 303);
    let (_, env) = app.admin("GET", "/services/beta-svc/environments/staging", None).await;
    assert_eq!(env["replicas"], 2);
    let page = bob.post("/services/beta-svc/envs/staging/scale", &[("replicas", "many")]).await;
    assert_eq!(page.status, 400);
    assert!(page.html.contains("is not a whole number"), "{}", page.html);
    let page = admin.post("/admin/teams", &[("name", "gamma")]).await;
    assert_eq!(page.location.as_deref(), Some("/teams/gamma"));
    assert_eq!(admin.post("/teams/gamma/members", &[("username", "bob"), ("role", "member")]).await.status, 303);
    let page =
        bob.post("/services", &[("name", "beta-two"), ("team", "beta"), ("description", "made in the portal")]).await;
    assert_eq!(page.location.as_deref(), Some("/services/beta-two"));
    assert!(bob.get("/services/beta-two").await.html.contains("made in the portal"));

    // Forms leave the same audit trail as the API.
    let (_, audit) = app.admin("GET", "/audit?actor=mallory&outcome=denied", None).await;
    let actions: Vec<&str> =
        audit["items"].as_array().expect("items").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"POST /admin/teams"), "{actions:?}");
    let (_, audit) = app.admin("GET", "/audit?actor=admin&outcome=success", None).await;
    assert!(audit["items"].as_array().expect("items").iter().any(|e| e["target"] == "/admin/teams"), "{audit}");
    let (status, problem) = app.admin("GET", "/audit?outcome=maybe", None).await;
    assert_eq!(status, 400, "{problem}");
}

both_databases!(an_owner_deploys_and_cancels_from_the_portal);
/// The owner deploys a slow commit from the environment page and cancels it from the
/// run page; the cancel button is there only while the run can be cancelled.
async fn an_owner_deploys_and_cancels_from_the_portal(app: TestApp) {
    app.team("alpha").await;
    app.user("ana").await;
    app.member("alpha", "ana", "member").await;
    app.service("shop", "alpha").await;
    let url = app.git_url("shop", &app.admin_api_token("git").await);
    let work = local_repo(&borrowed(&fixture_app("v1\n"))).await;
    let slow = format!(
        "FROM localhost/slipway/busybox\nRUN sleep 30 && echo {}\nCOPY index.html /www/index.html\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
        nonce()
    );
    commit(work.path(), &[("Containerfile", slow.as_bytes())], "slow").await;
    let out = git(work.path(), &[], &["push", &url, "main:slow"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let ana = Portal::sign_in(&app.url, "ana", USER_PASSWORD).await;
    let page = ana.post("/services/shop/envs/production/deploy", &[("git_ref", "nope")]).await;
    assert_eq!(page.status, 400, "an unknown ref is refused on the page: {}", page.html);
    assert!(page.texts(".error-detail").join("").contains("nope"), "{}", page.html);
    let page = ana.post("/services/shop/envs/production/deploy", &[("git_ref", "slow")]).await;
    assert_eq!(page.status, 303, "{}", page.html);
    let run_path = page.location.expect("the run page");
    let id: i64 = run_path.trim_start_matches("/runs/").parse().expect("run id");
    app.wait_for_run(id, 60, |run| run["status"] == "running").await;
    let running = ana.get(&run_path).await;
    assert_eq!(running.count("#cancel-form"), 1, "a running run has a cancel button");
    assert_eq!(running.texts("#run-status"), vec!["running"]);
    assert_eq!(running.count("#log[data-finished=false]"), 1, "the page will follow the log live");

    let page = ana.post(&format!("/runs/{id}/cancel"), &[]).await;
    assert_eq!((page.status, page.location.as_deref()), (303, Some(run_path.as_str())));
    let run = app.wait_for_run(id, 15, |run| run["status"] != "running").await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let ended = ana.get(&run_path).await;
    assert_eq!(ended.count("#cancel-form"), 0, "an ended run has no cancel button");
    assert_eq!(ended.texts("#run-status"), vec!["cancelled"]);
    let page = ana.post(&format!("/runs/{id}/cancel"), &[]).await;
    assert_eq!(page.status, 409, "an ended run cannot be cancelled again");
}
