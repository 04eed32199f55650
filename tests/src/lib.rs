//! Support for Slipway's end-to-end tests: [`TestApp`] starts the real `slipwayd` binary
//! on port 0 against a fresh SQLite file or a fresh PostgreSQL database, and offers an
//! HTTP client, fixture builders and a way to run the real `slipway` CLI against it.
//!
//! PostgreSQL tests need `SLIPWAY_TEST_POSTGRES_URL` (an admin connection to a server
//! that may create databases); `scripts/test` starts a private cluster and sets it.

pub mod browser;
pub mod contract;
pub mod engine;
pub mod engine_proxy;
mod in_process;
pub use in_process::TestClock;
/// The API-server simulator, a crate of its own (`tests/kube-sim`).
pub use slipway_kube_sim as kube_sim;
pub mod portal;
pub mod process;
pub mod repo;
mod server_process;
pub use server_process::{Started, start_process};

pub use engine::{engine_has_image, remove_containers_of, running_containers, volumes};
pub use repo::{borrowed, commit, fixture_app, git, keepalive_app, local_repo};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const USER_PASSWORD: &str = "user-password-for-tests";

/// An HTTP client for tests. reqwest is built without a bundled TLS provider (the
/// project pins ring), so the provider is installed first.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client")
}

/// Which database a test app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The directory holding the workspace's binaries (`target/debug`), found from this
/// test executable's own path (`target/debug/deps/e2e-…`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target directory").to_path_buf();
    for bin in ["slipwayd", "slipway"] {
        assert!(
            dir.join(bin).exists(),
            "{} is missing: build the binaries first (`cargo build --bins`), or run scripts/test",
            dir.join(bin).display()
        );
    }
    dir
}

pub fn slipwayd_bin() -> PathBuf {
    bin_dir().join("slipwayd")
}

pub fn slipway_bin() -> PathBuf {
    bin_dir().join("slipway")
}

/// A unique suffix for database names within this test process.
fn unique() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates a fresh PostgreSQL database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var("SLIPWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("SLIPWAY_TEST_POSTGRES_URL is not set: run scripts/test, which starts a private PostgreSQL")
    });
    let name = format!("slipway_test_{}", unique());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {admin_url}: {e}"));
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create test database");
    let (base, _) = admin_url.rsplit_once('/').expect("URL has a database path");
    format!("{base}/{name}")
}

/// A running slipwayd for one test. Killed when dropped.
#[derive(Debug)]
pub struct TestApp {
    pub url: String,
    pub apps_url: String,
    pub db: Db,
    pub database_url: String,
    pub data_dir: tempfile::TempDir,
    pub admin_token: String,
    pub http: reqwest::Client,
    args: Vec<String>,
    server: Server,
    output: [Arc<Mutex<Vec<String>>>; 2],
    /// The OpenAPI document, fetched on the first call, that every answer is held to.
    contract: Arc<tokio::sync::OnceCell<contract::Contract>>,
}

/// How a test's slipwayd runs.
#[derive(Debug)]
enum Server {
    /// The slipwayd binary, as users run it.
    Process(Child),
    /// `slipwayd::launch` in the test's own process (with a clock the test moves).
    InProcess { shutdown: tokio_util::sync::CancellationToken, task: tokio::task::JoinHandle<()> },
}

impl Server {
    fn child(&mut self) -> &mut Child {
        match self {
            Server::Process(child) => child,
            Server::InProcess { .. } => panic!("this test's slipwayd runs in-process: it has no process to signal"),
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Server::Process(child) => child.id(),
            Server::InProcess { .. } => None,
        }
    }
}

impl TestApp {
    pub async fn start(db: Db) -> TestApp {
        Self::start_with(db, &[]).await
    }

    /// Starts with extra slipwayd flags.
    pub async fn start_with(db: Db, extra: &[&str]) -> TestApp {
        Self::start_with_env(db, extra, &[]).await
    }

