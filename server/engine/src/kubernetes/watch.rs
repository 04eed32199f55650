//! The watch of every registered cluster's Slipway-managed Deployments and Services:
//! changes wake the reconcile loop (drift is repaired at once, not at the next tick), and
//! the Deployments' replica counts are kept for environments' status.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use slipway_core::template::WEB;

use super::manifests;
use crate::Engine;

/// Watches the Slipway-managed Deployments and Services of every registered cluster and
/// wakes the reconcile loop when one changes or goes, so drift is repaired at once rather
/// than at the next tick (which stays as the backstop when a watch is down).
pub(crate) async fn watch_clusters(engine: Engine) {
    // The per-cluster watches end with this loop (also when it panics and is restarted).
    struct Watches(HashMap<String, tokio::task::JoinHandle<()>>);
    impl Drop for Watches {
        fn drop(&mut self) {
            self.0.values().for_each(tokio::task::JoinHandle::abort);
        }
    }
    let mut watching = Watches(HashMap::new());
    loop {
        if let Ok(clusters) = engine.store().list_clusters().await {
            watching.0.retain(|name, task| {
                let keep = clusters.iter().any(|c| &c.name == name) && !task.is_finished();
                if !keep {
                    task.abort();
                    engine.forget_cluster(name);
                }
                keep
            });
            for cluster in clusters {
                if let std::collections::hash_map::Entry::Vacant(slot) = watching.0.entry(cluster.name.clone()) {
                    slot.insert(tokio::spawn(watch_cluster(engine.clone(), cluster.name)));
                }
            }
        }
        // Newly registered clusters are watched within this period.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn watch_cluster(engine: Engine, name: String) {
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::Service;
    use kube::runtime::WatchStreamExt;
    use kube::runtime::watcher::{self, Event};
    let Ok((client, _)) = engine.cluster_client(&name).await else { return };
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=slipway");
    // A Deployment's replica counts are kept for status; any change wakes the reconcile.
    let seen = engine.clone();
    let cluster = name.clone();
    // A re-list (after a broken watch) replaces the cluster's counts when it is complete
    // (Deployments gone meanwhile are dropped then, without a moment of zeros); errors
    // back off.
    let mut relisted: Option<HashSet<(String, String)>> = None;
    let deployments =
        watcher::watcher(Api::<Deployment>::all(client.clone()), config.clone()).default_backoff().map(move |event| {
            match event {
                Ok(Event::Init) => {
                    relisted = Some(HashSet::new());
                    false
                }
                Ok(Event::InitApply(d)) => {
                    if let Some(seen_now) = relisted.as_mut() {
                        seen_now.insert((
                            d.metadata.namespace.clone().unwrap_or_default(),
                            d.metadata.name.clone().unwrap_or_default(),
                        ));
                    }
                    seen.record_workload(&cluster, &d, false);
                    true
                }
                Ok(Event::InitDone) => {
                    if let Some(seen_now) = relisted.take() {
                        seen.retain_workloads(&cluster, &seen_now);
                    }
                    false
                }
                Ok(Event::Apply(d)) => {
                    seen.record_workload(&cluster, &d, false);
                    true
                }
                Ok(Event::Delete(d)) => {
                    seen.record_workload(&cluster, &d, true);
                    true
                }
                Err(err) => {
                    tracing::debug!(%err, %cluster, "watching a cluster's deployments");
                    false
                }
            }
        });
    let services = watcher::watcher(Api::<Service>::all(client), config).default_backoff().map(|event| match event {
        Ok(Event::Apply(_) | Event::Delete(_)) => true,
        Ok(_) => false,
        Err(err) => {
            tracing::debug!(%err, "watching a cluster's services");
            false
        }
    });
    let mut events = std::pin::pin!(futures_util::stream::select(deployments, services));
    while let Some(changed) = events.next().await {
        if changed {
            engine.reconcile_soon();
        }
    }
}

impl Engine {
    /// Drops what is known of a cluster no longer registered: its workloads' counts and
    /// its objects' clean drift checks.
    pub(crate) fn forget_cluster(&self, cluster: &str) {
        crate::locked(&self.clusters().workloads).retain(|(c, _, _), _| c != cluster);
        let prefix = format!("{cluster}/");
        crate::locked(&self.clusters().drift_settled).retain(|key, _| !key.starts_with(&prefix));
        self.clusters().clients.forget(cluster);
    }

    /// Keeps, of a cluster's workloads, those a complete re-list saw.
    fn retain_workloads(&self, cluster: &str, seen: &HashSet<(String, String)>) {
        let mut workloads = crate::locked(&self.clusters().workloads);
        workloads.retain(|(c, ns, name), _| c != cluster || seen.contains(&(ns.clone(), name.clone())));
    }

    fn record_workload(&self, cluster: &str, deployment: &Deployment, gone: bool) {
        let key = (
            cluster.to_owned(),
            deployment.metadata.namespace.clone().unwrap_or_default(),
            deployment.metadata.name.clone().unwrap_or_default(),
        );
        let mut workloads = crate::locked(&self.clusters().workloads);
        if gone {
            workloads.remove(&key);
            return;
        }
        let count = |n: Option<i32>| usize::try_from(n.unwrap_or(0)).unwrap_or(0);
        let desired = count(deployment.spec.as_ref().and_then(|s| s.replicas).or(Some(1)));
        let ready = count(deployment.status.as_ref().and_then(|s| s.ready_replicas));
        let condition = deployment.status.as_ref().and_then(|s| s.conditions.as_ref()).and_then(|conditions| {
            // A false condition (Available, Progressing), or ReplicaFailure, which is true
            // when pods cannot even be created (a quota, a policy).
            conditions.iter().find(|c| c.status == "False" || (c.type_ == "ReplicaFailure" && c.status == "True")).map(
                |c| {
                    let reason = c.reason.as_deref().unwrap_or("False");
                    match c.message.as_deref().filter(|m| !m.is_empty()) {
                        Some(message) => format!("{}: {reason}: {message}", c.type_),
                        None => format!("{}: {reason}", c.type_),
                    }
                },
            )
        });
        workloads.insert(key, crate::Workload { ready, desired, condition });
    }

    /// An environment's replicas on its cluster as the cluster's watch last saw them: its
    /// `web` Deployment's, or all its Deployments' together when it has no `web`. `None`
    /// before the watch has seen any.
    pub fn cluster_workloads(&self, cluster: &str, service: &str, environment: &str) -> Option<crate::Workload> {
        let ns = manifests::namespace_of(service, environment);
        let workloads = crate::locked(&self.clusters().workloads);
        if let Some(web) = workloads.get(&(cluster.to_owned(), ns.clone(), WEB.to_owned())) {
            return Some(web.clone());
        }
        let mut all = workloads.iter().filter(|((c, n, _), _)| c == cluster && *n == ns).map(|(_, w)| w).peekable();
        all.peek()?;
        Some(all.fold(crate::Workload::default(), |sum, w| crate::Workload {
            ready: sum.ready + w.ready,
            desired: sum.desired + w.desired,
            condition: sum.condition.or_else(|| w.condition.clone()),
        }))
    }
}
