//! The router's unit tests: routing keys, headers, picks, drains and retries.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

#[test]
fn hosts_map_to_environments() {
    assert_eq!(route_key("shop-production.localhost:7780", "localhost").as_deref(), Some("shop-production"));
    assert_eq!(route_key("Shop-Staging.apps.example.com", "apps.example.com").as_deref(), Some("shop-staging"));
    assert_eq!(route_key("localhost:7780", "localhost"), None);
    assert_eq!(route_key("a.b.localhost", "localhost"), None);
    assert_eq!(route_key("shop-production.example.org", "localhost"), None);
    assert_eq!(route_key("<b>x</b>-production.localhost", "localhost"), None);
}

#[test]
fn hop_by_hop_headers_stay_with_their_connection() {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret, x-forwarded-for"));
    headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    headers.insert("x-secret", HeaderValue::from_static("1"));
    headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    strip_hop_by_hop(&mut headers, false);
    let left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(left, ["accept"]);

    let mut upgrade = axum::http::HeaderMap::new();
    upgrade.insert(header::CONNECTION, HeaderValue::from_static("Upgrade, keep-alive"));
    upgrade.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    strip_hop_by_hop(&mut upgrade, true);
    assert_eq!(upgrade.get(header::CONNECTION).map(|v| v.as_bytes()), Some(&b"upgrade"[..]));
    assert_eq!(upgrade.get(header::UPGRADE).map(|v| v.as_bytes()), Some(&b"websocket"[..]));
}

/// The replicas one request would try, in order.
fn turn(routes: &Routes, key: &str) -> Option<Vec<SocketAddr>> {
    let mut start = None;
    let mut addrs = Vec::new();
    loop {
        match routes.pick(key, &addrs, &mut start) {
            Pick::Unknown => return None,
            Pick::Exhausted(_) => return Some(addrs),
            Pick::Replica(in_flight, _) => addrs.push(in_flight.link.addr),
        }
    }
}

#[test]
fn picks_round_robin() {
    let routes = Routes::default();
    let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
    routes.set("shop-production", vec![a, b]);
    assert_eq!(turn(&routes, "shop-production"), Some(vec![a, b]));
    assert_eq!(turn(&routes, "shop-production"), Some(vec![b, a]));
    assert_eq!(turn(&routes, "nope"), None);
    routes.set("empty", vec![]);
    assert_eq!(turn(&routes, "empty"), Some(vec![]));
}

#[test]
fn a_retry_asks_the_table_as_it_is_now() {
    let routes = Routes::default();
    let (a, b, c) =
        ("127.0.0.1:1".parse().expect("a"), "127.0.0.1:2".parse().expect("b"), "127.0.0.1:3".parse().expect("c"));
    routes.set("shop-production", vec![a, b]);
    let mut start = None;
    let Pick::Replica(first, _) = routes.pick("shop-production", &[], &mut start) else { panic!("routed") };
    let tried = [first.link.addr];
    // A reconcile replaced the table meanwhile: the retry goes to what is routed now
    // and not yet tried, however short the new table is.
    routes.set("shop-production", vec![tried[0], c]);
    let Pick::Replica(next, _) = routes.pick("shop-production", &tried, &mut start) else { panic!("c is left") };
    assert_eq!(next.link.addr, c);
    routes.set("shop-production", vec![tried[0]]);
    assert!(matches!(routes.pick("shop-production", &tried, &mut start), Pick::Exhausted(_)));
}