    /// Starts with extra slipwayd flags and environment variables.
    pub async fn start_with_env(db: Db, extra: &[&str], envs: &[(&str, &str)]) -> TestApp {
        let data_dir = tempfile::tempdir().expect("data dir");
        let database_url = match db {
            Db::Sqlite => format!("sqlite://{}", data_dir.path().join("slipway.db").display()),
            Db::Postgres => fresh_postgres_database().await,
        };
        let dir = data_dir.path().to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--listen", "127.0.0.1:0", "--data-dir", &dir, "--database-url", &database_url];
        args.extend_from_slice(extra);
        let mut envs = envs.to_vec();
        envs.push(("SLIPWAY_ADMIN_PASSWORD", ADMIN_PASSWORD));
        let started = start_process(&args, &envs).await;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let http = http_client();
        let mut app = TestApp {
            url: started.url,
            apps_url: started.apps_url,
            db,
            database_url,
            data_dir,
            admin_token: String::new(),
            http,
            args,
            server: Server::Process(started.child),
            output: [started.output, started.stderr],
            contract: Default::default(),
        };
        app.admin_token = app.login("admin", ADMIN_PASSWORD).await;
        app
    }

    /// The URL of an API path: relative to `/api/v1`, or absolute when it starts with
    /// `/api/` (the Backstage-compatible reads live at `/api/catalog`).
    pub fn api(&self, path: &str) -> String {
        if path.starts_with("/api/") { format!("{}{path}", self.url) } else { format!("{}/api/v1{path}", self.url) }
    }

