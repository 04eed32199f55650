//! An environment's traffic figures over the last hour: the stored minutes and what the
//! router counted since the last one.

use std::collections::HashMap;

use slipway_api::Traffic;
use slipway_core::traffic::Figures;
use slipway_store::environments::EnvironmentState;
use slipway_store::traffic::TrafficSum;

use crate::AppState;
use crate::clock::now_ms;

/// The window the figures cover: an hour, or less for a younger environment.
const WINDOW_MS: i64 = 3_600_000;

/// The first stored minute the window takes (Unix seconds) and when the window begins
/// (Unix ms): whole minutes from an hour ago, or all of a younger environment's.
fn window(now: i64, created_at: i64) -> (i64, i64) {
    let first_minute = (now - WINDOW_MS + 59_999).div_euclid(60_000) * 60;
    (first_minute, (first_minute * 1000).max(created_at))
}

/// One environment's figures (none when the router does not serve it).
pub(crate) async fn traffic_of(state: &AppState, env: &EnvironmentState) -> Option<Traffic> {
    if !state.engine.routed_here(env) {
        return None;
    }
    let now = now_ms();
    let (first_minute, _) = window(now, env.created_at);
    let stored = state.store.traffic_since(env.id, first_minute).await.unwrap_or_else(|err| {
        // The figures are a view: an environment still shows without them.
        tracing::warn!(%err, environment = env.id, "reading traffic figures");
        TrafficSum::default()
    });
    Some(figures_of(state, env, stored.figures, now))
}

/// The figures of each of a service's environments the router serves, by environment id,
/// in one query.
pub(crate) async fn traffic_of_each(
    state: &AppState,
    service_id: i64,
    envs: &[EnvironmentState],
) -> HashMap<i64, Traffic> {
    let now = now_ms();
    let (first_minute, _) = window(now, 0);
    let mut stored = state.store.service_traffic_since(service_id, first_minute).await.unwrap_or_else(|err| {
        tracing::warn!(%err, service = service_id, "reading traffic figures");
        HashMap::new()
    });
    envs.iter()
        .filter(|env| state.engine.routed_here(env))
        .map(|env| {
            let figures = stored.remove(&env.id).map(|s| s.figures).unwrap_or_default();
            (env.id, figures_of(state, env, figures, now))
        })
        .collect()
}

fn figures_of(state: &AppState, env: &EnvironmentState, mut figures: Figures, now: i64) -> Traffic {
    if let Some((live, _)) = state.engine.traffic_now(&env.service, &env.name) {
        figures.add(&live);
    }
    let (_, from) = window(now, env.created_at);
    let window_ms = (now - from).max(1000);
    Traffic {
        window_seconds: u64::try_from(window_ms / 1000).unwrap_or(0),
        requests: figures.requests,
        requests_per_second: figures.requests as f64 * 1000.0 / window_ms as f64,
        error_rate: figures.error_rate(),
        p50_ms: figures.percentile_ms(0.5),
        p99_ms: figures.percentile_ms(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_last_hour_of_whole_minutes_or_the_environments_life() {
        let now = 10 * 3_600_000 + 30_500;
        // An hour ago is 9:00:30.5: minutes from 9:01 on, the window 59 min 30.5 s.
        let (first, from) = window(now, 0);
        assert_eq!(first, 9 * 3600 + 60);
        assert_eq!(now - from, 3_570_500);
        // On a minute's turn that minute is whole in the window.
        assert_eq!(window(10 * 3_600_000, 0), (9 * 3600, 9 * 3_600_000));
        // Created ten minutes ago: its whole life.
        let created = now - 600_000;
        assert_eq!(window(now, created).1, created);
    }
}
