//! Per-environment traffic minutes on both databases: stored all together, summed from a
//! minute on, pruned by age, and gone with their environment.

use slipway_core::traffic::{Figures, bucket_of};
use slipway_store::testing::Fresh;
use slipway_store::traffic::TrafficMinute;

fn minute(environment_id: i64, minute: i64, requests: u64, errors: u64, ms: f64) -> TrafficMinute {
    let mut figures = Figures { requests, errors, ..Figures::default() };
    figures.buckets[bucket_of(ms)] = requests;
    TrafficMinute { environment_id, minute, figures }
}

async fn minutes_sum_prune_and_cascade(fresh: Fresh) {
    let store = &fresh.store;
    let (service, envs) = slipway_store::testing::environments(store, 2).await;
    let (a, b) = (envs[0], envs[1]);
    store
        .record_traffic(&[
            minute(a, 60, 10, 0, 1.0),
            minute(a, 120, 30, 3, 40.0),
            // Another replica of slipwayd, the same minute.
            minute(a, 120, 60, 0, 2.0),
            minute(b, 120, 5, 5, 900.0),
        ])
        .await
        .expect("record");
    let sum = store.traffic_since(a, 0).await.expect("sum");
    assert_eq!((sum.figures.requests, sum.figures.errors, sum.first_minute), (100, 3, Some(60)));
    assert_eq!(sum.figures.buckets.iter().sum::<u64>(), 100);
    let p99 = sum.figures.percentile_ms(0.99).expect("p99");
    assert!((40.0..48.0).contains(&p99), "p99 {p99}");
    let later = store.traffic_since(a, 120).await.expect("sum");
    assert_eq!((later.figures.requests, later.first_minute), (90, Some(120)));
    assert_eq!(store.traffic_since(b, 0).await.expect("sum").figures.errors, 5);

    // A minute of an environment destroyed meanwhile is skipped; the others are kept.
    store.record_traffic(&[minute(a, 180, 1, 0, 1.0), minute(9_999, 180, 1, 0, 1.0)]).await.expect("record");
    assert_eq!(store.traffic_since(a, 180).await.expect("sum").figures.requests, 1, "the batch was lost");
    assert_eq!(store.traffic_since(9_999, 0).await.expect("sum").figures.requests, 0);

    let each = store.service_traffic_since(service, 120).await.expect("each");
    assert_eq!((each[&a].figures.requests, each[&b].figures.requests), (91, 5));
    assert_eq!(each.len(), 2);
    assert_eq!(store.prune_traffic(120).await.expect("prune"), 1);
    assert_eq!(store.traffic_since(a, 0).await.expect("sum").first_minute, Some(120));
    store.delete_environment(b).await.expect("delete");
    assert_eq!(store.traffic_since(b, 0).await.expect("sum").figures.requests, 0, "kept after its environment");
    fresh.finish().await;
}

#[tokio::test]
async fn traffic_minutes_on_sqlite() {
    minutes_sum_prune_and_cascade(Fresh::sqlite().await).await;
}

#[tokio::test]
async fn traffic_minutes_on_postgres() {
    minutes_sum_prune_and_cascade(Fresh::postgres("traffic").await).await;
}