    /// Signs in and returns the session token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) =
            self.call("POST", "/login", None, Some(json!({"username": username, "password": password}))).await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Sends a JSON request; answers the status and the parsed body (Null when empty).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method.parse().expect("method"), self.api(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type =
            response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = response.text().await.expect("body");
        if status >= 400 && status != 405 {
            assert_eq!(content_type, "application/problem+json", "{method} {path} -> {status}: {text}");
        }
        let contract = self
            .contract
            .get_or_init(|| async {
                let doc = self.http.get(format!("{}/api/openapi.json", self.url)).send().await.expect("openapi");
                contract::Contract::from_document(&doc.json().await.expect("the OpenAPI document is JSON"))
            })
            .await;
        let full = if path.starts_with("/api/") { path.to_owned() } else { format!("/api/v1{path}") };
        if let Err(broken) = contract.check(method, &full, status, &content_type, &text) {
            panic!("the API broke its contract: {broken}\n{text}");
        }
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, Some(&self.admin_token), body).await
    }

    /// Creates a user (as admin) and returns a session token for them.
    pub async fn user(&self, username: &str) -> String {
        let (status, body) =
            self.admin("POST", "/users", Some(json!({"username": username, "password": USER_PASSWORD}))).await;
        assert_eq!(status, 201, "create user {username}: {body}");
        self.login(username, USER_PASSWORD).await
    }

    pub async fn team(&self, name: &str) {
        let (status, body) = self.admin("POST", "/teams", Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "create team {name}: {body}");
    }

    pub async fn member(&self, team: &str, username: &str, role: &str) {
        let (status, body) = self
            .admin("POST", &format!("/teams/{team}/members"), Some(json!({"username": username, "role": role})))
            .await;
        assert_eq!(status, 200, "add {username} to {team}: {body}");
    }

    pub async fn service(&self, name: &str, team: &str) {
        let (status, body) = self.admin("POST", "/services", Some(json!({"name": name, "team": team}))).await;
        assert_eq!(status, 201, "create service {name}: {body}");
    }

    /// A summary of every domain table (not the audit log), to show that a refused
    /// request changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        const QUERIES: &[&str] = &[
            "SELECT username || ':' || CAST(is_admin AS TEXT) || ':' || password_hash FROM users ORDER BY id",
            "SELECT name || ':' || CAST(user_id AS TEXT) FROM api_tokens ORDER BY id",
            "SELECT name FROM teams ORDER BY id",
            "SELECT CAST(team_id AS TEXT) || ':' || CAST(user_id AS TEXT) || ':' || role FROM team_members ORDER BY team_id, user_id",
            "SELECT name || ':' || CAST(team_id AS TEXT) || ':' || description || ':' || lifecycle || ':' || tier || ':' || on_call || ':' || links || ':' || depends_on || ':' || CAST(updated_at AS TEXT) FROM services ORDER BY id",
            "SELECT CAST(service_id AS TEXT) || ':' || name || ':' || branch || ':' || CAST(replicas AS TEXT) || ':' || CAST(pinned AS TEXT) || ':' || COALESCE(CAST(current_release AS TEXT), '-') FROM environments ORDER BY id",
            "SELECT CAST(environment_id AS TEXT) || ':' || CAST(version AS TEXT) || ':' || image FROM releases ORDER BY id",
            "SELECT CAST(environment_id AS TEXT) || ':' || CAST(version AS TEXT) || ':' || vars FROM config_versions ORDER BY id",
            "SELECT alias || ':' || CAST(team_id AS TEXT) FROM team_aliases ORDER BY alias",
            "SELECT kind || ':' || namespace || ':' || name || ':' || entity FROM catalog_entities ORDER BY id",
            "SELECT name || ':' || descriptor || ':' || COALESCE(repo_url, '-') FROM services ORDER BY id",
        ];
        let mut out = Vec::new();
        match self.db {
            Db::Sqlite => {
                let mut conn =
                    <sqlx::SqliteConnection as sqlx::Connection>::connect(&self.database_url).await.expect("sqlite");
                for q in QUERIES {
                    let rows: Vec<String> = sqlx::query_scalar(*q).fetch_all(&mut conn).await.expect("snapshot query");
                    out.push(rows.join("|"));
                }
            }
            Db::Postgres => {
                let mut conn =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&self.database_url).await.expect("postgres");
                for q in QUERIES {
                    let rows: Vec<String> = sqlx::query_scalar(*q).fetch_all(&mut conn).await.expect("snapshot query");
                    out.push(rows.join("|"));
                }
            }
        }
        out
    }

    /// Runs one SQL statement against the app's database (to set up states the API
    /// cannot reach quickly, such as an expired token).
    pub async fn execute_sql(&self, sql: &'static str) {
        match self.db {
            Db::Sqlite => {
                let mut conn =
                    <sqlx::SqliteConnection as sqlx::Connection>::connect(&self.database_url).await.expect("sqlite");
                sqlx::query(sql).execute(&mut conn).await.expect("sql");
            }
            Db::Postgres => {
                let mut conn =
                    <sqlx::PgConnection as sqlx::Connection>::connect(&self.database_url).await.expect("postgres");
                sqlx::query(sql).execute(&mut conn).await.expect("sql");
            }
        }
    }

    /// A `slipway` command preconfigured for this server with its own config file.
    pub fn cli(&self, config: &Path) -> Command {
        let mut cmd = Command::new(slipway_bin());
        cmd.env("SLIPWAY_CONFIG", config)
            .env_remove("SLIPWAY_SERVER")
            .env_remove("SLIPWAY_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Kills slipwayd with SIGKILL (no chance to clean up) and waits for it to die.
    pub async fn kill9(&mut self) {
        self.server.child().start_kill().expect("SIGKILL");
        self.server.child().wait().await.expect("wait");
    }

    /// Starts slipwayd again on the same data and database (on a new port).
    pub async fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let started = start_process(&args, &[]).await;
        self.url = started.url;
        self.apps_url = started.apps_url;
        self.server = Server::Process(started.child);
        self.output = [started.output, started.stderr];
    }

    /// Everything slipwayd printed (stdout and stderr) since it last started.
    pub fn server_output(&self) -> String {
        let lines = |l: &Arc<Mutex<Vec<String>>>| l.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
        format!("{}\n{}", lines(&self.output[0]), lines(&self.output[1]))
    }

    /// GET through the app router with the environment's Host header; answers the status
    /// and body (status 0 when the router cannot be reached).
    pub async fn get_app(&self, service: &str, environment: &str, path: &str) -> (u16, String) {
        let port = self.apps_url.rsplit(':').next().unwrap_or_default();
        let response = self
            .http
            .get(format!("{}{path}", self.apps_url))
            .header("host", format!("{service}-{environment}.localhost:{port}"))
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    }

    /// Polls a run until `done(run)` holds, failing after `secs` seconds.
    pub async fn wait_for_run(&self, id: i64, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, run) = self.admin("GET", &format!("/runs/{id}"), None).await;
            // 404 until the push that creates the run gets that far.
            assert!(status == 200 || status == 404, "{run}");
            if status == 200 && done(&run) {
                return run;
            }
            assert!(std::time::Instant::now() < deadline, "run {id} did not get there in {secs} s: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Team `payments` with its service `shop`, and an admin API token to push with:
    /// what most pushing tests start from.
    pub async fn shop_to_push(&self) -> String {
        self.team("payments").await;
        self.service("shop", "payments").await;
        self.admin_api_token("git").await
    }

    /// An API token for the admin, for git URLs.
    pub async fn admin_api_token(&self, name: &str) -> String {
        let (status, created) = self.admin("POST", "/tokens", Some(json!({"name": name}))).await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().expect("token").to_owned()
    }

    /// The git URL of a service with credentials in it.
    pub fn git_url(&self, service: &str, token: &str) -> String {
        format!("{}/git/{service}.git", self.url).replacen("http://", &format!("http://push:{token}@"), 1)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        self.stop().await
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit status; `restart` starts it again.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.server.child().id().expect("running");
        let status = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(30), self.server.child().wait())
            .await
            .expect("exits in time")
            .expect("wait")
    }
}

