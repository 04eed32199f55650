//! The app router under real traffic: an app that keeps connections alive
//! (`tests/apps/keepalive.rs`) takes a load of mixed GET and POST requests (with bodies)
//! through a good rollout, a failing one, a scale-down and a rollback. No request fails,
//! none is answered by a replica already told to stop (the router drains a retired replica
//! before it is stopped), and a stream opened before a rollout runs to its end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use slipway_e2e::{TestApp, borrowed, commit, git, keepalive_app, local_repo, nonce};

use crate::both_databases;

/// What one load client saw.
#[derive(Debug, Default)]
struct Seen {
    ok: u32,
    failed: Vec<String>,
    /// Answers sent by a replica after its SIGTERM.
    after_stop: u32,
    last_body: String,
}

/// Sends GET and POST requests (2 KiB bodies) over its own keep-alive pool until `stop`.
async fn load(apps_url: String, host: String, stop: Arc<AtomicBool>) -> Seen {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    let mut seen = Seen::default();
    let payload = vec![b'x'; 2048];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let request = if n.is_multiple_of(2) {
            client.post(format!("{apps_url}/orders")).body(payload.clone())
        } else {
            client.get(format!("{apps_url}/delay?ms=50"))
        };
        match request.header("host", &host).send().await {
            Ok(response) if response.status() == 200 => {
                if response.headers().contains_key("x-stopping") {
                    seen.after_stop += 1;
                }
                let body = response.headers().get("x-body").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let text = response.text().await.unwrap_or_default();
                if n.is_multiple_of(2) && text != "got 2048 bytes\n" {
                    seen.failed.push(format!("POST answered {text:?}"));
                }
                seen.ok += 1;
                seen.last_body = body;
            }
            Ok(response) => {
                seen.failed.push(format!("{} {}", response.status(), response.text().await.unwrap_or_default()))
            }
            Err(err) => seen.failed.push(format!("error: {err}")),
        }
    }
    seen
}

