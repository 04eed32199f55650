//! Child processes of tests (git, the CLI) run to completion under a deadline; one that
//! overruns is killed and reported with everything it printed so far, so a hang says
//! where it stopped instead of only "timed out".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Child;

use crate::CliOutput;

/// Waits for `child` (stdout and stderr piped) for at most `limit`; panics naming `what`,
/// with the output so far, if it is still running then.
pub async fn finish_within(mut child: Child, limit: Duration, what: &str) -> CliOutput {
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>), stdout.clone()),
        drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>), stderr.clone()),
    ];
    let finished = tokio::time::timeout(limit, async {
        let status = child.wait().await.expect("wait for the child");
        for reader in readers {
            let _ = reader.await;
        }
        status
    })
    .await;
    let text = |buf: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    };
    match finished {
        Ok(status) => CliOutput { code: status.code().unwrap_or(-1), stdout: text(&stdout), stderr: text(&stderr) },
        Err(_) => {
            let _ = child.start_kill();
            panic!(
                "{what} did not finish within {} s; stdout so far:\n{}\nstderr so far:\n{}",
                limit.as_secs(),
                text(&stdout),
                text(&stderr)
            );
        }
    }
}

/// Copies a pipe into `sink` as it arrives.
fn drain(
    pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    sink: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            sink.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&chunk[..n]);
        }
    })
}
