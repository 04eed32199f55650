//! An environment's traffic figures over the last hour: the stored minutes and what the
//! router counted since the last one.

use slipway_api::Traffic;
use slipway_store::environments::EnvironmentState;

use crate::AppState;
use crate::clock::now_ms;

/// The window the figures cover: an hour, or less for a younger environment.
const WINDOW_MS: i64 = 3_600_000;

pub(crate) async fn traffic_of(state: &AppState, env: &EnvironmentState) -> Traffic {
    let now = now_ms();
    let from = (now - WINDOW_MS).max(env.created_at);
    let mut figures = match state.store.traffic_since(env.id, from.div_euclid(60_000) * 60).await {
        Ok(sum) => sum.figures,
        Err(err) => {
            // The figures are a view: an environment still shows without them.
            tracing::warn!(%err, environment = env.id, "reading traffic figures");
            Default::default()
        }
    };
    if let Some((live, _)) = state.engine.traffic_now(&env.service, &env.name) {
        figures.add(&live);
    }
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
