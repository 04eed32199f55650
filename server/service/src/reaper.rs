//! Destroys environments past their TTL or idle longer than their idle TTL (previews,
//! and any environment created with `--ttl`). Time comes from the [`Clock`] slipwayd is
//! launched with, which tests move forward without waiting days.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::{AppState, environments};

/// How often expired environments are looked for.
pub const REAP_EVERY: Duration = Duration::from_secs(5);

pub async fn reap_loop(state: AppState, clock: Arc<dyn Clock>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        reap_once(&state, clock.now_ms()).await;
    }
}

/// Destroys what has expired at `now`; answers how many went.
pub async fn reap_once(state: &AppState, now: i64) -> usize {
    // Idle TTLs measure requests through the router: store its latest first.
    state.engine.flush_activity().await;
    let expired = match state.store.expired_environments(now).await {
        Ok(expired) => expired,
        Err(err) => {
            tracing::error!(%err, "listing expired environments");
            return 0;
        }
    };
    let mut reaped = 0;
    for env in expired {
        let why = if env.expires_at.is_some_and(|at| at <= now) { "its TTL ended" } else { "it was idle too long" };
        match environments::destroy(state, &env).await {
            Ok(()) => {
                reaped += 1;
                tracing::info!(service = %env.service, environment = %env.name, why, "destroyed an expired environment");
                let target = format!("/services/{}/environments/{}", env.service, env.name);
                let entry = slipway_store::audit::NewAuditEntry {
                    at: now,
                    actor: "slipway",
                    action: "destroy expired environment",
                    target: &target,
                    outcome: "success",
                    status: 200,
                };
                if let Err(err) = state.store.append_audit(&entry).await {
                    tracing::error!(%err, "writing the audit log");
                }
            }
            Err(err) => {
                tracing::warn!(err = %crate::error::chain(&err), environment = %env.name, "destroying an expired environment");
            }
        }
    }
    reaped
}
