//! Container lists and inspects, and the few engine calls outside the Docker model bollard
//! speaks. Podman names container states that model lacks (`stopped`, between a stop and
//! its cleanup; `configured`; `initialized`), and bollard then refuses a whole list or
//! inspect: a deploy failed on it. So these are read as JSON, each state mapped to the
//! Docker state it is, and only then into bollard's types.

use crate::EngineError;
use std::collections::HashMap;

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::LocalEngine;

/// The Docker API version the reads ask for (Podman and Docker both serve it).
const API: &str = "/v1.41";
/// How long one read may take: a hung engine fails the step, never blocks it.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The Docker state a container state is: Podman's own names mapped, anything unknown
/// left empty (which the model allows) rather than failing the read.
fn docker_state(state: &str) -> &str {
    match state {
        "created" | "running" | "paused" | "restarting" | "exited" | "removing" | "dead" | "stopping" => state,
        "stopped" => "exited",
        "configured" | "initialized" => "created",
        _ => "",
    }
}

/// Maps the state at `pointer` in `value`, if it is there.
fn normalise(value: &mut Value, pointer: &str) {
    if let Some(state) = value.pointer_mut(pointer)
        && let Some(text) = state.as_str()
    {
        *state = Value::String(docker_state(text).to_owned());
    }
}

/// A list's JSON as bollard's summaries.
fn summaries(mut list: Value) -> Result<Vec<ContainerSummary>, EngineError> {
    for container in list.as_array_mut().into_iter().flatten() {
        normalise(container, "/State");
    }
    serde_json::from_value(list).map_err(|source| EngineError::Unreadable { what: "container list", source })
}

/// An inspect's JSON as bollard's response.
fn inspected(mut info: Value) -> Result<ContainerInspectResponse, EngineError> {
    normalise(&mut info, "/State/Status");
    serde_json::from_value(info).map_err(|source| EngineError::Unreadable { what: "container", source })
}

impl LocalEngine {
    /// The containers (running ones, or `all`) carrying every label in `labels`.
    pub async fn list_containers(&self, all: bool, labels: &[String]) -> Result<Vec<ContainerSummary>, EngineError> {
        // Strings in a map: serializing it cannot fail.
        let filters = serde_json::to_string(&HashMap::from([("label", labels)])).unwrap_or_default();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("all", if all { "true" } else { "false" })
            .append_pair("filters", &filters)
            .finish();
        summaries(self.get_json(&format!("{API}/containers/json?{query}")).await?)
    }

    /// One container, in any state; an error when the engine does not have it.
    pub async fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, EngineError> {
        let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        inspected(self.get_json(&format!("{API}/containers/{id}/json")).await?)
    }

    /// One GET to the engine's API, answered as JSON; a status other than 2xx is an error.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, EngineError> {
        let Ok(request) = hyper::Request::get(path)
            .header(hyper::header::HOST, "engine")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
        else {
            // Paths are built here from encoded parts; one that is not a URI is a bug.
            return Err(EngineError::Address(path.to_owned()));
        };
        let call = async {
            let response = if let Some(socket) = self.url().strip_prefix("unix://") {
                send(tokio::net::UnixStream::connect(socket).await.map_err(EngineError::Connect)?, request).await?
            } else {
                let addr = self.url().trim_start_matches("tcp://").trim_start_matches("http://");
                let addr = addr.split('/').next().unwrap_or(addr);
                send(tokio::net::TcpStream::connect(addr).await.map_err(EngineError::Connect)?, request).await?
            };
            let status = response.status();
            let body = response.into_body().collect().await.map_err(EngineError::Http)?.to_bytes();
            if !status.is_success() {
                return Err(EngineError::Status { path: path.split('?').next().unwrap_or(path).to_owned(), status });
            }
            serde_json::from_slice(&body).map_err(|source| EngineError::Unreadable { what: "answer", source })
        };
        tokio::time::timeout(READ_TIMEOUT, call).await.unwrap_or_else(|_| Err(EngineError::TimedOut(READ_TIMEOUT)))
    }
}

/// Sends one request on a new HTTP/1 connection.
async fn send<S>(
    stream: S,
    request: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, EngineError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(EngineError::Http)?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(EngineError::Http)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn podman_states_read_as_the_docker_states_they_are() {
        let list = json!([
            {"Id": "a", "State": "running", "Labels": {"k": "v"}},
            {"Id": "b", "State": "stopped"},
            {"Id": "c", "State": "configured"},
            {"Id": "d", "State": "something-new"},
        ]);
        let read = summaries(list).expect("a list with Podman's states reads");
        let states: Vec<String> = read.iter().map(|c| c.state.map(|s| s.to_string()).unwrap_or_default()).collect();
        assert_eq!(states, ["running", "exited", "created", ""]);
        assert_eq!(read[0].labels.as_ref().and_then(|l| l.get("k")).map(String::as_str), Some("v"));

        let info = inspected(json!({"Id": "b", "State": {"Status": "stopped", "Running": false}})).expect("reads");
        let state = info.state.expect("state");
        assert_eq!(state.status.map(|s| s.to_string()).as_deref(), Some("exited"));
        assert_eq!(state.running, Some(false));
    }

    #[test]
    fn bollard_alone_refuses_them() {
        // Why this module exists: the model fails on Podman's `stopped`.
        let err = serde_json::from_value::<Vec<ContainerSummary>>(json!([{"Id": "b", "State": "stopped"}]));
        assert!(err.unwrap_err().to_string().contains("unknown variant `stopped`"));
    }
}
