//! Git hosting with the real git client: push, clone and fetch through slipwayd, the
//! credential helper, access checks and the push size limit.

use crate::both_databases;
use serde_json::json;
use slipway_e2e::{Db, TestApp, borrowed, commit, fixture_app, git, local_repo, slipway_bin};

/// Creates team `payments` with maintainer `ana`, service `shop`, and an API token for
/// ana; answers the token.
async fn setup(app: &TestApp) -> String {
    app.team("payments").await;
    let ana = app.user("ana").await;
    app.member("payments", "ana", "maintainer").await;
    app.service("shop", "payments").await;
    let (status, token) = app.call("POST", "/tokens", Some(&ana), Some(json!({"name": "git"}))).await;
    assert_eq!(status, 201);
    token["token"].as_str().expect("token").to_owned()
}

/// A credential helper command reading the CLI config that holds `token` for `app`
/// (git runs `!…` helpers through the shell).
fn helper(app: &TestApp, token: &str) -> String {
    let config = app.data_dir.path().join("cli-config.toml");
    let text = format!("server = \"{}\"\nusername = \"ana\"\ntoken = \"{token}\"\ntoken_name = \"git\"\n", app.url);
    std::fs::write(&config, text).expect("write CLI config");
    format!("!SLIPWAY_CONFIG={} {} git-credential", config.display(), slipway_bin().display())
}

