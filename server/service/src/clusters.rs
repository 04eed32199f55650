//! Kubernetes clusters: admins register them (the kubeconfig is checked, then sealed like
//! a secret), everyone signed in lists them (to pick a runtime), and a cluster that still
//! runs environments cannot be removed.

use slipway_api::{AddCluster, Cluster};
use slipway_core::names::validate_name;
use slipway_core::policy::Action;
use slipway_engine::kubernetes::{cluster_seal_context, inspect_kubeconfig};
use slipway_store::StoreError;
use slipway_store::clusters::ClusterRow;

use crate::access::require_platform;
use crate::clock::{now_ms, rfc3339};
use crate::{Actor, AppState, Result, ServiceError};

/// The largest kubeconfig accepted.
pub const MAX_KUBECONFIG_BYTES: usize = 256 * 1024;

async fn to_api(state: &AppState, row: ClusterRow) -> Result<Cluster> {
    Ok(Cluster {
        environments: state.store.environments_on(&row.name).await?,
        name: row.name,
        context: row.context,
        server: row.server,
        base_domain: row.base_domain,
        ingress_class: row.ingress_class,
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
    })
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 200
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

pub async fn add_cluster(state: &AppState, actor: &Actor, req: AddCluster) -> Result<Cluster> {
    require_platform(actor, Action::AdministerPlatform)?;
    validate_name(&req.name).map_err(|e| ServiceError::invalid_name("name", &req.name, e))?;
    if req.name == slipway_engine::LOCAL_RUNTIME {
        return Err(ServiceError::invalid("name", "\"local\" names the machine's own engine; choose another name"));
    }
    if req.kubeconfig.len() > MAX_KUBECONFIG_BYTES {
        return Err(ServiceError::invalid(
            "kubeconfig",
            format!("the kubeconfig is larger than {MAX_KUBECONFIG_BYTES} bytes"),
        ));
    }
    let target = inspect_kubeconfig(&req.kubeconfig, req.context.as_deref())
        .map_err(|e| ServiceError::invalid("kubeconfig", e.to_string()))?;
    let base_domain = req.base_domain.clone().unwrap_or_else(|| state.settings.apps_domain.clone());
    if !valid_domain(&base_domain) {
        return Err(ServiceError::invalid(
            "base_domain",
            format!("{base_domain:?} is not a domain name like apps.example.com"),
        ));
    }
    let ingress_class = req.ingress_class.clone().unwrap_or_default();
    if !ingress_class.is_empty() {
        validate_name(&ingress_class).map_err(|e| ServiceError::invalid_name("ingress_class", &ingress_class, e))?;
    }
    let row = ClusterRow {
        kubeconfig_sealed: state.engine.config().secret_key.seal(&req.kubeconfig, &cluster_seal_context(&req.name)),
        name: req.name.clone(),
        context: target.context,
        server: target.server,
        base_domain: base_domain.to_ascii_lowercase(),
        ingress_class,
        created_by: actor.username.clone(),
        created_at: now_ms(),
    };
    match state.store.insert_cluster(&row).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!("cluster {:?} is already registered", req.name)));
        }
        Err(err) => return Err(err.into()),
    }
    to_api(state, row).await
}

pub async fn list_clusters(state: &AppState, _actor: &Actor) -> Result<Vec<Cluster>> {
    let mut out = Vec::new();
    for row in state.store.list_clusters().await? {
        out.push(to_api(state, row).await?);
    }
    Ok(out)
}

/// One page of clusters in name order.
pub async fn list_clusters_page(
    state: &AppState,
    _actor: &Actor,
    params: &crate::pagination::PageParams,
) -> Result<slipway_api::Page<Cluster>> {
    let page = crate::pagination::PageRequest::parse(params)?;
    let rows = state.store.list_clusters_after(&page.after, page.fetch_limit()).await?;
    let (rows, next_cursor) = page.finish(rows, |c| c.name.clone());
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(to_api(state, row).await?);
    }
    Ok(slipway_api::Page { items, next_cursor })
}

pub async fn remove_cluster(state: &AppState, actor: &Actor, name: &str) -> Result<()> {
    require_platform(actor, Action::AdministerPlatform)?;
    match state.store.delete_cluster(name).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(ServiceError::not_found("cluster", name)),
        Err(StoreError::InUse) => {
            let envs = state.store.environments_on(name).await?;
            Err(ServiceError::Conflict(format!(
                "environments still run on cluster {name}: {}; destroy them first",
                envs.join(", ")
            )))
        }
        Err(err) => Err(err.into()),
    }
}

/// Checks that an environment may run on `runtime` (a registered cluster, with a
/// registry to pull from).
pub(crate) async fn check_runtime(state: &AppState, runtime: &str) -> Result<()> {
    if runtime == slipway_engine::LOCAL_RUNTIME {
        return Ok(());
    }
    match state.store.cluster_by_name(runtime).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            return Err(ServiceError::Absent(format!(
                "no cluster named {runtime:?} is registered (slipway clusters list)"
            )));
        }
        Err(err) => return Err(err.into()),
    }
    if state.engine.config().registry.is_none() {
        return Err(ServiceError::invalid(
            "runtime",
            format!(
                "cluster {runtime} pulls images from a registry, and this server has none (start slipwayd with --registry)"
            ),
        ));
    }
    Ok(())
}
