//! Pushed code is hostile: each way a pushed repository once reached the host's files
//! through the build (a JSON list as `[build] dockerfile`, a symlinked Containerfile, a
//! symlink in the context, `RUN --mount` from a stage, `COPY`/`ADD` of absolute paths)
//! is refused or contained, the output holds nothing of the host, and the server keeps
//! serving.
//!
//! SQLite only: what these tests check happens in the build gate and the engine, before
//! and outside the store, which only records the run (as in `pipeline.rs`, on both).

use slipway_e2e::{ADMIN_PASSWORD, Db, TestApp, borrowed, commit, fixture_app, git, local_repo, nonce};

/// A file on the host only the server's user could read, with a unique secret in it.
fn host_secret() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = format!("HOST-SECRET-{}", nonce());
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, &secret).expect("write secret");
    (dir, path, secret)
}

/// Pushes `work` and answers git's output, asserting the push was refused and that
/// nothing secret came back.
async fn push_refused(app: &TestApp, token: &str, work: &std::path::Path, secret: &str) -> String {
    let out = git(work, &[], &["push", &app.git_url("shop", token), "main"]).await;
    assert_ne!(out.code, 0, "the push must be refused: {out:?}");
    assert!(!out.stderr.contains(secret), "the host's file leaked into the push output: {out:?}");
    assert!(!out.stderr.contains(ADMIN_PASSWORD), "the admin password leaked: {out:?}");
    assert!(!out.stderr.contains("root:"), "/etc/shadow or /etc/passwd leaked: {out:?}");
    let (status, _) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(status, 200, "the server keeps serving");
    out.stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_list_as_the_dockerfile_is_refused_before_any_build() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, path, secret) = host_secret();
    let toml = format!(
        "[build]\ndockerfile = '[\"Containerfile\",\"{}\",\"{}\"]'\n",
        path.display(),
        app.data_dir.path().join("secret.key").display()
    );
    let mut files = fixture_app("hi\n");
    files.retain(|(name, _)| *name != "slipway.toml");
    files.push(("slipway.toml", toml.into_bytes()));
    let work = local_repo(&borrowed(&files)).await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(stderr.contains("slipway.toml: build.dockerfile = "), "{stderr}");
    assert!(stderr.contains("must be a plain relative path inside the repository"), "{stderr}");
    assert!(!stderr.contains("STEP 1/"), "nothing was built: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_containerfile_is_refused() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, path, secret) = host_secret();
    let work = local_repo(&[("index.html", b"hi\n")]).await;
    std::os::unix::fs::symlink(&path, work.path().join("Containerfile")).expect("symlink");
    commit(work.path(), &[], "a Containerfile that is a link to a host file").await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(
        stderr.contains("Containerfile is a symbolic link (mode 120000); the Containerfile must be a regular file"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_link_outside_the_context_is_refused_and_one_inside_builds() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, _path, secret) = host_secret();
    let containerfile =
        "FROM localhost/slipway/busybox\nCOPY . /www/\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    let body = format!("inside {}\n", nonce());
    let work = local_repo(&[("Containerfile", containerfile.as_bytes()), ("page.html", body.as_bytes())]).await;
    std::os::unix::fs::symlink("/", work.path().join("host")).expect("symlink");
    commit(work.path(), &[], "a link to the host's root").await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(stderr.contains("host is a symbolic link to \"/\", outside the build context"), "{stderr}");

    // A link that stays inside the context is fine.
    std::fs::remove_file(work.path().join("host")).expect("rm");
    std::os::unix::fs::symlink("page.html", work.path().join("index.html")).expect("symlink");
    commit(work.path(), &[], "a link inside").await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(app.get_app("shop", "production", "/").await, (200, body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mounts_from_a_stage_are_refused() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, path, secret) = host_secret();
    // CVE-2024-1753 on buildah 1.28: a bind mount whose source is a symlink to / made in
    // an earlier stage mounts the host's root, read-write, as root.
    let containerfile = format!(
        "FROM localhost/slipway/busybox AS links\nRUN ln -s / /rootfs\n\
         FROM localhost/slipway/busybox\n\
         RUN --mount=type=bind,from=links,source=/rootfs,target=/host,rw cat /host{}\n",
        path.display()
    );
    let work = local_repo(&[("Containerfile", containerfile.as_bytes()), ("index.html", b"hi\n")]).await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(stderr.contains("Containerfile line 4: RUN --mount (and the escape directive) is refused"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_and_add_of_absolute_paths_read_the_context_not_the_host() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, path, secret) = host_secret();
    for instruction in ["COPY", "ADD"] {
        let containerfile =
            format!("FROM localhost/slipway/busybox\n{instruction} {} /leak\nRUN cat /leak\n", path.display());
        let work = local_repo(&[("Containerfile", containerfile.as_bytes()), ("index.html", b"hi\n")]).await;
        let stderr = push_refused(&app, &token, work.path(), &secret).await;
        assert!(stderr.contains("build failed"), "{instruction}: the host path is not in the context: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_links_that_climbs_out_is_refused() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, _path, secret) = host_secret();
    let work = local_repo(&borrowed(&fixture_app("hi\n"))).await;
    // Each link's text stays inside, but `s` is the context itself, so on disk
    // s/s/s/s/../../../.. climbs four levels above it.
    std::os::unix::fs::symlink(".", work.path().join("s")).expect("symlink");
    std::os::unix::fs::symlink("s/s/s/s/../../../..", work.path().join("host")).expect("symlink");
    commit(work.path(), &[], "links").await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(
        stderr.contains("host is a symbolic link to \"s/s/s/s/../../../..\", outside the build context"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_the_files_the_gate_read_whatever_gitattributes_say() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let marker = nonce();
    // export-subst would put the commit message (a RUN line) into the Containerfile.
    let containerfile = "FROM localhost/slipway/busybox\nCOPY index.html /www/index.html\n$Format:%b$\n\
                         CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";
    let work = local_repo(&[
        ("Containerfile", containerfile.as_bytes()),
        (".gitattributes", b"Containerfile export-subst\n"),
        ("index.html", b"hi\n"),
    ])
    .await;
    let body = format!("RUN echo subst-$((40+2))-{marker}");
    let out = git(work.path(), &[], &["commit", "--quiet", "--allow-empty", "-m", "subject", "-m", &body]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert!(!out.stderr.contains(&format!("subst-42-{marker}")), "the commit message ran as a build step: {out:?}");
    assert_ne!(out.code, 0, "the literal $Format line is no instruction: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_of_a_url_is_refused_and_nothing_on_the_host_is_fetched() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let (_dir, _path, secret) = host_secret();
    // A service on the host's loopback (as slipwayd, a registry or a cloud's metadata
    // address would be): the engine would fetch an ADD URL from the host's network.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/latest/meta-data/", listener.local_addr().expect("addr"));
    let containerfile = format!("FROM localhost/slipway/busybox\nARG U={url}\nADD ${{U}} /m\n");
    let work = local_repo(&[("Containerfile", containerfile.as_bytes())]).await;
    let stderr = push_refused(&app, &token, work.path(), &secret).await;
    assert!(stderr.contains("Containerfile line 3: ADD of a URL (or of a variable) is refused"), "{stderr}");
    assert!(!stderr.contains("STEP 1/"), "nothing was built: {stderr}");
    let fetched = tokio::time::timeout(std::time::Duration::from_millis(500), listener.accept()).await;
    assert!(fetched.is_err(), "the host's loopback service was reached");
}
