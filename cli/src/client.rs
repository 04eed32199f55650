//! A typed client for the REST API, over slipway-api's types.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipway_api::{Page, Problem};

use crate::error::CliError;

/// Lists larger than this many pages are cut, so a runaway server cannot loop the CLI.
const MAX_PAGES: usize = 1000;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl Client {
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Transport(format!("cannot set up HTTP: {e}")))?;
        Ok(Client { http, server: server.to_owned(), token })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn with_token(&self, token: String) -> Self {
        Client { token: Some(token), ..self.clone() }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, CliError> {
        let url = format!("{}/api/v1{path}", self.server);
        let mut req = self.http.request(method, &url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await.map_err(|e| {
            CliError::Transport(format!("cannot reach the Slipway server at {}: {}", self.server, root_cause(&e)))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => Err(CliError::Api(problem)),
            Err(_) => Err(CliError::Transport(format!(
                "the server answered {status} to {url}; is {} a Slipway server?",
                self.server
            ))),
        }
    }

    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, CliError> {
        response.json::<T>().await.map_err(|e| CliError::Transport(format!("unexpected answer from the server: {e}")))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        Self::decode(self.send(Method::GET, path, None::<&()>).await?).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Self::decode(self.send(Method::POST, path, Some(body)).await?).await
    }

    pub async fn patch<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Self::decode(self.send(Method::PATCH, path, Some(body)).await?).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Self::decode(self.send(Method::PUT, path, Some(body)).await?).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), CliError> {
        let response = self.send(Method::DELETE, path, None::<&()>).await?;
        debug_assert!(response.status() == StatusCode::NO_CONTENT || response.status().is_success());
        Ok(())
    }

    /// Follows a server-sent-events endpoint, calling `on_event(name, data)` for each
    /// event until it returns false or the stream ends. SSE framing (`event:`/`data:`
    /// lines, a blank line ends an event) is a few lines, so it is parsed here rather
    /// than pulling in an SSE client built for another reqwest version.
    pub async fn follow_events(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), CliError> {
        use futures_util::StreamExt;
        let url = format!("{}/api/v1{path}", self.server);
        let mut req = self
            .http
            .get(&url)
            .header("accept", "text/event-stream")
            .timeout(std::time::Duration::from_secs(24 * 3600));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let response = req.send().await.map_err(|e| {
            CliError::Transport(format!("cannot reach the Slipway server at {}: {}", self.server, root_cause(&e)))
        })?;
        if !response.status().is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(serde_json::from_str::<Problem>(&text)
                .map(CliError::Api)
                .unwrap_or_else(|_| CliError::Transport(format!("unexpected answer from {url}"))));
        }
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        let (mut name, mut data) = (String::new(), String::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CliError::Transport(format!("the event stream broke: {e}")))?;
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() && !on_event(&name, &data) {
                        return Ok(());
                    }
                    name.clear();
                    data.clear();
                } else if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
        }
        Ok(())
    }

    /// Streams a text response, calling `on_line` for each line as it arrives.
    pub async fn stream_lines(&self, path: &str, mut on_line: impl FnMut(&str)) -> Result<(), CliError> {
        use futures_util::StreamExt;
        let response = self.send(Method::GET, path, None::<&()>).await?;
        let mut stream = response.bytes_stream();
        let mut pending = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CliError::Transport(format!("the log stream broke: {e}")))?;
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                on_line(line.trim_end_matches('\n'));
            }
        }
        if !pending.is_empty() {
            on_line(&pending);
        }
        Ok(())
    }

    /// Fetches every page of a list. `path` may already carry a query string.
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, CliError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page_path = match &cursor {
                None => format!("{path}{sep}limit=200"),
                Some(c) => format!("{path}{sep}limit=200&cursor={}", encode(c)),
            };
            let page: Page<T> = self.get(&page_path).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        Ok(items)
    }
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>().replace('+', "%20")
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
