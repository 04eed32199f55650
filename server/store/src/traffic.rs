//! Per-environment traffic figures, a row per minute and replica of slipwayd.

use std::collections::HashMap;

use slipway_core::traffic::Figures;

use crate::{Result, Store, StoreError, on_pool};

/// One minute of one environment's traffic, as the router counted it.
#[derive(Debug, Clone)]
pub struct TrafficMinute {
    pub environment_id: i64,
    /// Unix seconds of the minute's start.
    pub minute: i64,
    pub figures: Figures,
}

/// An environment's figures summed over a period.
#[derive(Debug, Clone, Default)]
pub struct TrafficSum {
    pub figures: Figures,
    /// The earliest minute with a row (Unix seconds), if any.
    pub first_minute: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct MinuteRow {
    environment_id: i64,
    minute: i64,
    requests: i64,
    errors: i64,
    latency: String,
}

impl Store {
    /// Stores minutes of traffic, in one transaction; a minute of an environment destroyed
    /// meanwhile is skipped (the others are kept).
    pub async fn record_traffic(&self, minutes: &[TrafficMinute]) -> Result<()> {
        if minutes.is_empty() {
            return Ok(());
        }
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for m in minutes {
                sqlx::query(
                    "INSERT INTO traffic_minutes (environment_id, minute, requests, errors, latency) \
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM environments WHERE id = $1)",
                )
                .bind(m.environment_id)
                .bind(m.minute)
                .bind(i64::try_from(m.figures.requests).unwrap_or(i64::MAX))
                .bind(i64::try_from(m.figures.errors).unwrap_or(i64::MAX))
                .bind(m.figures.encode_buckets())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// An environment's figures from minute `since` (Unix seconds) on.
    pub async fn traffic_since(&self, environment_id: i64, since: i64) -> Result<TrafficSum> {
        let rows: Vec<MinuteRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT environment_id, minute, requests, errors, latency FROM traffic_minutes \
             WHERE environment_id = $1 AND minute >= $2")
            .bind(environment_id).bind(since)
            .fetch_all(pool).await)?;
        Ok(sums(rows)?.remove(&environment_id).unwrap_or_default())
    }

    /// The figures of each environment of a service from minute `since` on, by
    /// environment (those without minutes are absent).
    pub async fn service_traffic_since(&self, service_id: i64, since: i64) -> Result<HashMap<i64, TrafficSum>> {
        let rows: Vec<MinuteRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT environment_id, minute, requests, errors, latency FROM traffic_minutes \
             WHERE environment_id IN (SELECT id FROM environments WHERE service_id = $1) AND minute >= $2")
            .bind(service_id).bind(since)
            .fetch_all(pool).await)?;
        sums(rows)
    }

    /// Removes the minutes before `before` (Unix seconds); answers how many went.
    pub async fn prune_traffic(&self, before: i64) -> Result<u64> {
        Ok(on_pool!(self, pool => sqlx::query("DELETE FROM traffic_minutes WHERE minute < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?)
    }
}

/// Minutes summed by environment.
fn sums(rows: Vec<MinuteRow>) -> Result<HashMap<i64, TrafficSum>> {
    let mut sums: HashMap<i64, TrafficSum> = HashMap::new();
    for row in rows {
        let buckets = Figures::decode_buckets(&row.latency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sum = sums.entry(row.environment_id).or_default();
        sum.figures.add(&Figures {
            requests: u64::try_from(row.requests).unwrap_or(0),
            errors: u64::try_from(row.errors).unwrap_or(0),
            buckets,
        });
        sum.first_minute = Some(sum.first_minute.map_or(row.minute, |first| first.min(row.minute)));
    }
    Ok(sums)
}