#[tokio::test]
async fn a_replica_leaving_the_table_drains_what_it_has() {
    let routes = Routes::default();
    let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().expect("a"), "127.0.0.1:2".parse().expect("b"));
    routes.set("shop-production", vec![a]);
    let Pick::Replica(request, _) = routes.pick("shop-production", &[], &mut None) else { panic!("a is routed") };
    assert_eq!(routes.in_flight(a), 1, "counted from the pick");
    // The route moves to b: a gets nothing new, and its drain waits for its request.
    routes.set("shop-production", vec![b]);
    assert_eq!(turn(&routes, "shop-production"), Some(vec![b]));
    assert_eq!(routes.drain(a, Duration::from_millis(50)).await, 1, "still in flight at the timeout");
    let drained = tokio::spawn({
        let routes = Arc::new(routes);
        let waiting = routes.clone();
        async move { (waiting.drain(a, Duration::from_secs(10)).await, routes) }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(request);
    let (left, routes) = drained.await.expect("drain");
    assert_eq!(left, 0, "drained once the request ended");
    // Nothing holds a's link any more: it (and its pool) is gone.
    assert_eq!(routes.in_flight(a), 0);
    routes.set("other", vec![]);
    assert!(!crate::locked(&routes.links).contains_key(&a), "a's link is dropped");
    // A drain of an address a route names (a new replica got a dead one's port) leaves
    // it serving.
    let Pick::Replica(held, _) = routes.pick("shop-production", &[], &mut None) else { panic!("b is routed") };
    assert_eq!(routes.drain(b, Duration::from_secs(10)).await, 0, "b is not retiring: nothing to wait for");
    drop(held);
    assert_eq!(turn(&routes, "shop-production"), Some(vec![b]), "b still serves");
}

/// A replica that answers the first request on each connection, then reads the next
/// one and closes the connection without answering (an app closing a kept-alive
/// connection as the router reuses it). Answers its address.
async fn closing_replica() -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                for answered in [true, false] {
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body).await;
                    if answered {
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
                        let _ = reader.get_mut().write_all(ok).await;
                    }
                }
                // Dropped: closed under the second request.
            });
        }
    });
    addr
}

/// Sends one request through a router on `router` and answers its status code.
async fn status_of(router: SocketAddr, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(router).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_kept_alive_connection_closed_under_a_get_is_retried_but_never_under_a_post() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![closing_replica().await]);
    let router = router_for(routes).await;
    // One client connection, so one router thread and its pool serve every request.
    let mut client = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
    let get = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n";
    let post = "POST / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 2\r\n\r\nhi";
    // The first request opens the router's pooled connection; the second reuses it,
    // and the replica closes it unanswered: a GET goes again on a fresh connection.
    client.get_mut().write_all(get.as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut client).await.0, 200);
    client.get_mut().write_all(get.as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut client).await.0, 200, "the GET was sent again");
    // The POST reuses that fresh connection, which the replica closes under it too: it
    // could have been acted on, so the client gets the error, not a second POST.
    client.get_mut().write_all(post.as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut client).await.0, 502, "a POST is never sent twice");
}

/// A replica that answers a POST with 413 as soon as its head has come, without reading
/// its body (and keeps the connection open reading on), and a GET with 200. Answers its
/// address.
async fn early_answer_replica() -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut post = false;
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    post |= line.starts_with("POST ");
                    if line == "\r\n" {
                        let answer: &[u8] = if post {
                            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
                        };
                        let _ = reader.get_mut().write_all(answer).await;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_upload_the_app_answered_early_holds_up_no_other_request() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![early_answer_replica().await]);
    let router = router_for(routes).await;
    // An upload that stops after 10 of its 1,000 bytes: the app has answered it, and the
    // router's connection to the app is still sending it.
    let mut upload = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
    let head = "POST / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 1000\r\n\r\n";
    upload.get_mut().write_all(format!("{head}0123456789").as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut upload).await.0, 413);
    // Connections go to the router threads in turn: one of these is served by the
    // upload's thread, whose pool must not hand it the busy connection.
    for _ in 0..serve::threads() {
        let mut client = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
        let get = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n";
        client.get_mut().write_all(get.as_bytes()).await.expect("write");
        let answered = tokio::time::timeout(Duration::from_secs(5), response_on(&mut client)).await;
        assert_eq!(answered.ok().map(|(status, _)| status), Some(200), "a GET waited behind the upload");
    }
}

