//! slipwayd started as a process, as users run it: its URLs read from what it prints,
//! its output drained all along so it never blocks on a full pipe.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::slipwayd_bin;

/// What `start_process` saw: the URL and the lines printed before it.
#[derive(Debug)]
pub struct Started {
    pub child: Child,
    pub url: String,
    /// The app router's address (`http://127.0.0.1:PORT`).
    pub apps_url: String,
    pub stdout_before: Vec<String>,
    /// Every line slipwayd printed so far on stdout, growing while it runs.
    pub output: Arc<Mutex<Vec<String>>>,
    /// Every line slipwayd printed so far on stderr (its logs), growing while it runs.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// Ends when slipwayd's stderr closes (every line is in `stderr` then).
    pub stderr_done: tokio::task::JoinHandle<()>,
}

/// Starts slipwayd with the given arguments and waits (with a deadline) for the line
/// announcing its URL. Panics with slipwayd's stderr if it exits first.
pub async fn start_process(args: &[&str], envs: &[(&str, &str)]) -> Started {
    let mut cmd = Command::new(slipwayd_bin());
    cmd.args(args);
    if !args.contains(&"--apps-listen") {
        // Concurrent tests must not fight over the default router port.
        cmd.args(["--apps-listen", "127.0.0.1:0"]);
    }
    cmd.env_remove("SLIPWAY_ADMIN_PASSWORD")
        .env("SLIPWAY_LOG", "warn")
        // The add-on images `scripts/addon-images` builds from Debian's packages.
        .env("SLIPWAY_POSTGRES_IMAGE", "localhost/slipway/postgres")
        .env("SLIPWAY_REDIS_IMAGE", "localhost/slipway/redis")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn slipwayd");
    let output = Arc::new(Mutex::new(Vec::new()));
    let stderr_lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr piped");
    let sink = stderr_lines.clone();
    // Drained all along, so the server never blocks on a full pipe.
    let stderr_task = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut before = Vec::new();
    let mut apps_url = String::new();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("slipwayd listening on ") {
                return Some(url.to_owned());
            }
            if let Some(url) = line.strip_prefix("slipwayd app router on ") {
                apps_url = url.to_owned();
                continue;
            }
            before.push(line);
        }
        None
    })
    .await;
    output.lock().unwrap_or_else(|e| e.into_inner()).extend(before.iter().cloned());
    match found {
        Ok(Some(url)) => {
            // Keep draining stdout so the server never blocks on a full pipe.
            let sink = output.clone();
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                }
            });
            Started {
                child,
                url,
                apps_url,
                stdout_before: before,
                output,
                stderr: stderr_lines,
                stderr_done: stderr_task,
            }
        }
        _ => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let _ = stderr_task.await;
            let printed = stderr_lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
            panic!("slipwayd did not start (args {args:?}); stdout: {before:?}; stderr:\n{printed}");
        }
    }
}
