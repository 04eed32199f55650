//! What a rendered template asks for: workloads (replicas, port, health, resources,
//! command, env), add-ons and the environment's policy, and the rules a rendering must
//! satisfy before anything is provisioned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::validate_key;

/// The workload the app router sends traffic to.
pub const WEB: &str = "web";
/// The most replicas one workload may have on any runtime.
pub const MAX_REPLICAS: u32 = 20;

/// A rendered template: everything an environment needs provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub workloads: BTreeMap<String, Workload>,
    #[serde(default)]
    pub addons: Vec<Addon>,
    #[serde(default)]
    pub policy: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[serde(default = "one")]
    pub replicas: u32,
    /// The port the workload listens on; none for a worker (no traffic, no health check).
    #[serde(default)]
    pub port: Option<u16>,
    /// The HTTP path of the health check (needs a port).
    #[serde(default)]
    pub health: Option<String>,
    /// CPU limit: cores (`0.5`, `2`) or millicores (`500m`).
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory limit: `256Mi`, `1Gi`.
    #[serde(default)]
    pub memory: Option<String>,
    /// A command to run instead of the image's (run by the image's `/bin/sh -c`).
    #[serde(default)]
    pub command: Option<String>,
    /// A process of the repository's `slipway.toml` `[processes]` to run.
    #[serde(default)]
    pub process: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub env: BTreeMap<String, String>,
    /// Scale between `min` and `max` replicas on CPU use (Kubernetes runtime: a
    /// HorizontalPodAutoscaler; the local runtime runs `replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// Target average CPU use, in percent of the workload's `cpu`.
    #[serde(default = "default_cpu_target")]
    pub cpu_percent: u32,
}

fn default_cpu_target() -> u32 {
    80
}

fn one() -> u32 {
    1
}

/// Env values may render from integer or boolean parameters: they become their text. A
/// value that renders to null (an optional parameter left out) leaves the variable unset.
fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Bool(bool),
        Null(()),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)
        .map_err(|_| serde::de::Error::custom("env values must be strings, integers or booleans"))?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Scalar::Text(s) => s,
                Scalar::Int(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
                Scalar::Null(()) => return None,
            };
            Some((k, text))
        })
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddonKind {
    Postgres,
    Redis,
}

impl AddonKind {
    /// The variable that carries the add-on's URL into the workloads.
    pub fn env_var(self) -> &'static str {
        match self {
            AddonKind::Postgres => "DATABASE_URL",
            AddonKind::Redis => "REDIS_URL",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddonKind::Postgres => "postgres",
            AddonKind::Redis => "redis",
        }
    }
}

/// An add-on provisioned beside the workloads: `postgres` or `{type: postgres}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addon {
    #[serde(rename = "type")]
    pub kind: AddonKind,
}

impl<'de> Deserialize<'de> for Addon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            #[serde(rename = "type")]
            kind: AddonKind,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Short(AddonKind),
            Long(Long),
        }
        match Either::deserialize(d) {
            Ok(Either::Short(kind)) | Ok(Either::Long(Long { kind })) => Ok(Addon { kind }),
            Err(_) => Err(serde::de::Error::custom("an add-on is `postgres`, `redis` or {type: postgres|redis}")),
        }
    }
}

/// How long an environment may live and how big it may grow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Destroy the environment this long after creation (`48h`, `7d`).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Destroy the environment after this long without a request through the router.
    #[serde(default)]
    pub idle_ttl: Option<String>,
    #[serde(default)]
    pub max_replicas: Option<u32>,
    /// Runtimes the environment may run on (`local`, or cluster names); empty: any.
    #[serde(default)]
    pub runtimes: Vec<String>,
    /// How long a replica being retired may finish the requests it has before it is
    /// stopped anyway (seconds); slipwayd's `--drain-seconds` when unset. Left out of a
    /// stored spec when unset, so a replica of an older version still reads the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u32>,
}

/// The longest drain a template may ask for.
pub const MAX_DRAIN_SECONDS: u32 = 3600;

/// A rendering that breaks a rule; `path` names where (`spec.workloads.web.port`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

fn spec_err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { path: path.into(), message: message.into() }
}

/// Parses `30s`, `15m`, `48h`, `7d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let n: u64 = text[..text.len() - unit.len_utf8()].parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// `256Mi` / `1Gi` in bytes.
pub fn memory_bytes(text: &str) -> Option<i64> {
    let (digits, shift) = if let Some(d) = text.strip_suffix("Mi") {
        (d, 20)
    } else if let Some(d) = text.strip_suffix("Gi") {
        (d, 30)
    } else {
        return None;
    };
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(1 << shift)
}

/// `500m` / `0.5` / `2` in billionths of a CPU.
pub fn cpu_nanos(text: &str) -> Option<i64> {
    let nanos = if let Some(milli) = text.strip_suffix('m') {
        milli.parse::<i64>().ok()?.checked_mul(1_000_000)?
    } else {
        let cores: f64 = text.parse().ok().filter(|c: &f64| c.is_finite())?;
        (cores * 1e9).round() as i64
    };
    (1_000_000..=256 * 1_000_000_000).contains(&nanos).then_some(nanos)
}

