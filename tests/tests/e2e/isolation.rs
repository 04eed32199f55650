//! Pushed code never runs as host root: builds and replicas run on the rootless engine
//! (uid 0 inside is an unprivileged host user), with no way to gain privileges and a
//! bound on processes; slipwayd refuses an engine that runs containers as root unless
//! told to accept the risk, and keeps its data dir private.
//!
//! SQLite only: these are properties of the container engine and the data dir; the
//! SQLite file's own mode is one of them.

use std::os::unix::fs::PermissionsExt;

use slipway_e2e::{Db, TestApp, engine, git, local_repo, start_process};

/// The first line of a `/proc/self/uid_map`: whom uid 0 inside is on the host.
fn host_uid_of_root(uid_map: &str) -> u64 {
    let line = uid_map.lines().next().unwrap_or_default();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"0"), "uid_map starts with uid 0: {uid_map:?}");
    fields.get(1).and_then(|f| f.parse().ok()).expect("a host uid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_code_runs_as_an_unprivileged_host_user() {
    let app = TestApp::start(Db::Sqlite).await;
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("git").await;
    // The build records who its RUN step is on the host; the replica records who it is,
    // whether it may gain privileges, and how many processes it may have.
    let containerfile = "FROM localhost/slipway/busybox\nRUN mkdir -p /www && cat /proc/self/uid_map > /www/build.txt\n\
        COPY start.sh /start.sh\nCMD [\"sh\", \"/start.sh\"]\n";
    let start = "echo ok > /www/index.html\ncat /proc/self/uid_map > /www/run.txt\ngrep NoNewPrivs /proc/self/status > /www/nnp.txt\n\
        ulimit -u > /www/nproc.txt\nexec httpd -f -p 8080 -h /www\n";
    let files = [("Containerfile", containerfile.as_bytes()), ("start.sh", start.as_bytes())];
    let work = local_repo(&files).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let (status, build) = app.get_app("shop", "production", "/build.txt").await;
    assert_eq!(status, 200, "{build}");
    assert_ne!(host_uid_of_root(&build), 0, "a build's RUN step is not host root: {build}");
    let (_, run) = app.get_app("shop", "production", "/run.txt").await;
    assert_ne!(host_uid_of_root(&run), 0, "a replica is not host root: {run}");
    let (_, nnp) = app.get_app("shop", "production", "/nnp.txt").await;
    assert_eq!(nnp.split_whitespace().last(), Some("1"), "no-new-privileges: {nnp}");
    let (_, nproc) = app.get_app("shop", "production", "/nproc.txt").await;
    // A fork bomb stops at the engine's bound (the container's own, where the engine
    // applies it), far below the host's.
    let nproc: i64 = nproc.trim().parse().unwrap_or(i64::MAX);
    assert!(nproc <= slipway_engine::isolation::ENGINE_NPROC_LIMIT, "the process limit is {nproc}");

    // What the engine was asked for: no host paths, not privileged, limits.
    let ids = app.replicas_of("shop", "production").await;
    assert!(!ids.is_empty());
    for id in ids {
        let info = engine::inspect(&id).await;
        let host = &info["HostConfig"];
        assert_eq!(host["Privileged"], false, "{host}");
        assert!(host["Binds"].as_array().is_none_or(Vec::is_empty), "no host mounts: {host}");
        assert!(info["Mounts"].as_array().is_none_or(Vec::is_empty), "no mounts at all: {}", info["Mounts"]);
        assert!(host["SecurityOpt"].to_string().contains("no-new-privileges"), "{host}");
    }
    let (status, _) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(status, 200, "the server keeps serving");
}

/// A rootful Podman service of its own on storage in `dir`, as `scripts/podman rootful`
/// starts it for benchmarks (the kind `scripts/podman start` no longer starts); stopped
/// when dropped.
struct RootfulEngine {
    dir: std::path::PathBuf,
}

impl RootfulEngine {
    fn start(dir: &std::path::Path) -> (RootfulEngine, String) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/podman");
        let out = std::process::Command::new(&script).arg("rootful").arg(dir).output().expect("scripts/podman");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (RootfulEngine { dir: dir.to_owned() }, url)
    }
}