#[tokio::test]
async fn a_replica_that_never_answers_gets_a_gateway_timeout() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![echo_replica().await]);
    let router = router_for(routes).await;
    let mut client = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
    client.get_mut().write_all(b"GET /hang HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n").await.expect("write");
    let answered = tokio::time::timeout(ANSWER_WITHIN * 5, response_on(&mut client)).await;
    assert_eq!(answered.ok().map(|(status, _)| status), Some(504));
}

#[test]
fn only_idempotent_requests_without_a_body_are_sent_again() {
    assert!(retryable(&Method::GET, &Body::empty()));
    assert!(retryable(&Method::PUT, &Body::empty()));
    assert!(retryable(&Method::DELETE, &Body::empty()));
    assert!(!retryable(&Method::POST, &Body::empty()), "POST is not idempotent");
    assert!(!retryable(&Method::PUT, &Body::from("x")), "a body may have been read");
    assert!(!retryable(&Method::PATCH, &Body::empty()));
}

/// What a test replica saw happen to its connections.
#[derive(Debug, PartialEq)]
enum Seen {
    Opened,
    Closed,
}

/// A keep-alive replica answering every request with its body (none to a HEAD); tells
/// `seen` when a connection opens and ends. Answers its address.
async fn keep_alive_replica(seen: tokio::sync::mpsc::UnboundedSender<Seen>) -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let _ = seen.send(Seen::Opened);
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let (mut length, mut head) = (0, false);
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let lower = line.to_ascii_lowercase();
                    head |= lower.starts_with("head ");
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).await.is_err() {
                            break;
                        }
                        let mut answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n").into_bytes();
                        if !head {
                            answer.extend_from_slice(&body);
                        }
                        let _ = reader.get_mut().write_all(&answer).await;
                        (length, head) = (0, false);
                    }
                    line.clear();
                }
                let _ = seen.send(Seen::Closed);
            });
        }
    });
    addr
}

/// Starts a router for `routes` on a free port: its address.
async fn router_for(routes: Arc<Routes>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let router = listener.local_addr().expect("addr");
    tokio::spawn(serve::serve(listener, routes, "localhost", CancellationToken::new()));
    router
}

#[tokio::test]
async fn connections_to_a_replica_are_reused_then_closed_when_idle() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let (seen, mut replica_saw) = tokio::sync::mpsc::unbounded_channel();
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![keep_alive_replica(seen).await]);
    let router = router_for(routes).await;
    let mut client = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
    // Bodies, none, a HEAD (whose body the server never reads): one connection serves all.
    for (request, body) in [
        ("GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n", ""),
        ("PUT / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 5\r\n\r\nhello", "hello"),
        ("HEAD / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n", ""),
        ("POST / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 2\r\n\r\nhi", "hi"),
    ] {
        client.get_mut().write_all(request.as_bytes()).await.expect("write");
        let (status, answered) = if request.starts_with("HEAD") {
            (response_head_on(&mut client).await, String::new())
        } else {
            response_on(&mut client).await
        };
        assert_eq!((status, answered.as_str()), (200, body), "{request}");
    }
    assert_eq!(replica_saw.recv().await, Some(Seen::Opened));
    assert!(replica_saw.try_recv().is_err(), "the replica saw a second connection");
    // Idle for longer than the pool keeps a connection: the router closes it.
    let closed = tokio::time::timeout(pool::POOL_IDLE * 4, replica_saw.recv()).await;
    assert_eq!(closed.ok().flatten(), Some(Seen::Closed), "the idle connection was kept");
}

#[tokio::test]
async fn a_request_of_any_method_goes_to_the_next_replica_when_one_refuses() {
    let (seen, _replica_saw) = tokio::sync::mpsc::unbounded_channel();
    let refusing = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![refusing, keep_alive_replica(seen).await]);
    let router = router_for(routes).await;
    // Round-robin: one of two requests starts at the refusing replica. Nothing was sent
    // to it, so even a POST with a body goes on, whole.
    for _ in 0..2 {
        let mut client = tokio::io::BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
        let post = "POST / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 5\r\n\r\nhello";
        tokio::io::AsyncWriteExt::write_all(client.get_mut(), post.as_bytes()).await.expect("write");
        assert_eq!(response_on(&mut client).await, (200, "hello".to_owned()));
    }
}

