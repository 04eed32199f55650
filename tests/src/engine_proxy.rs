//! A pass-through proxy in front of the container engine's API socket that can be told
//! to stall one kind of request: how a test makes the real engine hang on demand (a hung
//! engine, or a followed output that never ends, is what a deploy must survive), with
//! everything else still real.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// A proxy on its own socket; `url` goes where `SLIPWAY_ENGINE` would.
#[derive(Debug)]
pub struct EngineProxy {
    pub url: String,
    stalls: Arc<Stalls>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The engine the tests use (what `scripts/podman start` printed).
fn upstream() -> PathBuf {
    PathBuf::from(crate::engine::socket())
}

impl EngineProxy {
    pub async fn start() -> EngineProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let stalls = Arc::new(Stalls::default());
        let stall = stalls.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let stall = stall.clone();
                tokio::spawn(async move {
                    if let Ok(server) = UnixStream::connect(upstream()).await {
                        relay(client, server, stall).await;
                    }
                });
            }
        });
        EngineProxy { url: format!("unix://{}", path.display()), stalls, task, _dir: dir }
    }

    /// From now on, container creation requests are held forever without an answer
    /// (until `false`), as a hung engine would.
    pub fn stall_container_creates(&self, stall: bool) {
        self.stalls.creates.store(stall, Ordering::SeqCst);
    }

    /// From now on, requests to follow a container's output are held forever without an
    /// answer (until `false`), as Podman's followed output that misses the container's
    /// end stays open.
    pub fn stall_followed_output(&self, stall: bool) {
        self.stalls.followed_output.store(stall, Ordering::SeqCst);
    }
}

/// Which requests are held.
#[derive(Debug, Default)]
struct Stalls {
    creates: AtomicBool,
    followed_output: AtomicBool,
}

impl Stalls {
    fn holds(&self, request: &[u8]) -> bool {
        let creating = request.starts_with(b"POST ") && contains(request, b"/containers/create");
        let following =
            request.starts_with(b"GET ") && contains(request, b"/logs?") && contains(request, b"follow=true");
        (creating && self.creates.load(Ordering::SeqCst)) || (following && self.followed_output.load(Ordering::SeqCst))
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes both ways; a request chunk that opens a held kind of request stops the
/// client-to-engine direction (the request never arrives).
async fn relay(client: UnixStream, server: UnixStream, stall: Arc<Stalls>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if stall.holds(chunk) {
                // Never forward it and never answer, as a hung engine does, until the
                // client gives up and closes.
                while let Ok(n) = client_read.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                break;
            }
            if server_write.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(up, down);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
