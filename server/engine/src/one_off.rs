//! One-off containers (the release phase): run a command once in the release's image,
//! stream its output, answer its exit code, and remove the container however it ends.

use crate::EngineError;
use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder};
use futures_util::StreamExt;

use crate::LocalEngine;

/// How long the output stream may stay open once the engine has said the command ended.
/// Podman's followed log stream learns of the exit from its event log, and that can be
/// missed (its event subscription races the container's end), leaving the stream open
/// forever; Docker's ends at once. Past this, the output is read once, unfollowed.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(2);

impl LocalEngine {
    /// Runs `command` once in a new container of `image` (the release phase): streams its
    /// output into `on_line`, answers its exit code, and removes it. A command still
    /// running after `within` is killed and fails.
    pub async fn run_once(
        &self,
        image: &str,
        command: &str,
        env: &[(String, String)],
        labels: HashMap<String, String>,
        within: Duration,
        mut on_line: impl FnMut(&str),
    ) -> Result<i64, EngineError> {
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            // The repository owner's own command, run by a shell inside their own image,
            // as a Procfile line would be; it never touches a shell on this host.
            cmd: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()]),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            // On the network, so a migration reaches the add-ons.
            host_config: Some(HostConfig {
                network_mode: self.network().await?,
                ..crate::isolation::confined(None, None)
            }),
            ..ContainerCreateBody::default()
        };
        let name = format!("slipway-release-{}", crate::random_node_id());
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker()
            .create_container(Some(options), body)
            .await
            .map_err(EngineError::api(format!("creating {name}")))?;
        // Removed however this ends: also when the run is cancelled or its lease lost and
        // this future is dropped mid-way.
        let mut removal = RemoveOnDrop { docker: self.docker().clone(), id: created.id.clone() };
        let result = tokio::time::timeout(within, async {
            self.docker()
                .start_container(&created.id, None)
                .await
                .map_err(EngineError::api(format!("starting {name}")))?;
            self.follow_to_the_end(&created.id, &mut on_line).await
        })
        .await
        .unwrap_or_else(|_| Err(EngineError::CommandTimedOut(within)));
        removal.now().await;
        result
    }

    /// Streams a started container's output line by line while waiting for its exit; the
    /// exit decides the end, not the output stream (see [`OUTPUT_AFTER_EXIT`]).
    async fn follow_to_the_end(&self, id: &str, on_line: &mut impl FnMut(&str)) -> Result<i64, EngineError> {
        let followed = LogsOptionsBuilder::new().follow(true).stdout(true).stderr(true).build();
        let mut output = self.streaming().logs(id, Some(followed));
        let mut wait = self.streaming().wait_container(id, None);
        let exit = wait.next();
        tokio::pin!(exit);
        let mut lines = Lines::default();
        let mut exited = None;
        // Until the output ends or the command does, whichever is first.
        loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(chunk)) => lines.feed(&chunk.to_string(), on_line),
                    _ => break,
                },
                done = &mut exit => {
                    exited = Some(exit_code(done));
                    break;
                }
            }
        }
        let code = match exited {
            Some(code) => {
                let drained = tokio::time::timeout(OUTPUT_AFTER_EXIT, async {
                    while let Some(Ok(chunk)) = output.next().await {
                        lines.feed(&chunk.to_string(), on_line);
                    }
                })
                .await;
                if drained.is_err() {
                    tracing::debug!(container = id, "the followed output outlived the command; reading it once");
                    drop(output);
                    let once = LogsOptionsBuilder::new().stdout(true).stderr(true).build();
                    let mut all = self.streaming().logs(id, Some(once));
                    let mut text = String::new();
                    while let Some(Ok(chunk)) = all.next().await {
                        text.push_str(&chunk.to_string());
                    }
                    lines.catch_up(&text, on_line);
                    return code;
                }
                code
            }
            None => exit_code(exit.await),
        };
        lines.finish(on_line);
        code
    }
}

/// How the engine's wait answer reads as an exit code.
fn exit_code(
    done: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> Result<i64, EngineError> {
    match done {
        Some(Ok(done)) => Ok(done.status_code),
        // bollard reports a non-zero exit as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(err)) => Err(EngineError::api("waiting for the command")(err)),
        None => Err(EngineError::NoExit),
    }
}

/// Output cut into lines as it arrives, counting those handed on so that a second,
/// complete reading can hand on only the rest.
#[derive(Default)]
struct Lines {
    pending: String,
    handed: usize,
}

impl Lines {
    fn feed(&mut self, text: &str, on_line: &mut impl FnMut(&str)) {
        self.pending.push_str(text);
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            on_line(line.trim_end());
            self.handed += 1;
        }
    }

    /// The last line, when the output did not end with a newline.
    fn finish(&mut self, on_line: &mut impl FnMut(&str)) {
        if !self.pending.is_empty() {
            on_line(self.pending.trim_end());
            self.pending.clear();
        }
    }

    /// Hands on what `all` (the whole output) holds past the lines handed on already.
    fn catch_up(self, all: &str, on_line: &mut impl FnMut(&str)) {
        for line in all.lines().skip(self.handed) {
            on_line(line.trim_end());
        }
    }
}

/// Force-removes a one-off container when dropped (in a task of its own, since `Drop`
/// cannot wait).
struct RemoveOnDrop {
    docker: bollard::Docker,
    id: String,
}

impl RemoveOnDrop {
    /// Removes it now, waiting (the normal end); nothing is left for the drop.
    async fn now(&mut self) {
        let remove = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = self.docker.remove_container(&self.id, Some(remove)).await;
        self.id.clear();
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let (docker, id) = (self.docker.clone(), std::mem::take(&mut self.id));
        if id.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let remove = RemoveContainerOptionsBuilder::new().force(true).build();
                if let Err(err) = docker.remove_container(&id, Some(remove)).await {
                    tracing::warn!(%err, container = %id, "removing a release command's container");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_reading_hands_on_only_what_the_first_did_not() {
        let mut seen = Vec::new();
        let mut lines = Lines::default();
        lines.feed("one\ntw", &mut |l: &str| seen.push(l.to_owned()));
        lines.catch_up("one\ntwo\nthree", &mut |l: &str| seen.push(l.to_owned()));
        assert_eq!(seen, ["one", "two", "three"]);
    }

    #[test]
    fn a_last_line_without_a_newline_is_handed_on() {
        let mut seen = Vec::new();
        let mut lines = Lines::default();
        lines.feed("a\r\nb", &mut |l: &str| seen.push(l.to_owned()));
        lines.finish(&mut |l: &str| seen.push(l.to_owned()));
        assert_eq!(seen, ["a", "b"]);
    }
}