#[tokio::test]
async fn a_drain_closes_the_replicas_idle_connections_at_once_and_keeps_its_traffic() {
    let (seen, mut replica_saw) = tokio::sync::mpsc::unbounded_channel();
    let replica = keep_alive_replica(seen).await;
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![replica]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let router = listener.local_addr().expect("addr");
    tokio::spawn(serve::serve(listener, routes.clone(), "localhost", CancellationToken::new()));
    let get = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(status_of(router, get).await, 200);
    // The router keeps its connection to the replica alive, idle in the pool.
    assert_eq!(replica_saw.recv().await, Some(Seen::Opened));
    let kept = tokio::time::timeout(Duration::from_millis(300), replica_saw.recv()).await;
    assert!(kept.is_err(), "the pooled connection closed by itself");

    // A request is still streaming its response (its connection is its own).
    let Pick::Replica(mut streaming, _) = routes.pick("shop-production", &[], &mut None) else { panic!("routed") };
    drop(streaming.pool.take());

    // The replica is retired: its idle connection closes now, not when the stream ends
    // or 30 s later.
    routes.remove("shop-production");
    assert_eq!(routes.drain(replica, Duration::from_millis(200)).await, 1, "the stream is in flight");
    let ended = tokio::time::timeout(Duration::from_millis(500), replica_saw.recv()).await;
    assert_eq!(ended.ok().flatten(), Some(Seen::Closed), "the idle pooled connection outlived the start of the drain");
    drop(streaming);
    assert_eq!(routes.drain(replica, Duration::from_secs(5)).await, 0);

    // What the removed route counted waits for the next take.
    let taken = routes.take_traffic();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!((taken[0].0.as_str(), taken[0].1.requests), ("shop-production", 1));
    assert!(routes.take_traffic().is_empty(), "taken once");
}

