//! `runs`, `logs` and `deploy`: pipeline runs, their logs (live with `-f`), and deploys
//! without a push.

use serde_json::Value;
use slipway_api::{CreateRun, LogPage, Page, Run};

use super::signed_in_client;
use crate::client::{Client, encode};
use crate::error::CliError;
use crate::output::{self, short_time};

fn seconds(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0))
}

fn short_commit(commit: &str) -> String {
    commit.chars().take(8).collect()
}

pub async fn list(service: String, json: bool) -> Result<(), CliError> {
    let page: Page<Run> = signed_in_client()?.get(&format!("/services/{}/runs?limit=30", encode(&service))).await?;
    if json {
        return output::json(&page.items);
    }
    print_runs(page.items);
    Ok(())
}

/// The runs table shared by `runs` and `status`.
pub fn print_runs(runs: Vec<Run>) {
    let rows = runs
        .into_iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.status,
                r.environment.unwrap_or_else(|| "-".to_owned()),
                r.git_ref.trim_start_matches("refs/heads/").to_owned(),
                short_commit(&r.commit),
                r.trigger,
                r.actor,
                short_time(&r.created_at),
                seconds(r.duration_ms),
            ]
        })
        .collect();
    output::table(&["id", "status", "env", "ref", "commit", "trigger", "by", "created", "took"], rows);
}

pub async fn show(id: i64, json: bool) -> Result<(), CliError> {
    let run: Run = signed_in_client()?.get(&format!("/runs/{id}")).await?;
    if json {
        return output::json(&run);
    }
    println!("run:         {}", run.id);
    println!("service:     {}", run.service);
    println!("environment: {}", run.environment.as_deref().unwrap_or("-"));
    println!(
        "status:      {}{}",
        run.status,
        if run.reason.is_empty() { String::new() } else { format!(" ({})", run.reason) }
    );
    println!("trigger:     {} by {}", run.trigger, run.actor);
    println!("ref:         {} @ {}", run.git_ref, short_commit(&run.commit));
    println!("image:       {}", run.image.as_deref().unwrap_or("-"));
    println!("created:     {}", short_time(&run.created_at));
    println!("took:        {}", seconds(run.duration_ms));
    println!();
    let rows = run.stages.into_iter().map(|s| vec![s.name, s.status, seconds(s.duration_ms)]).collect();
    output::table(&["stage", "status", "took"], rows);
    Ok(())
}

pub async fn cancel(id: i64) -> Result<(), CliError> {
    let run: Run = signed_in_client()?.post(&format!("/runs/{id}/cancel"), &serde_json::json!({})).await?;
    println!("Run {} is {}", run.id, if run.status == "running" { "stopping" } else { &run.status });
    Ok(())
}

/// The newest run of a service.
async fn latest(client: &Client, service: &str) -> Result<i64, CliError> {
    let page: Page<Run> = client.get(&format!("/services/{}/runs?limit=1", encode(service))).await?;
    page.items.first().map(|r| r.id).ok_or_else(|| {
        CliError::usage(format!("service {service} has no runs yet: push to it or run `slipway deploy`"))
    })
}

pub async fn logs(service: String, run: Option<i64>, follow: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let id = match run {
        Some(id) => id,
        None => latest(&client, &service).await?,
    };
    if follow {
        follow_run(&client, id).await.map(|_| ())
    } else {
        let page: LogPage = client.get(&format!("/runs/{id}/log")).await?;
        for line in page.lines {
            println!("{}", line.line);
        }
        Ok(())
    }
}

/// Prints a run's log live until it ends; answers its final status.
async fn follow_run(client: &Client, id: i64) -> Result<String, CliError> {
    let mut status = String::new();
    let mut reason = String::new();
    client
        .follow_events(&format!("/runs/{id}/events"), |name, data| {
            let event: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            match name {
                "log" => println!("{}", event["line"].as_str().unwrap_or_default()),
                "stage" => {
                    if let (Some(stage), Some(state)) = (event["name"].as_str(), event["status"].as_str())
                        && state != "running"
                    {
                        let took = event["duration_ms"].as_i64().map(|ms| format!(" in {:.2} s", ms as f64 / 1000.0));
                        eprintln!("-----> {stage} {state}{}", took.unwrap_or_default());
                    }
                }
                "finished" => {
                    status = event["status"].as_str().unwrap_or_default().to_owned();
                    reason = event["reason"].as_str().unwrap_or_default().to_owned();
                    return false;
                }
                _ => {}
            }
            true
        })
        .await?;
    if status.is_empty() {
        return Err(CliError::Transport(format!(
            "the event stream of run {id} ended early; see `slipway runs show {id}`"
        )));
    }
    if reason.is_empty() {
        eprintln!("-----> Run {id} {status}");
    } else {
        eprintln!("-----> Run {id} {status}: {reason}");
    }
    Ok(status)
}

/// Follows a run to its end; an unsuccessful end is an error (non-zero exit).
pub async fn follow_to_end(client: &Client, id: i64) -> Result<(), CliError> {
    let status = follow_run(client, id).await?;
    if status == "succeeded" { Ok(()) } else { Err(CliError::Transport(format!("run {id} {status}"))) }
}

pub async fn deploy(service: String, environment: String, git_ref: Option<String>) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let run: Run =
        client.post(&format!("/services/{}/runs", encode(&service)), &CreateRun { environment, git_ref }).await?;
    eprintln!(
        "-----> Run {} queued: {} {} @ {}",
        run.id,
        run.service,
        run.git_ref.trim_start_matches("refs/heads/"),
        short_commit(&run.commit)
    );
    let status = follow_run(&client, run.id).await?;
    if status == "succeeded" { Ok(()) } else { Err(CliError::Transport(format!("run {} {status}", run.id))) }
}