both_databases!(rollouts_under_keep_alive_load_lose_nothing with ["--health-timeout", "20", "--drain-seconds", "20"]);
async fn rollouts_under_keep_alive_load_lose_nothing(app: TestApp) {
    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}", nonce());
    let work = local_repo(&borrowed(&keepalive_app(&v1, false))).await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let port = app.apps_url.rsplit(':').next().unwrap_or_default().to_owned();
    let host = format!("shop-production.localhost:{port}");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> =
        (0..4).map(|_| tokio::spawn(load(app.apps_url.clone(), host.clone(), stop.clone()))).collect();
    // A slow stream opened before the rollout, lasting well past it (10 s): its replica
    // is drained, not cut.
    let stream = {
        let (url, host) = (format!("{}/stream?chunks=100&ms=100", app.apps_url), host.clone());
        tokio::spawn(async move {
            let response = reqwest::Client::new().get(url).header("host", host).send().await.expect("stream");
            let body = response.headers().get("x-body").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            (body, response.text().await.expect("the whole stream"), std::time::Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A good rollout.
    let v2 = format!("v2 {}", nonce());
    commit(work.path(), &[("body.txt", format!("{v2}\n").as_bytes())], "v2").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let switched = std::time::Instant::now();
    let (streamed_by, streamed, ended) = stream.await.expect("stream task");
    assert!(ended > switched, "the stream must outlast the rollout to show its drain; lengthen it");
    assert_eq!(streamed_by, v1, "the stream began on v1");
    assert_eq!(streamed.lines().count(), 100, "the stream ran to its end through the rollout: {streamed:?}");

    // A rollout that never gets healthy: refused, v2 keeps serving.
    let broken = keepalive_app(&format!("v3 {}", nonce()), true);
    commit(work.path(), &borrowed(&broken), "broken").await;
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_ne!(out.code, 0, "{out:?}");

    // A scale-down retires a replica that is serving.
    let (status, env) =
        app.admin("POST", "/services/shop/environments/production/scale", Some(json!({"replicas": 1}))).await;
    assert_eq!(status, 200, "{env}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, env) = app.admin("GET", "/services/shop/environments/production", None).await;
        if env["healthy_replicas"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "scaled down to one replica within 30 s: {env}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A rollback to v1.
    let (status, run) =
        app.admin("POST", "/services/shop/environments/production/rollback", Some(json!({"to": 1}))).await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_i64().expect("run id");
    let run = app.wait_for_run(id, 120, |r| r["status"] != "queued" && r["status"] != "running").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Load on until the retired replicas are gone (each stopped once drained).
    let node = std::fs::read_to_string(app.data_dir.path().join("node-id")).expect("node id");
    let labels = [format!("dev.slipway.node={}", node.trim()), "dev.slipway.environment=production".to_owned()];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, env) = app.admin("GET", "/services/shop/environments/production", None).await;
        let running = slipway_e2e::running_containers(&labels).await.len();
        if Some(running as u64) == env["replicas"].as_u64() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the retired replicas were stopped within 60 s: {running} run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for client in clients {
        let seen = client.await.expect("load client");
        assert!(seen.failed.is_empty(), "{} failed: {:?}", seen.failed.len(), &seen.failed[..seen.failed.len().min(5)]);
        assert_eq!(seen.after_stop, 0, "answers from a replica already told to stop");
        assert_eq!(seen.last_body, v1, "v1 serves after the rollback");
        total += seen.ok;
    }
    assert!(total > 200, "too little load to show anything: {total} requests");
}

/// A websocket through the router to the environment's replicas.
async fn websocket(app: &TestApp, host: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/ws", app.apps_url.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert("host", host.parse().expect("host"));
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("websocket through the router");
    assert_eq!(response.status(), 101);
    socket
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a text message and answers the echo (`<release>: <text>`).
async fn echo(socket: &mut Socket, text: &str) -> String {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    socket.send(Message::text(text)).await.expect("send");
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("an echo in time");
        match next.expect("the socket is open").expect("a frame") {
            Message::Text(echoed) => return echoed.to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("{other:?} instead of the echo of {text:?}"),
        }
    }
}

both_databases!(websockets_outlive_a_rollout_or_close_cleanly_at_the_drain_timeout with ["--drain-seconds", "3"]);
/// A websocket opened before a rollout keeps its replica (draining) until it closes; one
/// still open at the drain timeout is closed by its app on SIGTERM with a close frame
/// (1001), not cut.
async fn websockets_outlive_a_rollout_or_close_cleanly_at_the_drain_timeout(app: TestApp) {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let token = app.shop_to_push().await;
    let url = app.git_url("shop", &token);
    let v1 = format!("v1 {}", nonce());
    let work = local_repo(&borrowed(&keepalive_app(&v1, false))).await;
    assert_eq!(git(work.path(), &[], &["push", &url, "main"]).await.code, 0);
    let port = app.apps_url.rsplit(':').next().unwrap_or_default().to_owned();
    let host = format!("shop-production.localhost:{port}");

    let mut closing = websocket(&app, &host).await;
    let mut lasting = websocket(&app, &host).await;
    assert_eq!(echo(&mut closing, "before").await, format!("{v1}: before"));
    assert_eq!(echo(&mut lasting, "before").await, format!("{v1}: before"));

    let v2 = format!("v2 {}", nonce());
    commit(work.path(), &[("body.txt", format!("{v2}\n").as_bytes())], "v2").await;
    // The switch, and the drain after it, begin during the push.
    let pushed = std::time::Instant::now();
    let out = git(work.path(), &[], &["push", &url, "main"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    // New connections reach v2; the open ones still talk to their v1 replicas.
    let mut fresh = websocket(&app, &host).await;
    assert_eq!(echo(&mut fresh, "new").await, format!("{v2}: new"));
    assert_eq!(echo(&mut closing, "after").await, format!("{v1}: after"));
    assert_eq!(echo(&mut lasting, "after").await, format!("{v1}: after"));
    closing.close(None).await.expect("closed by the client");

    // The drain timeout (3 s) passes with `lasting` open: its replica gets SIGTERM and
    // the app says goodbye.
    let close = loop {
        let next = tokio::time::timeout(Duration::from_secs(60), lasting.next()).await.expect("closed in time");
        match next.expect("a close frame before the end").expect("a clean frame, not a cut connection") {
            Message::Close(frame) => break frame.expect("a close code"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("{other:?} on an idle socket"),
        }
    };
    assert_eq!(close.code, CloseCode::Away, "{close:?}");
    assert!(pushed.elapsed() >= Duration::from_secs(3), "closed before the drain timeout: {close:?}");
    let _ = lasting.send(Message::Close(None)).await;
    assert_eq!(echo(&mut fresh, "still").await, format!("{v2}: still"));
}
