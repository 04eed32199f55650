//! How a real API server rewrites what it stores, so drift checks against the simulator
//! meet what they would meet on a cluster: resource quantities in canonical form
//! (`1024Mi` → `1Gi`, `1000m` → `1`, `0.5` → `500m`), and empty `omitempty` lists and maps
//! (`env: []`, `data: {}`) dropped. Also the checks that make a server refuse an object:
//! unknown fields at any depth, invalid names and labels.
//!
//! Written by hand: this is the simulated server's own behaviour (apimachinery's
//! `resource.Quantity` and Go's `omitempty`), which no Rust crate provides.

use serde_json::Value;

/// Keys whose values are maps of quantities (`resources.limits`, a quota's `hard`, a
/// LimitRange's `default`, …).
const QUANTITY_MAPS: &[&str] =
    &["limits", "requests", "hard", "default", "defaultRequest", "max", "min", "capacity", "allocatable"];
/// Keys holding one quantity (an HPA metric target's).
const QUANTITY_FIELDS: &[&str] = &["averageValue", "value"];
/// Keys that are Go maps (`map[string]…` with `omitempty`): dropped when empty. Structs
/// (`resources: {}`, `emptyDir: {}`) are kept, as Go's encoder keeps them.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "stringData",
    "binaryData",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
    "hard",
];

/// Rewrites `object` as the server stores it. `kind` decides the map-typed fields whose
/// names are not enough (a Service's `spec.selector` is a map, a Deployment's a struct).
pub(super) fn normalize(kind: &str, object: &mut Value) {
    walk(object, &mut Vec::new());
    if kind == "Service"
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
        && spec.get("selector").is_some_and(|s| s.as_object().is_some_and(|m| m.is_empty()))
    {
        spec.remove("selector");
    }
}

fn walk(value: &mut Value, path: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let parent = path.last().cloned().unwrap_or_default();
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let Some(child) = map.get_mut(&key) else { continue };
                let quantity = QUANTITY_MAPS.contains(&parent.as_str())
                    || (QUANTITY_FIELDS.contains(&key.as_str()) && parent == "target");
                if quantity && let Some(text) = child.as_str() {
                    if let Some(canonical) = canonical_quantity(text) {
                        *child = Value::String(canonical);
                    }
                    continue;
                }
                path.push(key.clone());
                walk(child, path);
                path.pop();
                let empty = match &map[&key] {
                    Value::Array(items) => items.is_empty(),
                    Value::Object(fields) => fields.is_empty() && MAP_FIELDS.contains(&key.as_str()),
                    Value::Null => true,
                    _ => false,
                };
                if empty {
                    map.remove(&key);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path);
            }
        }
        _ => {}
    }
}

const NANO: i128 = 1_000_000_000;

/// A quantity in canonical form, as apimachinery prints it; `None` when it does not parse
/// (the typed check refuses it then).
pub fn canonical_quantity(text: &str) -> Option<String> {
    let (number, suffix) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty()) || !(whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    // The value in units of 10^-9, rounded up past nine decimals as the server does.
    let mut nanos: i128 = 0;
    for c in whole.chars() {
        nanos = nanos.checked_mul(10)?.checked_add(i128::from(c.to_digit(10)?))?;
    }
    nanos = nanos.checked_mul(NANO)?;
    let mut scale = NANO / 10;
    let mut rest_nonzero = false;
    for (i, c) in fraction.chars().enumerate() {
        let digit = i128::from(c.to_digit(10)?);
        if i < 9 {
            nanos += digit * scale;
            scale /= 10;
        } else if digit != 0 {
            rest_nonzero = true;
        }
    }
    if rest_nonzero {
        nanos += 1;
    }
    let (multiplier, binary, exponent_form): (i128, bool, bool) = match suffix {
        "" => (1, false, false),
        "n" => return apply_scale(nanos, -9, negative, false),
        "u" => return apply_scale(nanos, -6, negative, false),
        "m" => return apply_scale(nanos, -3, negative, false),
        "k" => (1_000, false, false),
        "M" => (1_000_000, false, false),
        "G" => (1_000_000_000, false, false),
        "T" => (1_000_000_000_000, false, false),
        "P" => (1_000_000_000_000_000, false, false),
        "E" => (1_000_000_000_000_000_000, false, false),
        "Ki" => (1 << 10, true, false),
        "Mi" => (1 << 20, true, false),
        "Gi" => (1 << 30, true, false),
        "Ti" => (1 << 40, true, false),
        "Pi" => (1 << 50, true, false),
        "Ei" => (1 << 60, true, false),
        exponent if exponent.starts_with(['e', 'E']) => {
            let power: i32 = exponent[1..].parse().ok()?;
            return apply_scale(nanos, power, negative, true);
        }
        _ => return None,
    };
    let nanos = nanos.checked_mul(multiplier)?;
    Some(format_nanos(if negative { -nanos } else { nanos }, binary, exponent_form))
}

/// A number times 10^power.
fn apply_scale(nanos: i128, power: i32, negative: bool, exponent_form: bool) -> Option<String> {
    let nanos = if power >= 0 {
        nanos.checked_mul(10i128.checked_pow(u32::try_from(power).ok()?)?)?
    } else {
        let divisor = 10i128.checked_pow(power.unsigned_abs())?;
        // Rounded up, as the server rounds sub-nano precision.
        (nanos + divisor - 1) / divisor
    };
    Some(format_nanos(if negative { -nanos } else { nanos }, false, exponent_form))
}

