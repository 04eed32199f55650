//! The app router: serves each environment at `http://<service>-<env>.<base domain>`,
//! forwarding to its healthy replicas round-robin. Each replica has its own connection
//! pool and a count of the requests in flight to it (a response counts until its body has
//! been sent, an upgraded connection until it closes), so a replica leaving the table is
//! drained: it gets no new requests, is stopped only once what it serves is done (or a
//! drain timeout passes, [`Routes::drain`]), and its idle pooled connections close with
//! it. A connection error is retried on the next replica only for an idempotent request
//! without a body (nothing was sent, and nothing is lost by sending it again); bodies
//! stream both ways; upgraded connections (websockets) are spliced through once the
//! replica answers 101. Built on hyper's client and axum's server, so no HTTP is parsed
//! here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

/// Which replicas serve which environment, keyed `<service>-<env>`.
#[derive(Debug, Default)]
pub struct Routes {
    table: RwLock<HashMap<String, Arc<Backends>>>,
    /// Every replica a route names or a request or drain still holds, by address: one
    /// link each, shared by all routes naming it. Weak, so a link (and its pool) goes
    /// when the last of them lets go.
    links: Mutex<HashMap<SocketAddr, Weak<Link>>>,
}

#[derive(Debug)]
struct Backends {
    replicas: Vec<Arc<Link>>,
    next: AtomicUsize,
    /// When the environment last got a request (Unix ms; 0: not since the route was set).
    last_request: AtomicI64,
}

/// How long a pooled connection to a replica may stay idle.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// How many idle connections to one replica are kept.
const POOL_MAX_IDLE: usize = 32;
/// How many times one request is sent again after a kept-alive connection failed under
/// it (the app closed it as the router reused it).
const STALE_RETRIES: u32 = 2;

/// The router's side of one replica.
#[derive(Debug)]
struct Link {
    addr: SocketAddr,
    in_flight: AtomicUsize,
    /// Notified when `in_flight` drops to zero.
    idle: Notify,
    /// This replica's own pool: dropped with the link, which closes its idle connections.
    client: Client<HttpConnector, Body>,
}

impl Link {
    fn new(addr: SocketAddr) -> Link {
        let mut connector = HttpConnector::new();
        // As on the listening side: no Nagle delay on small writes to replicas.
        connector.set_nodelay(true);
        // Idle connections are bounded and reaped: a burst of slow requests must not pin
        // sockets (and an app's threads) to the replica for the rest of its life.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .build::<_, Body>(connector);
        Link { addr, in_flight: AtomicUsize::new(0), idle: Notify::new(), client }
    }
}

/// A request in flight to a replica: counted from when the replica was picked (under the
/// table's lock, so a drain that starts after the table changed sees it) until dropped.
#[derive(Debug)]
struct InFlight(Arc<Link>);

