//! The kinds the simulator serves, each with its k8s-openapi type for the round trip that
//! refuses a field the type does not keep.

use super::*;

/// One kind the simulator serves.
pub(crate) struct Kind {
    pub(crate) group_version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    /// Deserializes into the k8s-openapi type and serializes back.
    pub(crate) roundtrip: fn(Value) -> Result<Value, String>,
}

pub(crate) fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(value: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

use k8s_openapi::api::{apps, autoscaling, core, networking, rbac};

pub(crate) const KINDS: &[Kind] = &[
    Kind {
        group_version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        roundtrip: roundtrip::<core::v1::Namespace>,
    },
    Kind {
        group_version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Secret>,
    },
    Kind {
        group_version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ConfigMap>,
    },
    Kind {
        group_version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Service>,
    },
    Kind { group_version: "v1", plural: "pods", kind: "Pod", namespaced: true, roundtrip: roundtrip::<core::v1::Pod> },
    Kind {
        group_version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::Event>,
    },
    Kind {
        group_version: "v1",
        plural: "persistentvolumeclaims",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::PersistentVolumeClaim>,
    },
    Kind {
        group_version: "v1",
        plural: "resourcequotas",
        kind: "ResourceQuota",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ResourceQuota>,
    },
    Kind {
        group_version: "v1",
        plural: "limitranges",
        kind: "LimitRange",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::LimitRange>,
    },
    Kind {
        group_version: "apps/v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
        roundtrip: roundtrip::<apps::v1::Deployment>,
    },
    Kind {
        group_version: "apps/v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
        roundtrip: roundtrip::<apps::v1::StatefulSet>,
    },
    Kind {
        group_version: "networking.k8s.io/v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
        roundtrip: roundtrip::<networking::v1::Ingress>,
    },
    Kind {
        group_version: "batch/v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        roundtrip: roundtrip::<k8s_openapi::api::batch::v1::Job>,
    },
    Kind {
        group_version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        roundtrip: roundtrip::<core::v1::ServiceAccount>,
    },
    Kind {
        group_version: "rbac.authorization.k8s.io/v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
        roundtrip: roundtrip::<rbac::v1::ClusterRole>,
    },
    Kind {
        group_version: "rbac.authorization.k8s.io/v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
        roundtrip: roundtrip::<rbac::v1::ClusterRoleBinding>,
    },
    Kind {
        group_version: "autoscaling/v2",
        plural: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        roundtrip: roundtrip::<autoscaling::v2::HorizontalPodAutoscaler>,
    },
];

pub(crate) fn kind_of(group_version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.group_version == group_version && k.plural == plural)
}