fn format_nanos(nanos: i128, binary: bool, exponent_form: bool) -> String {
    if nanos == 0 {
        return "0".to_owned();
    }
    // Binary form only for whole numbers of at least 1024 (else decimal, as the server).
    if binary && nanos % NANO == 0 && nanos.abs() >= 1024 * NANO {
        let mut value = nanos / NANO;
        let mut power = 0;
        while value % 1024 == 0 && power < 6 {
            value /= 1024;
            power += 1;
        }
        return format!("{value}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power]);
    }
    // Decimal: the largest exponent, a multiple of three, that leaves a whole number.
    let mut exponent = -9;
    let mut value = nanos;
    while exponent < 18 && value % 1000 == 0 {
        value /= 1000;
        exponent += 3;
    }
    if exponent_form {
        return if exponent == 0 { value.to_string() } else { format!("{value}e{exponent}") };
    }
    let suffix = match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    format!("{value}{suffix}")
}

/// The first field of `input` that the typed round trip lost (unknown or misplaced), at
/// any depth, inside lists too, as a dotted path (`spec.template.spec.containers[0].imagePullPolicyy`).
pub(super) fn unknown_field(input: &Value, typed: &Value) -> Option<String> {
    fn visit(input: &Value, typed: &Value, path: &str) -> Option<String> {
        match (input, typed) {
            (Value::Object(fields), _) => fields.iter().find_map(|(key, value)| {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match typed.get(key) {
                    Some(kept) => visit(value, kept, &here),
                    // Empty values and nulls may legitimately vanish on serialization.
                    None if value.is_null() || value == &serde_json::json!({}) || value == &serde_json::json!([]) => {
                        None
                    }
                    None => Some(here),
                }
            }),
            (Value::Array(items), Value::Array(kept)) => items
                .iter()
                .zip(kept)
                .enumerate()
                .find_map(|(i, (item, kept))| visit(item, kept, &format!("{path}[{i}]"))),
            _ => None,
        }
    }
    visit(input, typed, "")
}

/// Why `name` is not a valid object name for `kind`, if it is not: RFC 1123 subdomains for
/// most kinds, RFC 1123 labels for namespaces, RFC 1035 labels for services.
pub(super) fn invalid_name(kind: &str, name: &str) -> Option<String> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let ok = match kind {
        "Namespace" => label(name),
        "Service" => label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
        _ => name.len() <= 253 && name.split('.').all(label),
    };
    (!ok).then(|| {
        format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 {} must consist of lower case \
             alphanumeric characters or '-'",
            if kind == "Namespace" || kind == "Service" { "label" } else { "subdomain" }
        )
    })
}

/// Why a label (key and value) is invalid, if it is.
pub(super) fn invalid_label(key: &str, value: &str) -> Option<String> {
    let name_part = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    });
    if !prefix_ok || !name_part(name) {
        return Some(format!(
            "metadata.labels: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', at most 63"
        ));
    }
    if !value.is_empty() && !name_part(value) {
        return Some(format!(
            "metadata.labels: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', at most 63"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_become_canonical() {
        for (given, stored) in [
            ("1024Mi", "1Gi"),
            ("1536Mi", "1536Mi"),
            ("0.5Gi", "512Mi"),
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1500m", "1500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("256Mi", "256Mi"),
            ("512", "512"),
            ("0", "0"),
            ("0Mi", "0"),
            ("1e3", "1e3"),
            ("100e-3", "100e-3"),
            ("12Ki", "12Ki"),
            ("1G", "1G"),
        ] {
            assert_eq!(canonical_quantity(given).as_deref(), Some(stored), "{given}");
        }
        for bad in ["", "Mi", "1.2.3", "12Q", "abc"] {
            assert_eq!(canonical_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_maps_and_lists_are_dropped_structs_kept() {
        let mut object = json!({"metadata": {"name": "x", "labels": {}}, "data": {},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "env": [], "resources": {},
                "volumeMounts": []}], "volumes": [{"name": "tmp", "emptyDir": {}}]}}}});
        normalize("Deployment", &mut object);
        assert_eq!(
            object,
            json!({"metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": [{"name": "web",
                "resources": {}}], "volumes": [{"name": "tmp", "emptyDir": {}}]}}}})
        );
        let mut limits =
            json!({"spec": {"containers": [{"resources": {"limits": {"memory": "1024Mi", "cpu": "1000m"}}}]}});
        normalize("Pod", &mut limits);
        assert_eq!(limits["spec"]["containers"][0]["resources"]["limits"], json!({"memory": "1Gi", "cpu": "1"}));
    }

    #[test]
    fn names_and_labels_follow_the_servers_rules() {
        assert!(invalid_name("Deployment", "web").is_none());
        assert!(invalid_name("Deployment", "Web").is_some());
        assert!(invalid_name("Service", "1web").is_some());
        assert!(invalid_name("Namespace", "a.b").is_some());
        assert!(invalid_label("app.kubernetes.io/name", "shop").is_none());
        assert!(invalid_label("slipway.dev/env", "").is_none());
        assert!(invalid_label("bad key", "x").is_some());
        assert!(invalid_label("k", &"x".repeat(64)).is_some());
    }
}