impl Drop for TestApp {
    /// Removes the containers this test's slipwayd started (they outlive it on purpose:
    /// replicas survive a server restart).
    fn drop(&mut self) {
        match &mut self.server {
            Server::Process(child) => {
                let _ = child.start_kill();
            }
            Server::InProcess { shutdown, task } => {
                shutdown.cancel();
                task.abort();
            }
        }
        if std::thread::panicking() {
            // The test failed: what the server logged says why more often than the
            // assertion does.
            let logs = self.output[1].lock().unwrap_or_else(|e| e.into_inner());
            let from = logs.len().saturating_sub(200);
            eprintln!("slipwayd's last log lines:\n{}", logs[from..].join("\n"));
        }
        if let Ok(node) = std::fs::read_to_string(self.data_dir.path().join("node-id")) {
            remove_containers_of(node.trim());
        }
    }
}

/// Output of a finished CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a prepared command, feeding `stdin`, and collects its output.
pub async fn run_cli(mut cmd: Command, args: &[&str], stdin: &str) -> CliOutput {
    use tokio::io::AsyncWriteExt;
    cmd.args(args);
    let mut child = cmd.spawn().expect("spawn slipway");
    let mut input = child.stdin.take().expect("stdin piped");
    // A command that fails before reading its input closes the pipe early; that is fine.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    process::finish_within(child, Duration::from_secs(60), &format!("slipway {}", args.join(" "))).await
}

impl From<std::process::Output> for CliOutput {
    fn from(output: std::process::Output) -> CliOutput {
        CliOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A value unique to this moment, to keep the engine's layer cache from answering a
/// build step a test needs to really run.
pub fn nonce() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{nanos:x}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A fresh place in the test registry (`SLIPWAY_TEST_REGISTRY`, which `scripts/test` sets
/// to the registry it started on a free port): `HOST:PORT/<letter><nonce>`, so tests never
/// share repositories. No default: another registry answering on a well-known port must
/// not stand in for the test's own.
pub fn registry_location(letter: char) -> String {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY").unwrap_or_else(|_| {
        panic!("SLIPWAY_TEST_REGISTRY is not set: run scripts/test, which starts a local registry")
    });
    format!("{registry}/{letter}{}", nonce().replace('-', ""))
}

impl TestApp {
    /// This slipwayd's node id (labels its containers).
    /// slipwayd's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid().expect("slipwayd is running as a process")
    }

    pub fn node(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("node-id")).expect("node id").trim().to_owned()
    }

    /// Ids of the running replicas of one environment of this slipwayd.
    pub async fn replicas_of(&self, service: &str, environment: &str) -> Vec<String> {
        running_containers(&[
            format!("dev.slipway.node={}", self.node()),
            format!("dev.slipway.service={service}"),
            format!("dev.slipway.environment={environment}"),
        ])
        .await
    }

    /// Runs the `slipway` CLI against this server with an API token.
    pub async fn slipway(&self, token: &str, args: &[&str], stdin: &str) -> CliOutput {
        let mut cmd = self.cli(&self.data_dir.path().join("cli.toml"));
        cmd.env("SLIPWAY_SERVER", &self.url).env("SLIPWAY_TOKEN", token);
        run_cli(cmd, args, stdin).await
    }

    /// The id of the newest run of a service, waiting (with a deadline) for its first.
    pub async fn eventually_run(&self, service: &str) -> i64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (_, runs) = self.admin("GET", &format!("/services/{service}/runs?limit=1"), None).await;
            if let Some(id) = runs["items"][0]["id"].as_i64() {
                return id;
            }
            assert!(std::time::Instant::now() < deadline, "no run of {service} in 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `check` every 100 ms until it holds, failing with `what` at the deadline.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while !check().await {
            assert!(std::time::Instant::now() < deadline, "not within {secs} s: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