/// `git ls-remote` as admin: the refs the server holds.
async fn server_refs(app: &TestApp, remote: &str) -> String {
    let (_, created) = app.admin("POST", "/tokens", Some(json!({"name": format!("ls-{}", rand_suffix())}))).await;
    let token = created["token"].as_str().expect("token");
    let authed = remote.replacen("http://", &format!("http://admin:{token}@"), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = git(dir.path(), &[], &["ls-remote", &authed]).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

both_databases!(push_clone_and_fetch_through_slipwayd);
async fn push_clone_and_fetch_through_slipwayd(app: TestApp) {
    let token = setup(&app).await;
    let remote = format!("{}/git/shop.git", app.url);
    // The CLI acts as git's credential helper: no token in any URL.
    let helper = helper(&app, &token);
    let creds = [("credential.helper", helper.as_str())];

    let work = local_repo(&borrowed(&fixture_app("hello v1\n"))).await;
    let out = git(work.path(), &creds, &["push", &remote, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let head = git(work.path(), &[], &["rev-parse", "HEAD"]).await.stdout;
    assert!(server_refs(&app, &remote).await.contains(&format!("{}\trefs/heads/main", head.trim())));

    let other = tempfile::tempdir().expect("tempdir");
    let out = git(other.path(), &creds, &["clone", "--quiet", &remote, "shop"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let clone = other.path().join("shop");
    assert_eq!(std::fs::read_to_string(clone.join("index.html")).expect("cloned file"), "hello v1\n");

    commit(&clone, &[("index.html", b"hello v2\n")], "second").await;
    let out = git(&clone, &creds, &["push", "--quiet", "origin", "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = git(work.path(), &creds, &["fetch", "--quiet", &remote, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let fetched = git(work.path(), &[], &["rev-parse", "FETCH_HEAD"]).await.stdout;
    let pushed = git(&clone, &[], &["rev-parse", "HEAD"]).await.stdout;
    assert_eq!(fetched, pushed);
}

both_databases!(pushes_need_a_valid_token_and_the_owning_team);
async fn pushes_need_a_valid_token_and_the_owning_team(app: TestApp) {
    setup(&app).await;
    let remote = format!("{}/git/shop.git", app.url);
    let with = |token: &str| remote.replacen("http://", &format!("http://someone:{token}@"), 1);
    let work = local_repo(&[("index.html", b"hi\n")]).await;

    let out = git(work.path(), &[], &["push", &remote, "main"]).await;
    assert_ne!(out.code, 0, "anonymous push must fail: {out:?}");
    let out = git(work.path(), &[], &["push", &with("slp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "main"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("401") || out.stderr.contains("Authentication failed"), "{out:?}");
    assert!(!server_refs(&app, &remote).await.contains("refs/heads/main"), "nothing may be stored");

    // bob belongs to another team: he may clone (read) but not push.
    app.team("search").await;
    let bob = app.user("bob").await;
    app.member("search", "bob", "maintainer").await;
    let (_, created) = app.call("POST", "/tokens", Some(&bob), Some(json!({"name": "git"}))).await;
    let bobs = created["token"].as_str().expect("token").to_owned();
    let out = git(work.path(), &[], &["push", &with(&bobs), "main"]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("403"), "{out:?}");
    assert!(out.stderr.contains("push to shop refused"), "the reason reaches the pusher: {out:?}");
    let (_, audit) = app.admin("GET", "/audit", None).await;
    let denied = audit["items"].as_array().expect("items").iter().any(|e| {
        e["actor"] == "bob" && e["action"] == "git push" && e["outcome"] == "denied" && e["target"] == "/git/shop.git"
    });
    assert!(denied, "a refused push is audited: {audit}");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = git(dir.path(), &[], &["clone", "--quiet", &with(&bobs), "copy"]).await;
    assert_eq!(out.code, 0, "reading is open to every signed-in user: {out:?}");

    let missing = format!("{}/git/nope.git", app.url).replacen("http://", &format!("http://x:{bobs}@"), 1);
    let out = git(dir.path(), &[], &["ls-remote", &missing]).await;
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("404") || out.stderr.contains("not found"), "{out:?}");
}

// SQLite only: the size gate refuses the push before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_over_the_size_limit_is_refused_cleanly() {
    let app = TestApp::start_with(Db::Sqlite, &["--max-push-mb", "1"]).await;
    let token = setup(&app).await;
    let remote = format!("{}/git/shop.git", app.url).replacen("http://", &format!("http://ana:{token}@"), 1);
    let work = local_repo(&[("big.bin", &noise(2 * 1024 * 1024))]).await;
    let out = git(work.path(), &[], &["push", &remote, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("413"), "{out:?}");
    assert!(!server_refs(&app, &format!("{}/git/shop.git", app.url)).await.contains("refs/heads/main"));

    // A small push still works afterwards.
    let small = local_repo(&borrowed(&fixture_app("small\n"))).await;
    let out = git(small.path(), &[], &["push", &remote, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
}

/// Incompressible bytes (xorshift), so the pack is as large as the file.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

// SQLite only: the size gate refuses the push before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_would_outgrow_the_repository_limit_is_refused() {
    let app = TestApp::start_with(Db::Sqlite, &["--max-repo-mb", "1", "--max-push-mb", "8"]).await;
    let token = setup(&app).await;
    let remote = format!("{}/git/shop.git", app.url).replacen("http://", &format!("http://ana:{token}@"), 1);
    let mut files = fixture_app("v1\n");
    files.push(("a.bin", noise(600 * 1024)));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &remote, "main"]).await;
    assert_eq!(out.code, 0, "600 KiB fits in 1 MiB: {out:?}");
    let first = server_refs(&app, &format!("{}/git/shop.git", app.url)).await;

    commit(work.path(), &[("b.bin", &noise(700 * 1024)[..])], "more").await;
    // Different bytes than a.bin, so nothing deduplicates.
    std::fs::write(work.path().join("b.bin"), noise(700 * 1024).iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>())
        .expect("write");
    commit(work.path(), &[], "different").await;
    let out = git(work.path(), &[], &["push", &remote, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("413"), "{out:?}");
    assert_eq!(server_refs(&app, &format!("{}/git/shop.git", app.url)).await, first, "nothing moved");
}

/// A gzip body is measured after inflating: 4 MiB of zeros gzip to a few KiB, and must
/// still meet `--max-push-mb 1`. An encoding git never sends is refused unread.
// SQLite only: the size gate refuses the push before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_push_is_measured_inflated() {
    let app = TestApp::start_with(Db::Sqlite, &["--max-push-mb", "1"]).await;
    use std::io::Write;
    let token = setup(&app).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 4 * 1024 * 1024]).expect("gzip");
    let body = gz.finish().expect("gzip");
    assert!(body.len() < 64 * 1024, "{} bytes compressed", body.len());
    let post = |encoding: &'static str, body: Vec<u8>| {
        app.http
            .post(format!("{}/git/shop.git/git-receive-pack", app.url))
            .basic_auth("ana", Some(&token))
            .header("content-type", "application/x-git-receive-pack-request")
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let response = post("gzip", body.clone()).await.expect("send");
    assert_eq!(response.status(), 413);
    let text = response.text().await.expect("text");
    assert!(text.contains("the push would exceed the limit of 1 MiB"), "{text}");

    // A fetch's request is refs, a few MiB at most, whatever the push limit.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 20 * 1024 * 1024]).expect("gzip");
    let fetch_bomb = gz.finish().expect("gzip");
    let response = app
        .http
        .post(format!("{}/git/shop.git/git-upload-pack", app.url))
        .basic_auth("ana", Some(&token))
        .header("content-type", "application/x-git-upload-pack-request")
        .header("content-encoding", "gzip")
        .body(fetch_bomb)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413, "a fetch request is bounded at 16 MiB inflated");

    let response = post("br", body).await.expect("send");
    assert_eq!(response.status(), 415);
    assert!(response.text().await.expect("text").contains("\"br\" is not gzip"));

    // Nothing was kept, and a real push still lands.
    let remote = format!("{}/git/shop.git", app.url).replacen("http://", &format!("http://ana:{token}@"), 1);
    let small = local_repo(&borrowed(&fixture_app("small\n"))).await;
    let out = git(small.path(), &[], &["push", &remote, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
}
