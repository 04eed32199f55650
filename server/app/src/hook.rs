//! `slipwayd hook pre-receive`: what git runs during a push. It forwards the ref updates
//! (and git's quarantine variables, so the server can read the pushed commit) to the
//! slipwayd that accepted the push, prints the pipeline's output line by line as it
//! arrives (git shows it as `remote: …`), and exits non-zero to reject the push.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use futures_util::StreamExt;
use slipway_git::archive::OBJECT_VARS;
use slipway_service::pipeline::{ACCEPT, HookRequest, REJECT, RefUpdate};

pub fn main(name: &str) -> ExitCode {
    if name != "pre-receive" {
        // Other hooks are not installed; accept whatever they are asked.
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            println!("!     slipway hook: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pre_receive()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            println!("!     push rejected: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn pre_receive() -> Result<bool, String> {
    let url = std::env::var("SLIPWAY_HOOK_URL").map_err(|_| "SLIPWAY_HOOK_URL is not set (push through slipwayd)")?;
    let grant =
        std::env::var("SLIPWAY_PUSH_GRANT").map_err(|_| "SLIPWAY_PUSH_GRANT is not set (push through slipwayd)")?;
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("reading the ref updates: {e}"))?;
        let mut parts = line.split_whitespace();
        if let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) {
            updates.push(RefUpdate { old: old.to_owned(), new: new.to_owned(), name: name.to_owned() });
        }
    }
    let env = OBJECT_VARS.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v))).collect();
    let request = HookRequest { grant, updates, env };

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().build().map_err(|e| e.to_string())?;
    let response = client
        .post(format!("{url}/internal/git/pre-receive"))
        .json(&request)
        .send()
        .await
        .map_err(|e| format!("cannot reach slipwayd at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("slipwayd answered {}", response.status()));
    }
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    let mut verdict = None;
    let stdout = std::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the connection to slipwayd broke: {e}"))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            match text.as_str() {
                ACCEPT => verdict = Some(true),
                REJECT => verdict = Some(false),
                _ => {
                    let mut out = stdout.lock();
                    let _ = writeln!(out, "{text}");
                    // Flush each line so the pusher sees the build as it happens.
                    let _ = out.flush();
                }
            }
        }
    }
    verdict.ok_or_else(|| "slipwayd ended the push without a verdict".to_owned())
}
