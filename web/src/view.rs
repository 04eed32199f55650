//! Shapes the API's types into what a page shows: short times, durations, status
//! classes, and the rows the templates loop over.

use slipway_api::{Environment, Run};

/// `2026-11-27T04:50:12.345Z` → `2026-11-27 04:50`.
pub fn short_time(rfc3339: &str) -> String {
    rfc3339.get(..16).unwrap_or(rfc3339).replace('T', " ")
}

/// `950 ms`, `12.3 s`, `4 m 05 s`, `3 h 20 m`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let secs = ms / 1000;
    match ms {
        ..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} m {:02} s", secs / 60, secs % 60),
        3_600_000..86_400_000 => format!("{} h {:02} m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} d {} h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

pub fn optional_duration(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), duration)
}

/// The CSS class of a run or stage status (as the API words it).
pub fn status_class(status: &str) -> &'static str {
    use slipway_core::run::{RunStatus, StageStatus};
    match (status.parse::<RunStatus>(), status.parse::<StageStatus>()) {
        (Ok(RunStatus::Succeeded), _) => "ok",
        (Ok(RunStatus::Failed), _) => "bad",
        (Ok(RunStatus::Running | RunStatus::Preparing | RunStatus::Queued), _) | (_, Ok(StageStatus::Pending)) => {
            "busy"
        }
        _ => "idle",
    }
}

/// A run as a table row.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub trigger: String,
    pub git_ref: String,
    pub commit: String,
    pub actor: String,
    pub status: String,
    pub class: &'static str,
    pub created: String,
    pub duration: String,
    pub reason: String,
}

impl From<&Run> for RunRow {
    fn from(run: &Run) -> Self {
        RunRow {
            id: run.id,
            service: run.service.clone(),
            environment: run.environment.clone().unwrap_or_default(),
            trigger: run.trigger.clone(),
            git_ref: run.git_ref.trim_start_matches("refs/heads/").to_owned(),
            commit: run.commit.chars().take(10).collect(),
            actor: run.actor.clone(),
            status: run.status.clone(),
            class: status_class(&run.status),
            created: short_time(&run.created_at),
            duration: optional_duration(run.duration_ms),
            reason: run.reason.clone(),
        }
    }
}

/// An environment as a table row, with its health in words.
#[derive(Debug, Clone)]
pub struct EnvRow {
    pub service: String,
    pub name: String,
    pub url: String,
    pub release: String,
    pub replicas: u32,
    pub healthy: u32,
    pub health: &'static str,
    pub class: &'static str,
    pub template: String,
    pub branch: String,
    pub runtime: String,
    pub preview: bool,
    pub pinned: bool,
    pub expires: String,
    /// On a cluster, a Deployment condition that is false (empty when none).
    pub condition: String,
}

impl EnvRow {
    pub fn new(service: &str, env: &Environment) -> Self {
        let (health, class) = match (env.release, env.healthy_replicas, env.replicas) {
            (None, _, _) => ("not deployed", "idle"),
            (Some(_), h, r) if h >= r && r > 0 => ("healthy", "ok"),
            (Some(_), 0, r) if r > 0 => ("down", "bad"),
            (Some(_), _, 0) => ("scaled to zero", "idle"),
            _ => ("degraded", "busy"),
        };
        EnvRow {
            service: service.to_owned(),
            name: env.name.clone(),
            url: env.url.clone(),
            release: env.release.map_or_else(|| "–".to_owned(), |v| format!("v{v}")),
            replicas: env.replicas,
            healthy: env.healthy_replicas,
            health,
            class,
            template: env.template.clone(),
            branch: env.branch.clone(),
            runtime: env.runtime.clone(),
            preview: env.preview,
            pinned: env.pinned,
            expires: env.expires_at.as_deref().map(short_time).unwrap_or_default(),
            condition: env.condition.clone().unwrap_or_default(),
        }
    }
}

/// An environment's traffic figures in words.
#[derive(Debug, Clone)]
pub struct TrafficView {
    /// `the last hour` or `the last 12 minutes`.
    pub window: String,
    pub requests: u64,
    pub per_second: String,
    pub errors: String,
    pub p50: String,
    pub p99: String,
}

impl From<&slipway_api::Traffic> for TrafficView {
    fn from(t: &slipway_api::Traffic) -> TrafficView {
        let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.1} ms"));
        let minutes = t.window_seconds.div_ceil(60);
        TrafficView {
            window: match minutes {
                60.. => "the last hour".to_owned(),
                1 => "the last minute".to_owned(),
                m => format!("the last {m} minutes"),
            },
            requests: t.requests,
            per_second: format!("{:.2}", t.requests_per_second),
            errors: t.error_rate.map_or_else(|| "–".to_owned(), |r| format!("{:.1} %", r * 100.0)),
            p50: ms(t.p50_ms),
            p99: ms(t.p99_ms),
        }
    }
}

/// DORA figures in words, for a metrics panel.
#[derive(Debug, Clone)]
pub struct DoraView {
    pub days: u32,
    pub deployments: u32,
    pub per_day: String,
    pub lead_time: String,
    pub failure_rate: String,
    pub failures: u32,
    pub restore: String,
    pub chart: String,
}

impl DoraView {
    pub fn new(m: &slipway_api::DoraMetrics) -> Self {
        DoraView {
            days: m.days,
            deployments: m.deployments,
            per_day: format!("{:.2}", m.deployments_per_day),
            lead_time: optional_duration(m.lead_time_ms),
            failure_rate: m.change_failure_rate.map_or_else(|| "–".to_owned(), |r| format!("{:.0} %", r * 100.0)),
            failures: m.failures,
            restore: optional_duration(m.time_to_restore_ms),
            chart: crate::svg::bar_chart(&m.daily_deployments, &format!("Deployments per day, last {} days", m.days)),
        }
    }
}

/// The `?cursor=` link of the next page, keeping the other query parameters.
pub fn next_link(path: &str, params: &[(&str, &str)], cursor: Option<&str>) -> Option<String> {
    let cursor = cursor?;
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        url.append_pair(key, value);
    }
    url.append_pair("cursor", cursor);
    Some(format!("{path}?{}", url.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(950), "950 ms");
        assert_eq!(duration(12_345), "12.3 s");
        assert_eq!(duration(245_000), "4 m 05 s");
        assert_eq!(duration(12_000_000), "3 h 20 m");
        assert_eq!(duration(187_200_000), "2 d 4 h");
    }

    #[test]
    fn next_links_keep_filters_and_encode_them() {
        assert_eq!(
            next_link("/catalog", &[("q", "a&b"), ("team", "")], Some("c1")).as_deref(),
            Some("/catalog?q=a%26b&cursor=c1")
        );
        assert_eq!(next_link("/catalog", &[], None), None);
    }
}
