//! DORA's four keys over a window of finished runs of long-lived environments:
//! deployment frequency, lead time for changes, change failure rate and time to restore.
//! Pure arithmetic over events the store reads, so each definition is tested here.

use crate::run::RunStatus;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// The windows the portal, the API and the CLI offer.
pub const WINDOWS: &[u32] = &[7, 30, 90];

/// One finished run of a non-preview environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub environment: i64,
    /// `push`, `deploy`, `rollback`, `promote`, `config` or `upgrade`.
    pub trigger: String,
    /// `succeeded` or `failed`.
    pub status: RunStatus,
    /// Whether the run reached its deploy stage (a failed build changed nothing).
    pub deployed: bool,
    pub commit_at: Option<i64>,
    pub created_at: i64,
    pub finished_at: i64,
}

impl Event {
    fn succeeded(&self) -> bool {
        self.status == RunStatus::Succeeded
    }

    /// A failed deploy, or a rollback: the change before it hurt.
    fn is_failure(&self) -> bool {
        (self.status == RunStatus::Failed && self.deployed) || (self.trigger == "rollback" && self.succeeded())
    }

    /// When the failure began: a failed deploy at its end; a rollback when it was asked for.
    fn failure_at(&self) -> i64 {
        if self.trigger == "rollback" { self.created_at } else { self.finished_at }
    }
}

/// The figures for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub days: u32,
    /// Successful deploys (new releases) in the window.
    pub deployments: u32,
    pub deployments_per_day: f64,
    /// Median time from commit to live, of the releases whose commit time is known.
    pub lead_time_ms: Option<i64>,
    /// Failed deploys and rollbacks over deploy attempts; none without attempts.
    pub change_failure_rate: Option<f64>,
    pub failures: u32,
    /// Median time from a failure to the next good release of the same environment.
    pub time_to_restore_ms: Option<i64>,
    /// Deployments per day, oldest day first (`days` entries).
    pub daily_deployments: Vec<u32>,
}

fn median(mut values: Vec<i64>) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2 })
}

/// Computes the metrics of the `days` days ending at `now` from events sorted by
/// `finished_at` (events outside the window are ignored).
pub fn compute(events: &[Event], now: i64, days: u32) -> Metrics {
    let start = now - i64::from(days) * DAY_MS;
    let in_window = || events.iter().filter(|e| e.finished_at >= start && e.finished_at <= now);
    let mut daily = vec![0u32; days as usize];
    let mut deployments = 0u32;
    let mut attempts = 0u32;
    let mut failures = 0u32;
    let mut lead_times = Vec::new();
    for event in in_window() {
        if event.succeeded() {
            deployments += 1;
            let day = ((event.finished_at - start) / DAY_MS).clamp(0, i64::from(days) - 1) as usize;
            if let Some(slot) = daily.get_mut(day) {
                *slot += 1;
            }
            if let Some(commit_at) = event.commit_at.filter(|_| matches!(event.trigger.as_str(), "push" | "deploy")) {
                lead_times.push((event.finished_at - commit_at).max(0));
            }
        }
        if event.succeeded() || event.deployed {
            attempts += 1;
        }
        if event.is_failure() {
            failures += 1;
        }
    }
    // Time to restore, per environment: a failure opens an outage that the next good
    // release closes (a rollback closes its own).
    let mut open: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let mut restores = Vec::new();
    for event in in_window() {
        if event.is_failure() {
            open.entry(event.environment).or_insert(event.failure_at());
        }
        if event.succeeded()
            && let Some(since) = open.remove(&event.environment)
        {
            restores.push((event.finished_at - since).max(0));
        }
    }
    Metrics {
        days,
        deployments,
        deployments_per_day: if days == 0 { 0.0 } else { f64::from(deployments) / f64::from(days) },
        lead_time_ms: median(lead_times),
        change_failure_rate: (attempts > 0).then(|| f64::from(failures) / f64::from(attempts)),
        failures,
        time_to_restore_ms: median(restores),
        daily_deployments: daily,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 100 * DAY_MS;

    fn event(env: i64, trigger: &str, status: &str, deployed: bool, finished_at: i64) -> Event {
        Event {
            environment: env,
            trigger: trigger.into(),
            status: status.parse().expect("a run status"),
            deployed,
            commit_at: None,
            created_at: finished_at - 60_000,
            finished_at,
        }
    }

    #[test]
    fn counts_deployments_per_day_in_the_window_only() {
        let events = vec![
            event(1, "push", "succeeded", true, NOW - 10 * DAY_MS), // outside 7 days
            event(1, "push", "succeeded", true, NOW - 6 * DAY_MS - 1),
            event(1, "push", "succeeded", true, NOW - 1000),
            event(1, "push", "succeeded", true, NOW - 500),
        ];
        let m = compute(&events, NOW, 7);
        assert_eq!(m.deployments, 3);
        assert_eq!(m.daily_deployments, vec![1, 0, 0, 0, 0, 0, 2]);
        assert!((m.deployments_per_day - 3.0 / 7.0).abs() < 1e-9);
        assert_eq!(compute(&events, NOW, 30).deployments, 4);
    }

    #[test]
    fn lead_time_is_the_median_from_commit_to_live_of_pushed_changes() {
        let mut a = event(1, "push", "succeeded", true, NOW - 1000);
        a.commit_at = Some(NOW - 1000 - 60_000);
        let mut b = event(1, "push", "succeeded", true, NOW - 500);
        b.commit_at = Some(NOW - 500 - 180_000);
        let mut c = event(1, "deploy", "succeeded", true, NOW - 100);
        c.commit_at = Some(NOW - 100 - 120_000);
        let mut rollback = event(1, "rollback", "succeeded", true, NOW - 50);
        rollback.commit_at = Some(0); // a redeploy of old code is not a change
        assert_eq!(compute(&[a, b, c, rollback], NOW, 7).lead_time_ms, Some(120_000));
    }

    #[test]
    fn change_failure_rate_counts_failed_deploys_and_rollbacks_but_not_failed_builds() {
        let events = vec![
            event(1, "push", "succeeded", true, NOW - 5000),
            event(1, "push", "failed", false, NOW - 4000), // build failed: nothing changed
            event(1, "push", "failed", true, NOW - 3000),  // deploy failed
            event(1, "push", "succeeded", true, NOW - 2000),
            event(1, "rollback", "succeeded", true, NOW - 1000),
        ];
        let m = compute(&events, NOW, 7);
        assert_eq!(m.failures, 2);
        assert_eq!(m.deployments, 3);
        assert_eq!(m.change_failure_rate, Some(2.0 / 4.0));
        assert_eq!(compute(&[], NOW, 7).change_failure_rate, None);
    }

    #[test]
    fn time_to_restore_runs_from_the_failure_to_the_next_good_release_of_that_environment() {
        let events = vec![
            event(1, "push", "failed", true, NOW - 10_000),
            event(2, "push", "succeeded", true, NOW - 9_000), // another environment: no restore
            event(1, "push", "failed", true, NOW - 8_000),    // still the same outage
            event(1, "push", "succeeded", true, NOW - 4_000), // restored after 6 s
        ];
        assert_eq!(compute(&events, NOW, 7).time_to_restore_ms, Some(6_000));
        // A rollback opens when it is asked for and closes when it is live.
        let rollback = event(1, "rollback", "succeeded", true, NOW - 1_000);
        assert_eq!(compute(&[rollback], NOW, 7).time_to_restore_ms, Some(60_000));
    }
}
