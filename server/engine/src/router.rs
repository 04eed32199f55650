//! The app router: serves each environment at `http://<service>-<env>.<base domain>`,
//! forwarding to its healthy replicas round-robin. A refused connection is retried on
//! the next replica for requests without a body (GET, HEAD, OPTIONS); bodies stream both
//! ways; upgraded connections (websockets) are spliced through once the replica answers
//! 101. Built on hyper's client and axum's server, so no HTTP is parsed here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Which replicas serve which environment, keyed `<service>-<env>`.
#[derive(Debug, Default)]
pub struct Routes {
    table: RwLock<HashMap<String, Arc<Backends>>>,
}

#[derive(Debug)]
struct Backends {
    addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    /// When the environment last got a request (Unix ms; 0: not since the route was set).
    last_request: AtomicI64,
}

impl Routes {
    /// Points `key` at `addrs` (an empty list makes it answer 503).
    pub fn set(&self, key: &str, addrs: Vec<SocketAddr>) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        // Keep the activity of a route whose replicas change.
        let last = table.get(key).map_or(0, |b| b.last_request.load(Ordering::Relaxed));
        let backends = Backends { addrs, next: AtomicUsize::new(0), last_request: AtomicI64::new(last) };
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
        self.table.read().unwrap_or_else(|e| e.into_inner()).get(key).map(|b| b.addrs.clone())
    }

    /// The replicas to try for one request, starting with the next in turn; `None` for
    /// an unknown environment.
    fn pick(&self, key: &str) -> Option<Vec<SocketAddr>> {
        let backends = self.table.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()?;
        backends.last_request.store(crate::now_ms(), Ordering::Relaxed);
        let n = backends.addrs.len();
        if n == 0 {
            return Some(Vec::new());
        }
        let start = backends.next.fetch_add(1, Ordering::Relaxed) % n;
        Some((0..n).map(|i| backends.addrs[(start + i) % n]).collect())
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
    client: Client<HttpConnector, Body>,
}

/// The router as an axum app.
pub fn app(routes: Arc<Routes>, base_domain: &str) -> axum::Router {
    let mut connector = HttpConnector::new();
    // As on the listening side: no Nagle delay on small writes to replicas.
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build::<_, Body>(connector);
    let state = RouterState { routes, base_domain: Arc::from(base_domain), client };
    axum::Router::new().fallback(forward).with_state(state)
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
    let Some(backends) = state.routes.pick(&key) else {
        return page(StatusCode::NOT_FOUND, "No such app", &format!("No environment is deployed at {key}."));
    };
    if backends.is_empty() {
        return unavailable(&key);
    }
    let retryable = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let (mut parts, body) = request.into_parts();
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
    for addr in &backends {
        let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
            return page(StatusCode::BAD_REQUEST, "Bad request", "The request path is not valid.");
        };
        let mut outgoing = Request::from_parts(parts.clone(), body.take().unwrap_or_else(Body::empty));
        *outgoing.uri_mut() = uri;
        match state.client.request(outgoing).await {
            Ok(mut response) => {
                // By class (2xx…5xx): an app chooses its status codes, and each would be a series.
                let class = format!("{}xx", response.status().as_u16() / 100);
                metrics::counter!("slipway_router_requests_total", "environment" => key.clone(), "status" => class)
                    .increment(1);
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(splice(client_upgrade, backend_upgrade));
                } else {
                    strip_hop_by_hop(response.headers_mut(), false);
                }
                return response.into_response();
            }
            Err(err) if retryable && err.is_connect() => {
                tracing::debug!(%err, %addr, "replica refused; trying the next");
                continue;
            }
            Err(err) => {
                tracing::warn!(%err, %addr, environment = %key, "forwarding to a replica");
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

/// Copies bytes both ways between an upgraded client connection and the replica's.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
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

    #[test]
    fn picks_round_robin() {
        let routes = Routes::default();
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        routes.set("shop-production", vec![a, b]);
        assert_eq!(routes.pick("shop-production"), Some(vec![a, b]));
        assert_eq!(routes.pick("shop-production"), Some(vec![b, a]));
        assert_eq!(routes.pick("nope"), None);
        routes.set("empty", vec![]);
        assert_eq!(routes.pick("empty"), Some(vec![]));
    }
}