impl InFlight {
    fn new(link: &Arc<Link>) -> InFlight {
        link.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(link.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a request may be sent to.
enum Pick {
    /// No environment is routed at this key.
    Unknown,
    /// None left to try (none healthy, or every one refused).
    Exhausted,
    Replica(InFlight),
}

impl Routes {
    /// Points `key` at `addrs` (an empty list makes it answer 503). A replica no longer
    /// named gets no new requests; [`Routes::drain`] waits for the ones it has.
    pub fn set(&self, key: &str, addrs: Vec<SocketAddr>) {
        let replicas = {
            let mut links = crate::locked(&self.links);
            links.retain(|_, link| link.strong_count() > 0);
            addrs
                .into_iter()
                .map(|addr| {
                    if let Some(link) = links.get(&addr).and_then(Weak::upgrade) {
                        return link;
                    }
                    let link = Arc::new(Link::new(addr));
                    links.insert(addr, Arc::downgrade(&link));
                    link
                })
                .collect()
        };
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        // Keep the activity of a route whose replicas change.
        let last = table.get(key).map_or(0, |b| b.last_request.load(Ordering::Relaxed));
        let backends = Backends { replicas, next: AtomicUsize::new(0), last_request: AtomicI64::new(last) };
        table.insert(key.to_owned(), Arc::new(backends));
    }

    pub fn remove(&self, key: &str) {
        self.table.write().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// When `key` last got a request through the router (Unix ms), if it did.
    pub fn last_request(&self, key: &str) -> Option<i64> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(key).map(|b| b.last_request.load(Ordering::Relaxed)).filter(|at| *at > 0)
    }

    pub fn get(&self, key: &str) -> Option<Vec<SocketAddr>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(key).map(|b| b.replicas.iter().map(|l| l.addr).collect())
    }

    /// The requests in flight to a replica now.
    pub fn in_flight(&self, addr: SocketAddr) -> usize {
        crate::locked(&self.links).get(&addr).and_then(Weak::upgrade).map_or(0, |l| l.in_flight.load(Ordering::SeqCst))
    }

    /// Waits until a replica that no route names any more has no request in flight, at
    /// most `within`; answers how many were still in flight then (0: drained). Its idle
    /// pooled connections close once it is drained. Call it after the route changed.
    pub async fn drain(&self, addr: SocketAddr, within: Duration) -> usize {
        let Some(link) = crate::locked(&self.links).get(&addr).and_then(Weak::upgrade) else { return 0 };
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let idle = link.idle.notified();
            let left = link.in_flight.load(Ordering::SeqCst);
            if left == 0 {
                return 0;
            }
            tokio::select! {
                () = idle => {}
                () = tokio::time::sleep_until(deadline) => return link.in_flight.load(Ordering::SeqCst),
            }
        }
    }

    /// The next replica in turn for one request that `tried` none of yet, counted in
    /// flight before the table's lock is let go. `start` is the request's place in the
    /// turn, chosen at its first attempt. The table may have changed since an earlier
    /// attempt (a reconcile dropped a dead replica): the current one is asked.
    fn pick(&self, key: &str, tried: &[SocketAddr], start: &mut Option<usize>) -> Pick {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let Some(backends) = table.get(key) else { return Pick::Unknown };
        let n = backends.replicas.len();
        if tried.is_empty() {
            backends.last_request.store(crate::now_ms(), Ordering::Relaxed);
        }
        if n == 0 {
            return Pick::Exhausted;
        }
        let first = *start.get_or_insert_with(|| backends.next.fetch_add(1, Ordering::Relaxed));
        (0..n)
            .map(|i| &backends.replicas[(first + i) % n])
            .find(|link| !tried.contains(&link.addr))
            .map_or(Pick::Exhausted, |link| Pick::Replica(InFlight::new(link)))
    }
}

/// `shop-production.localhost:7780` → `shop-production`, for the configured base domain.
pub fn route_key(host: &str, base_domain: &str) -> Option<String> {
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    let key = host.strip_suffix(base_domain)?.strip_suffix('.')?;
    (!key.is_empty() && !key.contains('.')).then(|| key.to_ascii_lowercase())
}

#[derive(Clone)]
struct RouterState {
    routes: Arc<Routes>,
    base_domain: Arc<str>,
}

/// The router as an axum app.
pub fn app(routes: Arc<Routes>, base_domain: &str) -> axum::Router {
    let state = RouterState { routes, base_domain: Arc::from(base_domain) };
    axum::Router::new().fallback(forward).with_state(state)
}

/// Whether a client error means the connection closed before any answer came.
fn closed_under_it(err: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed();
        }
        source = cause.source();
    }
    false
}

/// Whether a request may be sent again after a connection error: an idempotent method
/// (RFC 9110 9.2.2) and no body, so nothing the app could have acted on was sent and
/// nothing is lost by sending it once more.
fn retryable(method: &Method, body: &Body) -> bool {
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE);
    idempotent && axum::body::HttpBody::size_hint(body).exact() == Some(0)
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p><p><small>Slipway app router</small></p></body></html>"
    );
    (status, Html(body)).into_response()
}

