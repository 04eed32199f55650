//! Runs `git http-backend` as a CGI program and relays its answer as it is produced, so
//! hook output (`remote:` lines) reaches the pusher live rather than at the end.
//!
//! CGI is simple and no maintained async CGI client exists, so the few lines that set
//! the environment and split the response head from the body are written here.

use std::path::Path;
use std::process::Stdio;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::io::ReaderStream;

use crate::{GitConfig, GitOp, Grant, repos};

#[derive(Debug, thiserror::Error)]
pub enum CgiError {
    #[error("the {what} exceeds {limit} bytes")]
    TooLarge { limit: u64, what: &'static str },
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("spooling the request body: {0}")]
    Spool(std::io::Error),
    #[error("starting git http-backend: {0}")]
    Spawn(std::io::Error),
    #[error("git http-backend answered a malformed head: {0}")]
    Head(String),
    #[error("the request body's encoding {0:?} is not gzip")]
    Encoding(String),
}

pub struct CgiRequest<'a> {
    pub name: &'a str,
    pub rest: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub op: GitOp,
}

/// Writes the request body to an anonymous spool file, refusing it past `limit` bytes
/// before git sees any of it. Answers the open file and its length.
async fn spool(dir: &Path, body: Body, limit: u64) -> Result<(std::fs::File, u64), CgiError> {
    tokio::fs::create_dir_all(dir).await.map_err(CgiError::Spool)?;
    let named = tempfile::NamedTempFile::new_in(dir).map_err(CgiError::Spool)?;
    // Unlinked at once: the open handle is all git needs, and nothing is left behind.
    let std_file = named.into_file();
    let mut file = tokio::fs::File::from_std(std_file.try_clone().map_err(CgiError::Spool)?);
    let mut stream = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CgiError::Body(e.to_string()))?;
        total += chunk.len() as u64;
        if total > limit {
            // Git keeps sending until its body is done and only then reads the answer;
            // answering early shows the pusher a broken pipe instead of the refusal. So
            // read and discard the rest, up to a hard cap against abuse.
            let cap = limit.saturating_mul(4).saturating_add(64 * 1024 * 1024);
            while let Some(Ok(chunk)) = stream.next().await {
                total += chunk.len() as u64;
                if total > cap {
                    break;
                }
            }
            return Err(CgiError::TooLarge { limit, what: "push" });
        }
        file.write_all(&chunk).await.map_err(CgiError::Spool)?;
    }
    file.flush().await.map_err(CgiError::Spool)?;
    let mut std_file = std_file;
    std::io::Seek::seek(&mut std_file, std::io::SeekFrom::Start(0)).map_err(CgiError::Spool)?;
    Ok((std_file, total))
}

/// A gzip body (git compresses large requests) inflated into a second spool file, its
/// inflated bytes counted against `limit`: a 127 KB body of zeros inflates to 120 MB,
/// so the limit must hold after inflating, not before.
async fn inflate(dir: &Path, compressed: std::fs::File, limit: u64) -> Result<(std::fs::File, u64), CgiError> {
    let named = tempfile::NamedTempFile::new_in(dir).map_err(CgiError::Spool)?;
    let out = named.into_file();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Seek, Write};
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(compressed));
        let mut writer = std::io::BufWriter::new(out);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        loop {
            let n =
                decoder.read(&mut chunk).map_err(|e| CgiError::Body(format!("the gzip body does not inflate: {e}")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                return Err(CgiError::TooLarge { limit, what: "push" });
            }
            writer.write_all(&chunk[..n]).map_err(CgiError::Spool)?;
        }
        let mut out = writer.into_inner().map_err(|e| CgiError::Spool(e.into_error()))?;
        out.seek(std::io::SeekFrom::Start(0)).map_err(CgiError::Spool)?;
        Ok((out, total))
    })
    .await
    .map_err(|e| CgiError::Body(e.to_string()))?
}

/// How the request body is encoded: git sends plain bodies or gzip; anything else is
/// refused rather than passed to git unread.
fn gzipped(headers: &HeaderMap) -> Result<bool, CgiError> {
    match headers.get("content-encoding").map(|v| v.to_str().unwrap_or_default().trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(encoding) if encoding.is_empty() || encoding == "identity" => Ok(false),
        Some(encoding) if encoding == "gzip" || encoding == "x-gzip" => Ok(true),
        Some(encoding) => Err(CgiError::Encoding(encoding)),
    }
}