impl Spec {
    /// Checks every rule of a rendered template.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.workloads.is_empty() {
            return Err(spec_err("spec.workloads", "a template needs at least one workload"));
        }
        let max = self.policy.max_replicas.unwrap_or(MAX_REPLICAS);
        if max > MAX_REPLICAS {
            return Err(spec_err("spec.policy.max_replicas", format!("must be at most {MAX_REPLICAS}, not {max}")));
        }
        if let Some(drain) = self.policy.drain_seconds.filter(|d| *d > MAX_DRAIN_SECONDS) {
            return Err(spec_err(
                "spec.policy.drain_seconds",
                format!("must be at most {MAX_DRAIN_SECONDS} (an hour), not {drain}"),
            ));
        }
        for (name, w) in &self.workloads {
            let at = |field: &str| format!("spec.workloads.{name}.{field}");
            let valid_name = name.len() <= 20
                && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid_name {
                return Err(spec_err(
                    format!("spec.workloads.{name}"),
                    "a workload name is lower-case letters, digits and '-', starting with a letter, at most 20",
                ));
            }
            if w.replicas > max {
                return Err(spec_err(at("replicas"), format!("{} is above the maximum of {max}", w.replicas)));
            }
            match (name.as_str(), w.port) {
                (WEB, None) => return Err(spec_err(at("port"), "the web workload receives traffic and needs a port")),
                (WEB, Some(0)) => return Err(spec_err(at("port"), "0 is not a port")),
                (WEB, Some(_)) => {}
                (_, Some(_)) => {
                    return Err(spec_err(at("port"), "only the workload named web receives traffic; remove the port"));
                }
                (_, None) => {}
            }
            if let Some(health) = &w.health {
                if w.port.is_none() {
                    return Err(spec_err(at("health"), "a health check needs a port"));
                }
                if !health.starts_with('/') || health.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(spec_err(at("health"), format!("{health:?} is not an HTTP path like /healthz")));
                }
            }
            if let Some(memory) = &w.memory
                && memory_bytes(memory).is_none_or(|b| b < 4 << 20)
            {
                return Err(spec_err(
                    at("memory"),
                    format!("{memory:?} is not a memory size like 256Mi or 1Gi (≥ 4Mi)"),
                ));
            }
            if let Some(cpu) = &w.cpu
                && cpu_nanos(cpu).is_none()
            {
                return Err(spec_err(at("cpu"), format!("{cpu:?} is not a CPU amount like 500m or 0.5")));
            }
            if w.command.is_some() && w.process.is_some() {
                return Err(spec_err(at("command"), "give a command or a process, not both"));
            }
            if w.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
                return Err(spec_err(at("command"), "must not be empty"));
            }
            for key in w.env.keys() {
                validate_key(key).map_err(|e| spec_err(at("env"), e.to_string()))?;
            }
            if let Some(a) = &w.autoscale {
                if a.min == 0 || a.min > a.max || a.max > max {
                    return Err(spec_err(
                        at("autoscale"),
                        format!("needs 1 ≤ min ({}) ≤ max ({}) ≤ {max}", a.min, a.max),
                    ));
                }
                if !(1..=100).contains(&a.cpu_percent) {
                    return Err(spec_err(
                        at("autoscale.cpu_percent"),
                        format!("{} is not a percentage from 1 to 100", a.cpu_percent),
                    ));
                }
                if w.cpu.is_none() {
                    return Err(spec_err(at("autoscale"), "scaling on CPU use needs the workload's cpu to be set"));
                }
            }
        }
        let mut kinds = BTreeSet::new();
        for addon in &self.addons {
            if !kinds.insert(addon.kind) {
                return Err(spec_err("spec.addons", format!("{} is listed twice", addon.kind.as_str())));
            }
        }
        for (field, value) in [("ttl", &self.policy.ttl), ("idle_ttl", &self.policy.idle_ttl)] {
            if let Some(text) = value
                && parse_duration(text).is_none()
            {
                return Err(spec_err(
                    format!("spec.policy.{field}"),
                    format!("{text:?} is not a duration like 48h or 7d"),
                ));
            }
        }
        Ok(())
    }

    /// The routed workload, if the environment serves HTTP.
    pub fn web(&self) -> Option<&Workload> {
        self.workloads.get(WEB)
    }

    pub fn ttl(&self) -> Option<Duration> {
        self.policy.ttl.as_deref().and_then(parse_duration)
    }

    pub fn idle_ttl(&self) -> Option<Duration> {
        self.policy.idle_ttl.as_deref().and_then(parse_duration)
    }

    /// Replicas over all workloads.
    pub fn total_replicas(&self) -> u32 {
        self.workloads.values().map(|w| w.replicas).sum()
    }

    /// Memory limits over all replicas, in bytes (a workload without a limit counts `default`).
    pub fn total_memory(&self, default: i64) -> i64 {
        self.workloads
            .values()
            .map(|w| w.memory.as_deref().and_then(memory_bytes).unwrap_or(default) * i64::from(w.replicas))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_and_cpus_parse_strictly() {
        assert_eq!(parse_duration("48h"), Some(Duration::from_secs(48 * 3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        for bad in ["", "h", "0h", "-1h", "1.5h", "10w", "48 h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(memory_bytes("256Mi"), Some(256 << 20));
        assert_eq!(memory_bytes("1Gi"), Some(1 << 30));
        for bad in ["", "Mi", "0Mi", "256", "256M", "-1Gi", "01Gi", "1.5Gi"] {
            assert_eq!(memory_bytes(bad), None, "{bad}");
        }
        assert_eq!(cpu_nanos("500m"), Some(500_000_000));
        assert_eq!(cpu_nanos("0.5"), Some(500_000_000));
        assert_eq!(cpu_nanos("2"), Some(2_000_000_000));
        for bad in ["", "0", "0m", "abc", "NaN", "inf", "1000"] {
            assert_eq!(cpu_nanos(bad), None, "{bad}");
        }
    }
}