async fn forward(State(state): State<RouterState>, request: Request) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned).unwrap_or_default();
    let Some(key) = route_key(&host, &state.base_domain) else {
        return page(StatusCode::NOT_FOUND, "No such app", "Apps are served at http://SERVICE-ENVIRONMENT.<domain>.");
    };
    let mut start = None;
    let first = match state.routes.pick(&key, &[], &mut start) {
        Pick::Unknown => {
            return page(StatusCode::NOT_FOUND, "No such app", &format!("No environment is deployed at {key}."));
        }
        Pick::Exhausted => return unavailable(&key),
        Pick::Replica(first) => first,
    };
    let (mut parts, body) = request.into_parts();
    let retryable = retryable(&parts.method, &body);
    // A protocol upgrade (websockets): once the replica answers 101, the two connections
    // are spliced together.
    let client_upgrade = if parts.headers.contains_key(header::UPGRADE) {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let peer = parts.extensions.get::<axum::extract::ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, client_upgrade.is_some());
    if let Some(peer) = peer {
        let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {peer}"),
            None => peer,
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert("x-forwarded-for", value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&host) {
        headers.insert("x-forwarded-host", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));

    let mut body = Some(body);
    let mut attempt = Some(first);
    let mut tried = Vec::new();
    let mut stale_retries = 0;
    while let Some(in_flight) = attempt.take() {
        let link = in_flight.0.clone();
        let Ok(uri) = format!("http://{}{path}", link.addr).parse::<Uri>() else {
            return page(StatusCode::BAD_REQUEST, "Bad request", "The request path is not valid.");
        };
        let mut outgoing = Request::from_parts(parts.clone(), body.take().unwrap_or_else(Body::empty));
        *outgoing.uri_mut() = uri;
        match link.client.request(outgoing).await {
            Ok(mut response) => {
                // By class (2xx…5xx): an app chooses its status codes, and each would be a series.
                let class = format!("{}xx", response.status().as_u16() / 100);
                metrics::counter!("slipway_router_requests_total", "environment" => key.clone(), "status" => class)
                    .increment(1);
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    // In flight until the upgraded connection closes.
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(splice(client_upgrade, backend_upgrade, in_flight));
                    return response.into_response();
                }
                strip_hop_by_hop(response.headers_mut(), false);
                // In flight until the body has been sent (or the client went away).
                let (parts, incoming) = response.into_parts();
                let body = incoming.map_frame(move |frame| {
                    let _counted = &in_flight;
                    frame
                });
                return Response::from_parts(parts, Body::new(body));
            }
            Err(err) if retryable && err.is_connect() => {
                tracing::debug!(%err, addr = %link.addr, "replica refused; trying the next");
                drop(in_flight);
                tried.push(link.addr);
                match state.routes.pick(&key, &tried, &mut start) {
                    Pick::Replica(next) => attempt = Some(next),
                    Pick::Unknown | Pick::Exhausted => {}
                }
            }
            // A kept-alive connection the app closed as it was reused (an idle timeout):
            // nothing was answered, so the request goes again, on a fresh connection.
            Err(err) if retryable && stale_retries < STALE_RETRIES && closed_under_it(&err) => {
                tracing::debug!(%err, addr = %link.addr, "a pooled connection was closed; sending again");
                stale_retries += 1;
                drop(in_flight);
                match state.routes.pick(&key, &tried, &mut start) {
                    Pick::Replica(next) => attempt = Some(next),
                    Pick::Unknown | Pick::Exhausted => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, addr = %link.addr, environment = %key, "forwarding to a replica");
                return page(StatusCode::BAD_GATEWAY, "Bad gateway", "The app did not answer properly.");
            }
        }
    }
    unavailable(&key)
}