/// The largest request body of a fetch (`git-upload-pack`: the refs it wants and has);
/// a fetch of a repository with a hundred thousand refs sends a few MiB.
pub const MAX_FETCH_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// Request bodies spooled to disk at once; more wait their turn, so concurrent requests
/// cannot fill the disk with N times the push limit.
static SPOOLING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

pub async fn run(config: &GitConfig, req: CgiRequest<'_>, grant: Grant, body: Body) -> Result<Response, CgiError> {
    let gzip = gzipped(req.headers)?;
    let limit = if req.op == GitOp::Push { config.max_push_bytes } else { MAX_FETCH_REQUEST_BYTES };
    let _turn = SPOOLING.acquire().await.map_err(|e| CgiError::Body(e.to_string()))?;
    let (mut input, mut length) = spool(&config.spool, body, limit).await?;
    if gzip {
        (input, length) = inflate(&config.spool, input, limit).await?;
    }
    if req.op == GitOp::Push && length > 0 {
        let size = repos::disk_size(&config.root.join(format!("{}.git", req.name))).await;
        if size + length > config.max_repo_bytes {
            return Err(CgiError::TooLarge { limit: config.max_repo_bytes, what: "repository" });
        }
    }

    let mut cmd = Command::new(&config.git);
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &config.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_HTTP_MAX_REQUEST_BUFFER", config.max_push_bytes.to_string())
        .env("PATH_INFO", format!("/{}.git/{}", req.name, req.rest))
        .env("REQUEST_METHOD", req.method.as_str())
        .env("QUERY_STRING", req.query.unwrap_or_default())
        .env("CONTENT_LENGTH", length.to_string())
        .env("REMOTE_USER", &grant.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // No HTTP_CONTENT_ENCODING: the body git reads is the inflated one.
    for (header, var) in [("content-type", "CONTENT_TYPE"), ("git-protocol", "GIT_PROTOCOL")] {
        if let Some(value) = req.headers.get(header).and_then(|v| v.to_str().ok()) {
            cmd.env(var, value);
        }
    }
    // Git configuration through the environment (git >= 2.31), so repositories need no
    // per-repository settings and hooks always point at the running binary.
    // receive.fsckObjects: a pushed object git itself would call broken (a tree with two
    // entries of one name, a path with `..`) never lands; the build gate reads trees.
    let mut git_config =
        vec![("http.receivepack".to_owned(), "true".to_owned()), ("receive.fsckObjects".to_owned(), "true".to_owned())];
    git_config.extend(config.git_config.iter().cloned());
    cmd.env("GIT_CONFIG_COUNT", git_config.len().to_string());
    for (i, (key, value)) in git_config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key).env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    for (key, value) in &grant.env {
        cmd.env(key, value);
    }

    let mut child = cmd.spawn().map_err(CgiError::Spawn)?;
    let stdout = child.stdout.take().ok_or_else(|| CgiError::Head("no stdout".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| CgiError::Head("no stderr".into()))?;
    let name = req.name.to_owned();
    tokio::spawn(async move {
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors).await;
        match child.wait().await {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::warn!(repo = %name, %status, stderr = %errors.trim(), "git http-backend failed"),
            Err(err) => tracing::warn!(repo = %name, %err, "waiting for git http-backend"),
        }
    });

    let mut reader = BufReader::new(stdout);
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.map_err(|e| CgiError::Head(e.to_string()))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if n == 0 || line.is_empty() {
            break;
        }
        let (key, value) = line.split_once(':').ok_or_else(|| CgiError::Head(line.to_owned()))?;
        let value = value.trim();
        if key.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse::<u16>().ok());
            status = code.and_then(|c| StatusCode::from_u16(c).ok()).ok_or_else(|| CgiError::Head(line.to_owned()))?;
        } else if let (Ok(key), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            headers.append(key, value);
        }
    }
    // The rest streams as git writes it; ReaderStream yields whatever is ready.
    let mut response = Response::new(Body::from_stream(ReaderStream::new(reader)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}