impl Drop for RootfulEngine {
    fn drop(&mut self) {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/podman");
        let _ = std::process::Command::new(&script).arg("stop").arg(&self.dir).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rootful_engine_is_refused_unless_allowed_and_the_data_dir_is_private() {
    let engine_dir = tempfile::tempdir().expect("tempdir");
    let (_engine, url) = RootfulEngine::start(engine_dir.path());
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_str().expect("utf-8").to_owned();
    let args = ["--listen", "127.0.0.1:0", "--apps-listen", "127.0.0.1:0", "--data-dir", &data_dir, "--engine", &url];

    // scripts/podman returns once the service answers.
    let output = tokio::process::Command::new(slipway_e2e::slipwayd_bin())
        .args(args)
        .env_remove("SLIPWAY_ADMIN_PASSWORD")
        .output()
        .await
        .expect("slipwayd");
    let (code, stderr) = (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("runs containers as host root"), "{stderr}");
    assert!(stderr.contains("--allow-rootful-engine"), "the message says how to accept the risk: {stderr}");
    for chore in ["initial-admin-password", "secret.key", "node-id"] {
        assert!(!data.path().join(chore).exists(), "a refused start does no first-start chore ({chore})");
    }

    // Accepted when asked for, with a warning; a data dir others could read is made private.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut allowed = args.to_vec();
    allowed.push("--allow-rootful-engine");
    let mut started = start_process(&allowed, &[]).await;
    let health = slipway_e2e::http_client().get(format!("{}/healthz", started.url)).send().await.expect("health");
    assert_eq!(health.status(), 200);
    let mode = std::fs::metadata(data.path()).expect("data dir").permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the data dir is private: {mode:o}");
    let _ = started.child.start_kill();
    let _ = started.child.wait().await;
    let _ = started.stderr_done.await;
    let printed = started.stderr.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
    assert!(printed.contains("runs containers as host root (--allow-rootful-engine)"), "{printed}");

    // And a push goes live on it (the confinement every container gets is one a rootful
    // engine can start: a per-container ulimit once made runc fail there).
    let podman = |host: &str, args: &[&str]| {
        std::process::Command::new("podman").args(args).env("CONTAINER_HOST", host).output().expect("podman")
    };
    let app = TestApp::start_with(Db::Sqlite, &["--engine", &url, "--allow-rootful-engine"]).await;
    app.team("payments").await;
    app.service("shop", "payments").await;
    let token = app.admin_api_token("git").await;
    let work = local_repo(&slipway_e2e::borrowed(&slipway_e2e::fixture_app("on a rootful engine\n"))).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    let live = app.get_app("shop", "production", "/").await;
    assert!(podman(&url, &["rm", "--all", "--force", "--time", "0"]).status.success());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(live, (200, "on a rootful engine\n".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_engine_is_rootless() {
    // Everything else in this suite runs on what `scripts/podman start` started: it must
    // be the rootless engine the README promises.
    let (status, info) = engine::call_async("GET", "/v4.0.0/libpod/info", &[], None).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["host"]["security"]["rootless"], true, "{}", info["host"]["security"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rootless_engine_running_as_the_data_dirs_owner_is_refused() {
    use std::os::unix::fs::MetadataExt;
    // The engine's user (uid 0 in its containers) owns this data dir: an escape would
    // read the keys. (slipwayd itself runs as root here, so only the owner matters.)
    let (_, info) = engine::call_async("GET", "/v4.0.0/libpod/info", &[], None).await;
    let engine_uid = info["host"]["idMappings"]["uidmap"][0]["host_id"].as_u64().expect("engine uid") as u32;
    let data = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(data.path(), Some(engine_uid), None).expect("chown");
    assert_eq!(std::fs::metadata(data.path()).expect("meta").uid(), engine_uid);
    let dir = data.path().to_str().expect("utf-8");
    let output = tokio::process::Command::new(slipway_e2e::slipwayd_bin())
        .args(["--listen", "127.0.0.1:0", "--apps-listen", "127.0.0.1:0", "--data-dir", dir])
        .env_remove("SLIPWAY_ADMIN_PASSWORD")
        .output()
        .await
        .expect("slipwayd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("runs containers as uid {engine_uid}, the owner of the data directory")),
        "{stderr}"
    );
    assert!(!data.path().join("secret.key").exists(), "a refused start does no first-start chore");
}
