//! The real `slipway` binary against a real `slipwayd`: the "done when" walk-through of
//! the foundation issue, output formats, config file permissions and errors.

use crate::both_databases;
use serde_json::Value;
use slipway_e2e::{ADMIN_PASSWORD, TestApp, run_cli};

both_databases!(admin_sets_up_a_team_and_a_developer_creates_a_service);
async fn admin_sets_up_a_team_and_a_developer_creates_a_service(app: TestApp) {
    let home = tempfile::tempdir().expect("tempdir");
    let admin_cfg = home.path().join("admin/config.toml");
    let ana_cfg = home.path().join("ana/config.toml");
    let admin = |args: &'static [&'static str], stdin: &'static str| run_cli(app.cli(&admin_cfg), args, stdin);

    let login = run_cli(
        app.cli(&admin_cfg),
        &["login", "--server", &app.url, "--username", "admin", "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    assert_eq!(login.code, 0, "{login:?}");
    assert_eq!(login.stdout.trim(), format!("Logged in to {} as admin", app.url));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&admin_cfg).expect("config written").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "config file mode");
    }

    let out = admin(&["teams", "create", "payments"], "").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "Created team payments"), "{out:?}");
    let out = admin(&["users", "create", "ana", "--password-stdin"], "ana-password-1\n").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "Created user ana (developer)"), "{out:?}");
    let out = admin(&["teams", "add", "payments", "ana", "--role", "maintainer"], "").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "Added ana to team payments as maintainer"), "{out:?}");

    let login = run_cli(
        app.cli(&ana_cfg),
        &["login", "--server", &app.url, "--username", "ana", "--password-stdin"],
        "ana-password-1\n",
    )
    .await;
    assert_eq!(login.code, 0, "{login:?}");
    let out = run_cli(app.cli(&ana_cfg), &["services", "create", "shop", "--team", "payments"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, format!("Created service shop (owner: payments)\nGit remote: {}/git/shop.git\n", app.url));

    let out = run_cli(app.cli(&ana_cfg), &["services", "list", "--json"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON list");
    let shop = list.as_array().expect("array").iter().find(|s| s["name"] == "shop").expect("shop listed");
    assert_eq!(shop["team"], "payments");

    let out = run_cli(app.cli(&ana_cfg), &["services", "list"], "").await;
    let mut lines = out.stdout.lines();
    assert!(lines.next().expect("header").starts_with("NAME"), "{out:?}");
    assert!(lines.next().expect("row").starts_with("shop"), "{out:?}");

    let out = run_cli(app.cli(&ana_cfg), &["whoami", "--json"], "").await;
    let me: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(me["username"], "ana");
    assert_eq!(me["teams"][0]["role"], "maintainer");

    let out = run_cli(
        app.cli(&ana_cfg),
        &["services", "set", "shop", "--tier", "tier-1", "--link", "runbook=https://wiki.example.com/shop"],
        "",
    )
    .await;
    assert_eq!((out.code, out.stdout.trim()), (0, "Updated service shop"), "{out:?}");
    let out = run_cli(app.cli(&ana_cfg), &["services", "show", "shop", "--json"], "").await;
    let shown: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(shown["tier"], "tier-1");
    assert_eq!(shown["links"][0]["name"], "runbook");

    // The admin's audit log saw it all.
    let out = admin(&["audit", "--json"], "").await;
    let entries: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert!(
        entries
            .as_array()
            .expect("array")
            .iter()
            .any(|e| e["actor"] == "ana" && e["action"] == "POST /api/v1/services")
    );
}

both_databases!(tokens_print_once_and_logout_revokes);
async fn tokens_print_once_and_logout_revokes(app: TestApp) {
    let home = tempfile::tempdir().expect("tempdir");
    let cfg = home.path().join("config.toml");
    let login = run_cli(
        app.cli(&cfg),
        &["login", "--server", &app.url, "--username", "admin", "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    assert_eq!(login.code, 0, "{login:?}");

    let out = run_cli(app.cli(&cfg), &["tokens", "create", "ci"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    let token = out.stdout.trim_end().to_owned();
    assert!(token.starts_with("slp_") && !token.contains('\n'), "stdout must be the token alone: {:?}", out.stdout);

    // The token works on its own, through the environment.
    let mut cmd = app.cli(&home.path().join("none.toml"));
    cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
    let out = run_cli(cmd, &["whoami"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("admin (admin)"), "{out:?}");

    let out = run_cli(app.cli(&cfg), &["tokens", "create", "deploy", "--json"], "").await;
    let created: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(created["name"], "deploy");
    assert!(created["token"].as_str().unwrap_or_default().starts_with("slp_"));

    let out = run_cli(app.cli(&cfg), &["tokens", "list", "--json"], "").await;
    let list: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let names: Vec<&str> = list.as_array().expect("array").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"ci") && names.contains(&"deploy"), "{names:?}");
    assert!(!out.stdout.contains("slp_"), "list must not show secrets");

    let out = run_cli(app.cli(&cfg), &["tokens", "revoke", "ci"], "").await;
    assert_eq!((out.code, out.stdout.trim()), (0, "Revoked token ci"));
    let mut cmd = app.cli(&home.path().join("none.toml"));
    cmd.env("SLIPWAY_SERVER", &app.url).env("SLIPWAY_TOKEN", &token);
    let out = run_cli(cmd, &["whoami"], "").await;
    assert_ne!(out.code, 0);

    // logout revokes the machine's token and forgets it.
    let stored = std::fs::read_to_string(&cfg).expect("config");
    let machine_token =
        stored.lines().find_map(|l| l.strip_prefix("token = \"")).expect("token line").trim_end_matches('"').to_owned();
    let out = run_cli(app.cli(&cfg), &["logout"], "").await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!cfg.exists());
    let (status, _) = app.call("GET", "/user", Some(&machine_token), None).await;
    assert_eq!(status, 401, "logout must revoke the stored token");
    let out = run_cli(app.cli(&cfg), &["whoami"], "").await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("not logged in"), "{out:?}");
}

both_databases!(errors_are_one_line_with_a_non_zero_exit);
async fn errors_are_one_line_with_a_non_zero_exit(app: TestApp) {
    let home = tempfile::tempdir().expect("tempdir");
    let cfg = home.path().join("config.toml");
    let wrong = run_cli(
        app.cli(&cfg),
        &["login", "--server", &app.url, "--username", "admin", "--password-stdin"],
        "wrong-password\n",
    )
    .await;
    assert_eq!(wrong.code, 4, "{wrong:?}");
    assert_eq!(wrong.stderr.lines().count(), 1, "{wrong:?}");
    assert!(!cfg.exists());

    run_cli(
        app.cli(&cfg),
        &["login", "--server", &app.url, "--username", "admin", "--password-stdin"],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .await;
    for (args, expect) in [
        (&["services", "create", "Bad", "--team", "x"][..], "must start with a lower-case letter"),
        (&["teams", "show", "nope"][..], "team \"nope\" does not exist"),
        (&["services", "set", "nope"][..], "nothing to change"),
        (&["services", "set", "x", "--link", "broken"][..], "NAME=URL"),
    ] {
        let out = run_cli(app.cli(&cfg), args, "").await;
        assert_ne!(out.code, 0, "{args:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: ") && out.stderr.contains(expect), "{args:?}: {out:?}");
    }

    let mut cmd = app.cli(&cfg);
    cmd.env("SLIPWAY_SERVER", "http://127.0.0.1:1");
    let out = run_cli(cmd, &["whoami"], "").await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot reach the Slipway server at http://127.0.0.1:1"), "{out:?}");

    let out =
        run_cli(app.cli(&cfg), &["login", "--server", "ftp://x", "--username", "a", "--password-stdin"], "x\n").await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("http:// or https://"), "{out:?}");

    let out = run_cli(app.cli(&cfg), &["completions", "bash"], "").await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("_slipway()") && out.stdout.contains("services"), "bash completion script");
}
