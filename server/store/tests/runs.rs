//! The run queue on both databases: what the state machine allows is what the store
//! does, a claim hands each run to exactly one of many competing replicas, and a run's
//! stages end with it.

use std::collections::HashSet;

use slipway_core::run::{PUSH_STAGES, RunStatus, StageStatus};
use slipway_store::StoreError;
use slipway_store::runs::NewRun;
use slipway_store::testing::Fresh;

const ENVIRONMENTS: usize = 6;

fn run(service: i64, environment: i64, status: RunStatus, node: Option<&str>) -> NewRun<'_> {
    NewRun {
        service_id: service,
        environment_id: Some(environment),
        trigger: "push",
        git_ref: "refs/heads/main",
        commit_sha: "0123456789abcdef0123456789abcdef01234567",
        actor: "admin",
        node,
        status,
        reason: "",
        stages: PUSH_STAGES,
        commit_at: None,
    }
}

async fn the_queue_follows_the_state_machine(fresh: Fresh) {
    let store = &fresh.store;
    let (service, envs) = slipway_store::testing::environments(store, ENVIRONMENTS).await;

    // A newer waiting run of an environment supersedes its older waiting ones.
    let older = store.create_run(&run(service, envs[0], RunStatus::Queued, None), 10).await.expect("run");
    let newer = store.create_run(&run(service, envs[0], RunStatus::Preparing, Some("a")), 11).await.expect("run");
    assert_eq!(store.run_by_id(older).await.expect("older").status, RunStatus::Superseded);
    let stages = store.stages(newer).await.expect("stages");
    assert_eq!(stages.iter().map(|s| s.name).collect::<Vec<_>>(), PUSH_STAGES);
    assert!(stages.iter().all(|s| s.status == StageStatus::Pending), "{stages:?}");

    // Preparing is not claimable; queued with `unpin` it is, by any replica.
    assert_eq!(store.claim_run("b", 1_000, 12).await.expect("claim"), None, "a preparing run is not claimable");
    store.mark_queued(newer, true).await.expect("queue");
    let queued = store.run_by_id(newer).await.expect("run");
    assert_eq!((queued.status, queued.node), (RunStatus::Queued, None));
    assert_eq!(store.claim_run("b", 1_000, 13).await.expect("claim"), Some(newer));
    assert_eq!(store.run_by_id(newer).await.expect("run").node.as_deref(), Some("b"));

    // Only the holder ends it, only with an outcome, and only once; the stages end too.
    let refused = store.finish_run(newer, "b", RunStatus::Queued, "", 14).await;
    assert!(matches!(refused, Err(StoreError::Transition(_))), "{refused:?}");
    assert!(!store.finish_run(newer, "a", RunStatus::Succeeded, "", 14).await.expect("finish"), "not a's run");
    store.start_stage(newer, 0, 14).await.expect("stage");
    assert!(store.finish_run(newer, "b", RunStatus::Failed, "build failed", 15).await.expect("finish"));
    assert!(!store.finish_run(newer, "b", RunStatus::Succeeded, "", 16).await.expect("finish"), "ended already");
    let ended = store.run_by_id(newer).await.expect("run");
    assert_eq!((ended.status, ended.reason.as_str()), (RunStatus::Failed, "build failed"));
    let stages: Vec<StageStatus> = store.stages(newer).await.expect("stages").iter().map(|s| s.status).collect();
    assert_eq!(stages, [StageStatus::Failed, StageStatus::Skipped, StageStatus::Skipped]);

    // A pinned run waits for its replica; cancelling a waiting run ends it at once.
    let pinned = store.create_run(&run(service, envs[1], RunStatus::Queued, Some("a")), 20).await.expect("run");
    assert_eq!(store.claim_run("b", 1_000, 21).await.expect("claim"), None, "pinned to a");
    assert_eq!(store.request_cancel(pinned, 22).await.expect("cancel"), RunStatus::Cancelled);
    assert_eq!(store.claim_run("a", 1_000, 23).await.expect("claim"), None, "a cancelled run is not claimable");

    // A replica that stops renewing loses its run back to the queue, with its stages reset,
    // but not before its lease ran out, and only so often.
    let leased = store.create_run(&run(service, envs[2], RunStatus::Queued, None), 30).await.expect("run");
    assert_eq!(store.claim_run("a", 100, 31).await.expect("claim"), Some(leased));
    store.start_stage(leased, 0, 32).await.expect("stage");
    assert!(!store.requeue_expired_run(leased, 99, 2).await.expect("requeue"), "its lease runs to 100");
    assert!(store.requeue_expired_run(leased, 200, 2).await.expect("requeue"), "its lease ran out at 100");
    let requeued = store.run_by_id(leased).await.expect("run");
    assert_eq!((requeued.status, requeued.node), (RunStatus::Queued, None));
    let stages: Vec<StageStatus> = store.stages(leased).await.expect("stages").iter().map(|s| s.status).collect();
    assert_eq!(stages, [StageStatus::Pending; 3]);
    assert_eq!(store.claim_run("b", 300, 201).await.expect("claim"), Some(leased));
    assert!(!store.requeue_expired_run(leased, 400, 1).await.expect("requeue"), "taken over once already");

    // A stopping replica hands its run back at once (only its own), and ends the runs
    // waiting for it alone.
    assert!(!store.hand_back_run(leased, "a").await.expect("hand back"), "b holds it now");
    store.start_stage(leased, 0, 402).await.expect("stage");
    assert!(store.hand_back_run(leased, "b").await.expect("hand back"));
    let handed = store.run_by_id(leased).await.expect("run");
    assert_eq!((handed.status, handed.node), (RunStatus::Queued, None));
    let stages: Vec<StageStatus> = store.stages(leased).await.expect("stages").iter().map(|s| s.status).collect();
    assert_eq!(stages, [StageStatus::Pending; 3]);
    let waiting = store.create_run(&run(service, envs[3], RunStatus::Queued, Some("b")), 40).await.expect("run");
    let elsewhere = store.create_run(&run(service, envs[4], RunStatus::Queued, Some("c")), 41).await.expect("run");
    assert_eq!(store.end_waiting_runs_of("b", "stopping", 42).await.expect("end"), 1);
    let ended = store.run_by_id(waiting).await.expect("run");
    assert_eq!((ended.status, ended.reason.as_str()), (RunStatus::Failed, "stopping"));
    assert_eq!(store.run_by_id(elsewhere).await.expect("run").status, RunStatus::Queued, "c's run is c's");
    fresh.finish().await;
}