/// A replica that answers each request with the `X-Forwarded-For` it got, `/slow` after
/// 300 ms, `/hang` never, and an upgrade with 101, then echoes what it is sent (to `/close`: says "bye"
/// and closes). Answers its address.
async fn echo_replica() -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let (mut forwarded, mut slow, mut upgrade, mut close) = (String::new(), false, false, false);
                let mut line = String::new();
                while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let lower = line.to_ascii_lowercase();
                    slow |= lower.starts_with("get /slow ");
                    close |= lower.starts_with("get /close ");
                    if lower.starts_with("get /hang ") {
                        std::future::pending::<()>().await;
                    }
                    upgrade |= lower.starts_with("upgrade:");
                    if let Some(value) = lower.strip_prefix("x-forwarded-for:") {
                        forwarded = value.trim().to_owned();
                    }
                    if line == "\r\n" {
                        if slow {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                        }
                        if upgrade {
                            let switch =
                                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
                            let _ = reader.get_mut().write_all(switch).await;
                            if close {
                                let _ = reader.get_mut().write_all(b"bye").await;
                                return;
                            }
                            let (mut read, mut write) = tokio::io::split(reader);
                            let _ = tokio::io::copy(&mut read, &mut write).await;
                            return;
                        }
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", forwarded.len());
                        let _ = reader.get_mut().write_all(format!("{head}{forwarded}").as_bytes()).await;
                        (forwarded, slow) = (String::new(), false);
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// Reads one response (head and a `Content-Length` body) off a kept-alive connection:
/// its status code and body.
async fn response_on(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> (u16, String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let (mut status, mut length) = (0, 0);
    let mut line = String::new();
    while stream.read_line(&mut line).await.expect("read") > 0 && line != "\r\n" {
        if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
            status = code[..3].parse().expect("status");
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("length");
        }
        line.clear();
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads a response head off a kept-alive connection (a HEAD's: no body follows): its
/// status code.
async fn response_head_on(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> u16 {
    use tokio::io::AsyncBufReadExt;
    let mut status = 0;
    let mut line = String::new();
    while stream.read_line(&mut line).await.expect("read") > 0 && line != "\r\n" {
        if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
            status = code[..3].parse().expect("status");
        }
        line.clear();
    }
    status
}

#[tokio::test]
async fn router_threads_serve_connections_and_let_them_finish_at_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![echo_replica().await]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let router = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(serve::serve(listener, routes, "localhost", shutdown.clone()));
    let connect = || async { BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect")) };

    // Connections go to every router thread in turn; each knows its client's address.
    let mut idle = connect().await;
    for _ in 0..=serve::threads() {
        let mut client = connect().await;
        let get = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n";
        client.get_mut().write_all(get.as_bytes()).await.expect("write");
        assert_eq!(response_on(&mut client).await, (200, "127.0.0.1".to_owned()));
    }
    idle.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n").await.expect("write");
    assert_eq!(response_on(&mut idle).await.0, 200);
    let mut upgraded = connect().await;
    let upgrade = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
    upgraded.get_mut().write_all(upgrade.as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut upgraded).await.0, 101);
    let mut slow = connect().await;
    slow.get_mut().write_all(b"GET /slow HTTP/1.1\r\nHost: shop-production.localhost\r\n\r\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;

    // At shutdown the request in flight is answered, the idle connection closes, and the
    // upgraded one carries on: the router waits for it.
    shutdown.cancel();
    assert_eq!(response_on(&mut slow).await, (200, "127.0.0.1".to_owned()), "answered after the shutdown began");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "the idle connection was closed: {closed:?}");
    upgraded.get_mut().write_all(b"ping").await.expect("write");
    let mut echoed = [0; 4];
    upgraded.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"ping", "the upgraded connection still carries bytes");
    assert!(!served.is_finished(), "the router stopped under an upgraded connection");
    drop(upgraded);
    let stopped = tokio::time::timeout(Duration::from_secs(5), served).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the router stopped once its connections closed: {stopped:?}");
}

#[tokio::test]
async fn a_client_trickling_a_request_head_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![echo_replica().await]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let router = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(serve::serve(listener, routes, "localhost", shutdown.clone()));
    let started = tokio::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(router).await.expect("connect");
    let mut loris = tokio::net::TcpStream::connect(router).await.expect("connect");
    loris.write_all(b"GET / HTTP/1.1\r\nHost: shop-production.localhost\r\n").await.expect("write");
    // Each header line could come just in time; the whole head has a deadline.
    let trickled = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = Vec::new();
        loop {
            let _ = loris.write_all(b"X-Slow: 1\r\n").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), loris.read_to_end(&mut rest)).await {
                return n;
            }
        }
    })
    .await;
    assert!(trickled.is_ok(), "the trickling connection was left open for {:?}", started.elapsed());
    assert!(started.elapsed() >= serve::HEAD_TIMEOUT, "closed before the deadline");
    let mut rest = Vec::new();
    let silence = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut rest)).await;
    assert!(silence.is_ok(), "the silent connection was left open");
    shutdown.cancel();
}

#[tokio::test]
async fn an_upgraded_connection_the_replica_closed_ends_even_if_the_client_never_does() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
    let replica = echo_replica().await;
    let routes = Arc::new(Routes::default());
    routes.set("shop-production", vec![replica]);
    let router = router_for(routes.clone()).await;
    let mut client = BufReader::new(tokio::net::TcpStream::connect(router).await.expect("connect"));
    let upgrade =
        "GET /close HTTP/1.1\r\nHost: shop-production.localhost\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
    client.get_mut().write_all(upgrade.as_bytes()).await.expect("write");
    assert_eq!(response_on(&mut client).await.0, 101);
    // The replica said goodbye and closed; the client is told (end of stream) and keeps
    // its side open.
    let mut said = Vec::new();
    client.read_to_end(&mut said).await.expect("read");
    assert_eq!(said, b"bye");
    assert_eq!(routes.in_flight(replica), 1, "waiting for the client to close its side");
    // It never does: the router lets go after the linger.
    let deadline = tokio::time::Instant::now() + HALF_CLOSED_LINGER * 5;
    while routes.in_flight(replica) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the half-closed connection was held past the linger");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
