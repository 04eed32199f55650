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

mod serve;
mod table;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use http_body_util::BodyExt as _;

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
        Pick::Replica(first, tally) => (send(&state.routes, &key, &host, first, start, request).await, tally),
    };
    let status = response.status();
    tally.record(status.as_u16(), started.elapsed());
    // By class (2xx…5xx): an app chooses its status codes, and each would be a series.
    let class = format!("{}xx", status.as_u16() / 100);
    metrics::counter!("slipway_router_requests_total", "environment" => key, "status" => class).increment(1);
    response
}

/// Sends a request to the replica picked first, and on to others as retries allow.
async fn send(
    routes: &Routes,
    key: &str,
    host: &str,
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
    if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert("x-forwarded-host", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));

    let mut body = Some(body);
    let mut attempt = Some(first);
    let mut tried = Vec::new();
    let mut stale_retries = 0;
    while let Some(mut in_flight) = attempt.take() {
        let link = in_flight.link.clone();
        // Dropped once the head arrived (the iteration ends): see `InFlight`.
        let Some(client) = in_flight.client.take() else { return unavailable(key) };
        let Ok(uri) = format!("http://{}{path}", link.addr).parse::<Uri>() else {
            return page(StatusCode::BAD_REQUEST, "Bad request", "The request path is not valid.");
        };
        let mut outgoing = Request::from_parts(parts.clone(), body.take().unwrap_or_else(Body::empty));
        *outgoing.uri_mut() = uri;
        match client.request(outgoing).await {
            Ok(mut response) => {
                if response.status() == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    // In flight until the upgraded connection closes.
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    serve::spawn(splice(client_upgrade, backend_upgrade, in_flight));
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
                if let Pick::Replica(next, _) = routes.pick(key, &tried, &mut start) {
                    attempt = Some(next);
                }
            }
            // A kept-alive connection the app closed as it was reused (an idle timeout):
            // nothing was answered, so the request goes again, on a fresh connection.
            Err(err) if retryable && stale_retries < STALE_RETRIES && closed_under_it(&err) => {
                tracing::debug!(%err, addr = %link.addr, "a pooled connection was closed; sending again");
                stale_retries += 1;
                drop(in_flight);
                if let Pick::Replica(next, _) = routes.pick(key, &tried, &mut start) {
                    attempt = Some(next);
                }
            }
            Err(err) => {
                tracing::warn!(%err, addr = %link.addr, environment = %key, "forwarding to a replica");
                return page(StatusCode::BAD_GATEWAY, "Bad gateway", "The app did not answer properly.");
            }
        }
    }
    unavailable(key)
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
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "App unavailable",
        &format!("No healthy replica of {key} is running right now."),
    )
}
