//! The app router: serves each environment at `http://<service>-<env>.<base domain>`,
//! forwarding to its healthy replicas round-robin. Each replica has its own connection
//! pool and a count of the requests in flight to it (a response counts until its body has
//! been sent, an upgraded connection until it closes), so a replica leaving the table is
//! drained: it gets no new requests, is stopped only once what it serves is done (or a
//! drain timeout passes, [`Routes::drain`]), and its idle pooled connections close with
//! it. A connection error is retried on the next replica only for an idempotent request
//! without a body (nothing was sent, and nothing is lost by sending it again); bodies
//! stream both ways; upgraded connections (websockets) are spliced through once the
//! replica answers 101. Served on one single-threaded runtime per core ([`serve`]), each
//! with its own pools. Built on hyper's client and server, so no HTTP is parsed here.

mod pool;
mod serve;
mod table;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};

use pool::{Lent, Pool, Sender};
pub use serve::serve;
pub use table::Routes;
use table::{InFlight, Pick, STALE_RETRIES};

/// `shop-production.localhost:7780` → `shop-production`, for the configured base domain.
pub fn route_key(host: &str, base_domain: &str) -> Option<String> {
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    let key = host.strip_suffix(base_domain)?.strip_suffix('.')?;
    // Only what names can hold: anything else is no environment (and never reaches a page).
    let name_like = key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    (!key.is_empty() && name_like).then(|| key.to_ascii_lowercase())
}

/// What every router thread serves from.
#[derive(Clone)]
struct RouterState {
    routes: Arc<Routes>,
    base_domain: Arc<str>,
}

/// Whether a request may be sent again after its connection closed once it was written:
/// an idempotent method (RFC 9110 9.2.2) and no body, so nothing the app could have acted
/// on was sent and nothing is lost by sending it once more. (A request not yet written
/// when its connection failed goes again whatever it is.)
fn retryable(method: &Method, body: &Body) -> bool {
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE);
    idempotent && axum::body::HttpBody::size_hint(body).exact() == Some(0)
}

/// Whether an error means the connection closed (or was reset) before any answer came.
fn closed_under_it(err: &hyper::Error) -> bool {
    let reset = std::error::Error::source(err)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .is_some_and(|e| matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe));
    err.is_incomplete_message() || err.is_canceled() || err.is_closed() || reset
}

/// How long opening a connection to a replica may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// How long a replica may take to answer a request's head once it was sent (as nginx's
/// `proxy_read_timeout`): then the client gets 504 and the connection is closed; 1 s in
/// unit tests.
const ANSWER_WITHIN: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 60 });

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{text}</p><p><small>Slipway app router</small></p></body></html>"
    );
    (status, Html(body)).into_response()
}

/// The request counter's status label, by class: an app chooses its status codes, and
/// each would be a series.
const CLASSES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

async fn forward(state: &RouterState, peer: SocketAddr, request: Request) -> Response {
    let started = std::time::Instant::now();
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned).unwrap_or_default();
    let Some(key) = route_key(&host, &state.base_domain) else {
        return page(StatusCode::NOT_FOUND, "No such app", "Apps are served at http://SERVICE-ENVIRONMENT.<domain>.");
    };
    let mut start = None;
    // Only environments routed here are counted: a made-up host adds no series.
    let (response, tally) = match state.routes.pick(&key, &[], &mut start) {
        Pick::Unknown => {
            return page(StatusCode::NOT_FOUND, "No such app", &format!("No environment is deployed at {key}."));
        }
        Pick::Exhausted(tally) => (unavailable(&key), tally),
        Pick::Replica(first, tally) => (send(&state.routes, &key, &host, peer, first, start, request).await, tally),
    };
    let status = response.status();
    tally.record(status.as_u16(), started.elapsed());
    let class = CLASSES.get(usize::from(status.as_u16() / 100)).copied().unwrap_or("5xx");
    metrics::counter!("slipway_router_requests_total", "environment" => key, "status" => class).increment(1);
    response
}

/// An idle connection of this thread's to the replica that is ready for a request, or a
/// new one (`fresh`: always a new one). Never waits on a pooled one: a connection not
/// ready now (still sending an upload the app answered early, or closed) is let go.
async fn checkout(pool: &Pool, addr: SocketAddr, fresh: bool) -> std::io::Result<Sender> {
    if !fresh && let Some(sender) = pool.take() {
        return Ok(sender);
    }
    match tokio::time::timeout(CONNECT_WITHIN, pool::connect(addr)).await {
        Ok(connected) => connected,
        Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting took too long")),
    }
}

