//! Tests of slipwayd's settings: flags, variables and the file, and their validation.

use super::*;

fn args(list: &[&str]) -> Args {
    let mut all = vec!["slipwayd"];
    all.extend_from_slice(list);
    Args::try_parse_from(all).expect("flags parse")
}

#[test]
fn defaults_follow_the_product_spec() {
    let config = Config::load(args(&["--data-dir", "/tmp/x"])).expect("valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:7700");
    assert_eq!(config.apps_listen.to_string(), "127.0.0.1:7780");
    assert_eq!(config.database_url, "sqlite:///tmp/x/slipway.db");
    assert_eq!(config.runtime, RuntimeKind::Local);
}

#[test]
fn the_file_fills_in_and_flags_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("slipway.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9000\"\napps_listen = \"127.0.0.1:9001\"\ndata_dir = \"/srv/slipway\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8");
    let config = Config::load(args(&["--config", path, "--listen", "127.0.0.1:9100"])).expect("valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(config.apps_listen.to_string(), "127.0.0.1:9001");
    assert_eq!(config.data_dir, PathBuf::from("/srv/slipway"));
    let relative = Config::load(args(&["--data-dir", "data"])).expect("valid");
    assert!(relative.data_dir.is_absolute() && relative.data_dir.ends_with("data"), "{:?}", relative.data_dir);

    std::fs::write(&file, "lisen = \"x\"\n").expect("write");
    let e = Config::load(args(&["--config", path])).expect_err("unknown key");
    assert!(e.to_string().contains("lisen"), "{e}");
}

#[test]
fn bad_settings_say_what_to_fix() {
    let cases: &[(&[&str], &str)] = &[
        (&["--listen", "nowhere"], "--listen"),
        (&["--database-url", "mysql://x"], "sqlite://PATH or postgres://"),
        (&["--engine", "/var/run/docker.sock"], "unix:///"),
        (&["--runtime", "kubernetes"], "--registry"),
        (&["--runtime", "kubernetes", "--registry", "r.example.com"], "--default-cluster"),
        (&["--default-cluster", "prod"], "goes with --runtime kubernetes"),
        (&["--node-id", "Bad Id"], "--node-id"),
        (&["--shared-data-dir"], "--shared-data-dir needs --node-id"),
        (&["--registry", "http://r.example.com"], "HOST[:PORT]"),
        (&["--jwt-secret", "short"], "32 characters"),
        (&["--session-hours", "0"], "--session-hours"),
        (&["--max-push-mb", "0"], "--max-push-mb"),
    ];
    for (flags, want) in cases {
        let mut all = vec!["--data-dir", "/tmp/x"];
        all.extend_from_slice(flags);
        let e = Config::load(args(&all)).expect_err("invalid");
        assert!(e.to_string().contains(want), "{flags:?}: {e}");
    }
}

#[test]
fn a_shared_data_dir_takes_each_replica_its_own_id() {
    let config = Config::load(args(&["--data-dir", "/tmp/x", "--shared-data-dir", "--node-id", "slipwayd-0"]));
    let config = config.expect("valid");
    assert!(config.shared_data_dir);
    assert_eq!(config.node_id.as_deref(), Some("slipwayd-0"));
    assert!(!Config::load(args(&["--data-dir", "/tmp/x"])).expect("valid").shared_data_dir);
}

#[test]
fn debug_masks_secrets() {
    let config = Config::load(args(&[
        "--data-dir",
        "/tmp/x",
        "--database-url",
        "postgres://slipway:hunter2hunter2@db/slipway",
        "--jwt-secret",
        "0123456789abcdef0123456789abcdef-secret",
    ]))
    .expect("valid");
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("abcdef-secret"), "{shown}");
}

#[test]
fn stage_timeouts_have_defaults_bounds_and_an_order() {
    let config = Config::load(args(&["--data-dir", "/tmp/x"])).expect("valid");
    assert_eq!((config.deploy_timeout, config.release_timeout, config.addon_timeout), (300, 600, 90));
    let long = Config::load(args(&["--data-dir", "/tmp/x", "--health-timeout", "600"])).expect("valid");
    assert_eq!(long.deploy_timeout, 1200, "the default stays above a long health timeout");
    let e = Config::load(args(&["--data-dir", "/tmp/x", "--health-timeout", "60", "--deploy-timeout", "60"]))
        .expect_err("not longer");
    assert!(e.to_string().contains("--deploy-timeout (60 s) must be longer than --health-timeout (60 s)"), "{e}");
    let e = Config::load(args(&["--data-dir", "/tmp/x", "--release-timeout", "0"])).expect_err("zero");
    assert_eq!(e.to_string(), "--release-timeout must be between 1 and 7200 seconds, not 0");
    let e = Config::load(args(&["--data-dir", "/tmp/x", "--max-push-mb", "0"])).expect_err("zero");
    assert_eq!(e.to_string(), "--max-push-mb must be between 1 and 1048576 (MiB), not 0");
}