/// Removes the headers that describe one connection rather than the message (RFC 9110
/// 7.6.1): the standard ones and any the `Connection` header names, which a proxy must
/// not pass on (a client could otherwise make the router drop `X-Forwarded-For` by
/// naming it, or pass `Keep-Alive`/`TE` meant for the router to the app). An upgrade
/// keeps `Connection: upgrade` and `Upgrade`, which the replica needs to answer 101.
/// Written here because hyper leaves this to the proxy and no maintained crate does
/// only this.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap, upgrade: bool) {
    const HOP_BY_HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
    ];
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        if upgrade && name == "upgrade" {
            continue;
        }
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Copies bytes both ways between an upgraded client connection and the replica's; the
/// replica counts it in flight until it closes.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade, _in_flight: InFlight) {
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%err, "an upgraded connection did not complete");
            return;
        }
    };
    let mut client = hyper_util::rt::TokioIo::new(client);
    let mut backend = hyper_util::rt::TokioIo::new(backend);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut backend).await {
        tracing::debug!(%err, "an upgraded connection ended");
    }
}

fn unavailable(key: &str) -> Response {
    metrics::counter!("slipway_router_requests_total", "environment" => key.to_owned(), "status" => "5xx").increment(1);
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "App unavailable",
        &format!("No healthy replica of {key} is running right now."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_map_to_environments() {
        assert_eq!(route_key("shop-production.localhost:7780", "localhost").as_deref(), Some("shop-production"));
        assert_eq!(route_key("Shop-Staging.apps.example.com", "apps.example.com").as_deref(), Some("shop-staging"));
        assert_eq!(route_key("localhost:7780", "localhost"), None);
        assert_eq!(route_key("a.b.localhost", "localhost"), None);
        assert_eq!(route_key("shop-production.example.org", "localhost"), None);
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
                Pick::Exhausted => return Some(addrs),
                Pick::Replica(in_flight) => addrs.push(in_flight.0.addr),
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
        let Pick::Replica(first) = routes.pick("shop-production", &[], &mut start) else { panic!("routed") };
        let tried = [first.0.addr];
        // A reconcile replaced the table meanwhile: the retry goes to what is routed now
        // and not yet tried, however short the new table is.
        routes.set("shop-production", vec![tried[0], c]);
        let Pick::Replica(next) = routes.pick("shop-production", &tried, &mut start) else { panic!("c is left") };
        assert_eq!(next.0.addr, c);
        routes.set("shop-production", vec![tried[0]]);
        assert!(matches!(routes.pick("shop-production", &tried, &mut start), Pick::Exhausted));
    }

    #[tokio::test]
    async fn a_replica_leaving_the_table_drains_what_it_has() {
        let routes = Routes::default();
        let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().expect("a"), "127.0.0.1:2".parse().expect("b"));
        routes.set("shop-production", vec![a]);
        let Pick::Replica(request) = routes.pick("shop-production", &[], &mut None) else { panic!("a is routed") };
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
        assert_eq!(routes.drain(b, Duration::from_millis(10)).await, 0, "b has nothing in flight");
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
        let routes = Arc::new(Routes::default());
        routes.set("shop-production", vec![closing_replica().await]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let router = listener.local_addr().expect("addr");
        tokio::spawn(axum::serve(listener, app(routes, "localhost")).into_future());
        let get = "GET / HTTP/1.1\r\nHost: shop-production.localhost\r\nConnection: close\r\n\r\n";
        let post =
            "POST / HTTP/1.1\r\nHost: shop-production.localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        // The first request opens the router's pooled connection; the second reuses it,
        // and the replica closes it unanswered: a GET goes again on a fresh connection.
        assert_eq!(status_of(router, get).await, 200);
        assert_eq!(status_of(router, get).await, 200, "the GET was sent again");
        // The POST could have been acted on: the client gets the error, not a second POST.
        assert_eq!(status_of(router, get).await, 200);
        assert_eq!(status_of(router, post).await, 502, "a POST is never sent twice");
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
}
