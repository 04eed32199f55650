//! Costs a push can cause are bounded: descriptors are read only up to 1 MiB (decided
//! from the object header, before any of it is read), and a build context over
//! `--max-context-mb` is refused before it is archived.

use slipway_e2e::{Db, TestApp, borrowed, fixture_app, git, local_repo};

/// A few KiB on the wire, megabytes once unpacked.
fn compressible(bytes: usize) -> Vec<u8> {
    b"# padding line that compresses very well\n".iter().copied().cycle().take(bytes).collect()
}

// SQLite only: the build gate refuses the commit before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_descriptors_are_refused_unread() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);

    // A huge catalog-info.yaml: the push goes live, the catalog is left alone.
    let mut files = fixture_app("big catalog\n");
    let mut catalog = b"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: shop\n".to_vec();
    catalog.extend(compressible(3 * 1024 * 1024));
    files.push(("catalog-info.yaml", catalog));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("warning: catalog-info.yaml is") && out.stderr.contains("at most 1024 KiB is read"),
        "{out:?}"
    );

    // A huge slipway.toml rejects the push, naming the file and the rule.
    let mut files = fixture_app("big config\n");
    files.retain(|(name, _)| *name != "slipway.toml");
    let mut config = b"[web]\nport = 8080\nhealth = \"/\"\n".to_vec();
    config.extend(compressible(2 * 1024 * 1024));
    files.push(("slipway.toml", config));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", "--force", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("slipway.toml is") && out.stderr.contains("it may be at most 1024 KiB"), "{out:?}");
    let (status, _) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(status, 200, "the server keeps serving");
}

// SQLite only: the build gate refuses the commit before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_over_the_limit_is_refused_before_it_is_archived() {
    let app = TestApp::start_with(Db::Sqlite, &["--max-context-mb", "1"]).await;
    let token = app.shop_to_push().await;
    let mut files = fixture_app("heavy\n");
    files.push(("data.txt", compressible(3 * 1024 * 1024)));
    let work = local_repo(&borrowed(&files)).await;
    let out = git(work.path(), &[], &["push", &app.git_url("shop", &token), "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("the build context . holds more than 1 MiB of files; at most 1 MiB is built (--max-context-mb)"),
        "{out:?}"
    );
    // Nothing was archived for it.
    let contexts = app.data_dir.path().join("contexts");
    let left = std::fs::read_dir(&contexts).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no context left in {}", contexts.display());
}

/// Runs git in `dir` with `input` on its standard input; answers its trimmed output.
async fn git_with_input(dir: &std::path::Path, args: &[&str], input: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("git");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A push of a few objects whose trees reuse one another describes a million files (a
/// "tree bomb"): it is refused by counting entries, without listing them all.
// SQLite only: the build gate refuses the commit before anything reaches the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_bomb_is_refused_by_its_entry_count() {
    let app = TestApp::start(Db::Sqlite).await;
    let token = app.shop_to_push().await;
    let work = local_repo(&borrowed(&fixture_app("bomb\n"))).await;
    let dir = work.path();
    let empty = git_with_input(dir, &["hash-object", "-w", "--stdin"], "").await;
    let mut tree =
        git_with_input(dir, &["mktree"], &(0..10).map(|i| format!("100644 blob {empty}\tf{i}\n")).collect::<String>())
            .await;
    for _ in 0..5 {
        let listing: String = (0..10).map(|i| format!("040000 tree {tree}\td{i}\n")).collect();
        tree = git_with_input(dir, &["mktree"], &listing).await;
    }
    // The fixture's files at the top, the million-file tree beside them.
    let top = git_with_input(dir, &["ls-tree", "HEAD"], "").await;
    let listing = format!("{top}\n040000 tree {tree}\tbomb\n");
    let root = git_with_input(dir, &["mktree"], &listing).await;
    let commit = git_with_input(dir, &["commit-tree", &root, "-m", "bomb"], "").await;
    let out = git(dir, &[], &["push", &app.git_url("shop", &token), &format!("{commit}:refs/heads/main")]).await;
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("the build context . holds more than 100000 files and directories"), "{out:?}");
    let (status, _) = app.admin("GET", "/services/shop", None).await;
    assert_eq!(status, 200, "the server keeps serving");
}

/// A client whose requests come from `address` (a loopback address of its own).
fn client_from(address: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .local_address(address.parse::<std::net::IpAddr>().expect("address"))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("client")
}

/// slipwayd's peak resident memory so far, in MiB.
fn peak_mib(app: &TestApp) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib / 1024
}

async fn login_from(client: &reqwest::Client, app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    client
        .post(format!("{}/api/v1/login", app.url))
        .json(&serde_json::json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login")
}

/// Logins flooding in from many addresses at once are hashed a few at a time: the rest
/// are told to come back (503, Retry-After) instead of each taking 19 MiB; one address
/// trying many usernames is cut off; wrong passwords from one place never lock the
/// account's owner out elsewhere.
// SQLite only: it measures slipwayd's memory under a flood of password hashing (four
// threads of load); the lockout rules' queries run on both in the auth tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_is_bounded_and_locks_nobody_out() {
    let app = TestApp::start(Db::Sqlite).await;
    let before = peak_mib(&app);
    let flood: Vec<_> = (0..240)
        .map(|n| {
            let client = client_from(&format!("127.0.{}.{}", 10 + n / 200, n % 200 + 1));
            let url = app.url.clone();
            tokio::spawn(async move {
                let response = client
                    .post(format!("{url}/api/v1/login"))
                    .json(&serde_json::json!({"username": format!("nobody-{n}"), "password": "wrong password"}))
                    .send()
                    .await
                    .expect("login");
                (response.status().as_u16(), response.headers().contains_key("retry-after"))
            })
        })
        .collect();
    let mut answers = std::collections::BTreeMap::new();
    for task in flood {
        let (status, retry_after) = task.await.expect("task");
        assert!(status == 401 || (status == 503 && retry_after), "a flood login answered {status}");
        *answers.entry(status).or_insert(0) += 1;
    }
    assert!(answers.get(&503).copied().unwrap_or(0) > 0, "some were told to come back: {answers:?}");
    let grown = peak_mib(&app).saturating_sub(before);
    assert!(grown < 200, "the flood grew the peak by {grown} MiB ({answers:?})");

    // One address, many usernames: cut off after its budget.
    let one = client_from("127.0.20.1");
    let mut limited = 0;
    for n in 0..40 {
        if login_from(&one, &app, &format!("guess-{n}"), "wrong password").await.status() == 429 {
            limited += 1;
        }
    }
    assert!(limited >= 5, "{limited} of 40 were throttled");

    // Someone guessing the admin's password from one place...
    let guesser = client_from("127.0.21.1");
    let mut last = 0;
    for _ in 0..12 {
        last = login_from(&guesser, &app, "admin", "not the password").await.status().as_u16();
    }
    assert_eq!(last, 429, "the guesser is throttled");
    // ...does not keep the admin out from another.
    let admin = client_from("127.0.22.1");
    let response = login_from(&admin, &app, "admin", slipway_e2e::ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
}