async fn competing_replicas_claim_each_run_exactly_once(fresh: Fresh) {
    let store = &fresh.store;
    let (service, envs) = slipway_store::testing::environments(store, ENVIRONMENTS).await;
    let mut ids = HashSet::new();
    for &env in &envs {
        ids.insert(store.create_run(&run(service, env, RunStatus::Queued, None), 10).await.expect("run"));
    }
    // Twelve replicas claim at once, each until the queue is empty.
    let claimers = (0..12).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut busy = 0;
            loop {
                match store.claim_run(&format!("node-{n}"), i64::MAX, 11).await {
                    Ok(Some(id)) => mine.push(id),
                    Ok(None) => return mine,
                    // SQLite answers a busy writer; the replica tries again, as a worker
                    // does, but a query that keeps failing fails the test.
                    Err(StoreError::Database(err)) if busy < 1000 => {
                        busy += 1;
                        pause_before_retry(&err).await;
                    }
                    Err(err) => panic!("claiming: {err}"),
                }
            }
        })
    });
    let mut claimed = Vec::new();
    for claimer in claimers.collect::<Vec<_>>() {
        claimed.extend(claimer.await.expect("claimer"));
    }
    claimed.sort_unstable();
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), unique.len(), "a run was claimed twice: {claimed:?}");
    assert_eq!(unique, ids, "every queued run was claimed");
    for id in ids {
        assert_eq!(store.run_by_id(id).await.expect("run").status, RunStatus::Running);
    }
    fresh.finish().await;
}

/// A moment's pause before trying a busy database again.
async fn pause_before_retry(_busy: &sqlx::Error) {
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_follows_the_state_machine_on_sqlite() {
    the_queue_follows_the_state_machine(Fresh::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_queue_follows_the_state_machine_on_postgres() {
    the_queue_follows_the_state_machine(Fresh::postgres("machine").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_replicas_claim_each_run_exactly_once_on_sqlite() {
    competing_replicas_claim_each_run_exactly_once(Fresh::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn competing_replicas_claim_each_run_exactly_once_on_postgres() {
    competing_replicas_claim_each_run_exactly_once(Fresh::postgres("claims").await).await;
}