/// Sends a request to the replica picked first, and on to others as retries allow.
async fn send(
    routes: &Routes,
    key: &str,
    host: &str,
    peer: SocketAddr,
    first: InFlight,
    mut start: Option<usize>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let retryable = retryable(&parts.method, &body);
    // A protocol upgrade (websockets): once the replica answers 101, the two connections
    // are spliced together.
    let client_upgrade = if parts.headers.contains_key(header::UPGRADE) {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    // Origin form: a request in absolute form (as to a proxy) reaches the app as a path.
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = Uri::from(parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")));
    }
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers, client_upgrade.is_some());
    let peer = peer.ip().to_string();
    let forwarded = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", value);
    }
    if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert("x-forwarded-host", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));

    // Kept to send again should a connection close once it was written.
    let again = retryable.then(|| parts.clone());
    let mut request = Some(Request::from_parts(parts, body));
    let mut attempt = Some(first);
    let mut tried = Vec::new();
    let mut stale_retries = 0;
    let mut fresh = false;
    while let Some(mut in_flight) = attempt.take() {
        let addr = in_flight.link.addr;
        // Dropped once the head arrived (the iteration ends): see `InFlight`.
        let Some(pool) = in_flight.pool.take() else { return unavailable(key) };
        let mut sender = match checkout(&pool, addr, fresh).await {
            Ok(sender) => sender,
            // Nothing was sent: the request goes to the next replica, whatever it is.
            Err(err) => {
                tracing::debug!(%err, %addr, "replica refused; trying the next");
                drop(in_flight);
                tried.push(addr);
                if let Pick::Replica(next, _) = routes.pick(key, &tried, &mut start) {
                    attempt = Some(next);
                }
                fresh = false;
                continue;
            }
        };
        let Some(outgoing) = request.take() else { return bad_gateway() };
        let Ok(answered) = tokio::time::timeout(ANSWER_WITHIN, sender.try_send_request(outgoing)).await else {
            tracing::warn!(%addr, environment = %key, "a replica did not answer in time");
            return page(StatusCode::GATEWAY_TIMEOUT, "Gateway timeout", "The app did not answer in time.");
        };
        match answered {
            Ok(mut response) => {
                let lent = Lent::new(sender, Arc::downgrade(&pool));
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    // In flight until the upgraded connection closes (which is not reused).
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    serve::spawn(splice(client_upgrade, backend_upgrade, in_flight));
                    return response.into_response();
                }
                strip_hop_by_hop(response.headers_mut(), false);
                // In flight until the body has been sent (or the client went away).
                let (parts, body) = response.into_parts();
                return Response::from_parts(parts, Body::new(Answer { body, lent, _in_flight: in_flight }));
            }
            Err(mut err) => {
                let unsent = err.take_message();
                let err = err.into_error();
                if stale_retries < STALE_RETRIES
                    && let Some(resend) = unsent.or_else(|| {
                        let parts = again.as_ref().filter(|_| closed_under_it(&err))?;
                        Some(Request::from_parts(parts.clone(), Body::empty()))
                    })
                {
                    // A kept-alive connection the app closed as it was reused (an idle
                    // timeout): nothing was answered, and the request either was not
                    // written or may be sent twice; again, on a fresh connection.
                    tracing::debug!(%err, %addr, "a pooled connection was closed; sending again");
                    stale_retries += 1;
                    request = Some(resend);
                    in_flight.pool = Some(pool);
                    attempt = Some(in_flight);
                    fresh = true;
                    continue;
                }
                tracing::warn!(%err, %addr, environment = %key, "forwarding to a replica");
                return bad_gateway();
            }
        }
    }
    unavailable(key)
}

/// A replica's response body on its way to the client: the replica counts it in flight
/// until it is dropped, and its connection goes back to the pool once it has ended.
struct Answer {
    body: Incoming,
    lent: Lent,
    _in_flight: InFlight,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.lent.give_back();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> SizeHint {
        http_body::Body::size_hint(&self.body)
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        // A body the server never had to read (empty, or a HEAD's) has ended too.
        if http_body::Body::is_end_stream(&self.body) {
            self.lent.give_back();
        }
    }
}

fn bad_gateway() -> Response {
    page(StatusCode::BAD_GATEWAY, "Bad gateway", "The app did not answer properly.")
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

/// How long an upgraded connection the replica has closed waits for the client to close
/// its side too (a client that never does would otherwise hold it open for good); 1 s in
/// unit tests.
const HALF_CLOSED_LINGER: Duration = Duration::from_secs(if cfg!(test) { 1 } else { 30 });

/// Copies bytes both ways between an upgraded client connection and the replica's; the
/// replica counts it in flight until it closes. Once either side has closed, the other
/// is told so (its write half is shut); a client is given [`HALF_CLOSED_LINGER`] to
/// close its side too.
async fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade, _in_flight: InFlight) {
    use tokio::io::AsyncWriteExt as _;
    let (client, backend) = match tokio::try_join!(client, backend) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%err, "an upgraded connection did not complete");
            return;
        }
    };
    let (mut client_read, mut client_write) = tokio::io::split(hyper_util::rt::TokioIo::new(client));
    let (mut backend_read, mut backend_write) = tokio::io::split(hyper_util::rt::TokioIo::new(backend));
    let up = async {
        let copied = tokio::io::copy(&mut client_read, &mut backend_write).await;
        let _ = backend_write.shutdown().await;
        copied
    };
    let down = async {
        let copied = tokio::io::copy(&mut backend_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        copied
    };
    tokio::pin!(up, down);
    // A client that closed its side may still be sent what the replica streams (a drain
    // ends that); a replica that closed its side leaves the client the linger.
    let (first, other) = tokio::select! {
        copied = &mut up => (copied, Ok(down.await)),
        copied = &mut down => (copied, tokio::time::timeout(HALF_CLOSED_LINGER, up).await),
    };
    match (first, other) {
        (Err(err), _) | (_, Ok(Err(err))) => tracing::debug!(%err, "an upgraded connection ended"),
        (_, Err(_)) => tracing::debug!("an upgraded connection's other side did not close in time"),
        _ => {}
    }
}

fn unavailable(key: &str) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "App unavailable",
        &format!("No healthy replica of {key} is running right now."),
    )
}
