//! Repositories for tests: the real git client with an isolated configuration, local
//! repositories with commits, and the fixture app.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::CliOutput;

/// Runs the real git client in `dir` with an isolated configuration (no system or user
/// config, no prompts), plus `config` as `-c key=value` pairs.
pub async fn git(dir: &Path, config: &[(&str, &str)], args: &[&str]) -> CliOutput {
    let mut cmd = Command::new("git");
    for (key, value) in config {
        cmd.arg("-c").arg(format!("{key}={value}"));
    }
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("run git");
    crate::process::finish_within(child, Duration::from_secs(120), &format!("git {}", args.join(" "))).await
}

/// A new local repository in a fresh directory with one commit of `files`.
pub async fn local_repo(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = git(dir.path(), &[], &["init", "--quiet", "--initial-branch=main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    commit(dir.path(), files, "first").await;
    dir
}

/// Writes `files` and commits them.
pub async fn commit(dir: &Path, files: &[(&str, &[u8])], message: &str) {
    for (name, content) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create directories");
        }
        std::fs::write(path, content).expect("write file");
    }
    let out = git(dir, &[], &["add", "--all"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = git(dir, &[], &["commit", "--quiet", "-m", message]).await;
    assert_eq!(out.code, 0, "{out:?}");
}

/// The fixture app (`examples/hello`): a tiny HTTP service on the offline busybox base
/// image (see `scripts/podman`), serving `index.html` with `body`.
pub fn fixture_app(body: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("Containerfile", include_bytes!("../../examples/hello/Containerfile").to_vec()),
        ("slipway.toml", include_bytes!("../../examples/hello/slipway.toml").to_vec()),
        ("index.html", body.as_bytes().to_vec()),
    ]
}

/// The keep-alive test app (`tests/apps/keepalive.rs`) as a repository: the binary, an
/// image on the offline busybox base, and `body` (its first line names the release in
/// every answer's `X-Body`). A `broken` one answers its health check with 500.
pub fn keepalive_app(body: &str, broken: bool) -> Vec<(&'static str, Vec<u8>)> {
    let containerfile = format!(
        "FROM localhost/slipway/busybox\nCOPY keepalive /keepalive\nRUN chmod 0755 /keepalive\nCOPY body.txt /body.txt\n{}\
         CMD [\"/keepalive\", \"/body.txt\"]\n",
        if broken { "ENV BROKEN=1\n" } else { "" }
    );
    vec![
        ("Containerfile", containerfile.into_bytes()),
        ("keepalive", keepalive_binary().to_vec()),
        ("body.txt", format!("{body}\n").into_bytes()),
    ]
}

/// `tests/apps/keepalive.rs` compiled with `rustc` (the standard library only, static),
/// once per test process.
fn keepalive_binary() -> &'static [u8] {
    static BINARY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("apps/keepalive.rs");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("keepalive");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
        let built = std::process::Command::new(rustc)
            .args([
                "--edition",
                "2024",
                "-C",
                "opt-level=2",
                "-C",
                "strip=symbols",
                "-C",
                "target-feature=+crt-static",
                "-o",
            ])
            .arg(&out)
            .arg(&source)
            .output()
            .expect("running rustc");
        assert!(built.status.success(), "compiling the keep-alive app: {}", String::from_utf8_lossy(&built.stderr));
        std::fs::read(&out).expect("the compiled app")
    })
}

/// `files` as the borrowed pairs [`local_repo`] and [`commit`] take.
pub fn borrowed<'a>(files: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    files.iter().map(|(name, content)| (*name, content.as_slice())).collect()
}
