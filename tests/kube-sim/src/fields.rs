//! Field paths, server-side apply's field ownership (`managedFields`), JSON merge patch,
//! and the small parsers of paths, queries and label selectors.

use super::*;

/// Leaf paths of an object (objects recurse; arrays and scalars are leaves).
pub(crate) fn leaves(value: &Value, path: &mut Vec<String>, out: &mut BTreeMap<Vec<String>, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }
        }
        other => {
            out.insert(path.clone(), other.clone());
        }
    }
}

pub(crate) fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

pub(crate) fn set_path(value: &mut Value, path: &[String], leaf: Value) {
    let mut at = value;
    for (i, k) in path.iter().enumerate() {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let map = at.as_object_mut().expect("object");
        if i == path.len() - 1 {
            map.insert(k.clone(), leaf);
            return;
        }
        at = map.entry(k.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
}

pub(crate) fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = value;
    for k in parents {
        match at.get_mut(k) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last);
    }
}

/// The fields an apply manages: everything but identity, server-set metadata and status.
pub(crate) fn applied_fields(patch: &Value) -> BTreeMap<Vec<String>, Value> {
    let mut body = patch.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in
                ["name", "namespace", "resourceVersion", "managedFields", "uid", "creationTimestamp", "generation"]
            {
                meta.remove(field);
            }
        }
    }
    let mut out = BTreeMap::new();
    leaves(&body, &mut Vec::new(), &mut out);
    out.retain(|path, _| !(path.is_empty() || path.len() == 1 && path[0] == "metadata"));
    out
}

/// `managedFields` as a real server reports them (FieldsV1).
pub(crate) fn managed_fields(owners: &BTreeMap<String, BTreeSet<Vec<String>>>, api_version: &str) -> Value {
    let entries: Vec<Value> = owners
        .iter()
        .filter(|(_, paths)| !paths.is_empty())
        .map(|(manager, paths)| {
            let mut fields = Value::Object(Map::new());
            for path in paths {
                let keyed: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
                set_path(&mut fields, &keyed, json!({}));
            }
            json!({"manager": manager, "operation": "Apply", "apiVersion": api_version, "fieldsType": "FieldsV1",
                "fieldsV1": fields})
        })
        .collect();
    Value::Array(entries)
}

/// FNV-1a: a stable short hash for pod-template-hash.
pub(crate) fn fxhash(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// `/api/v1/...` or `/apis/{group}/{version}/...` → (group_version, rest segments).
pub(crate) fn split_path(path: &str) -> Option<(String, Vec<String>)> {
    let segments: Vec<String> = path.trim_matches('/').split('/').map(str::to_owned).collect();
    match segments.first().map(String::as_str) {
        Some("api") if segments.len() >= 2 => Some((segments[1].clone(), segments[2..].to_vec())),
        Some("apis") if segments.len() >= 3 => {
            Some((format!("{}/{}", segments[1], segments[2]), segments[3..].to_vec()))
        }
        _ => None,
    }
}

pub(crate) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

pub(crate) fn matches_selector(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else { return true };
    selector.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => object["metadata"]["labels"][k.trim_end_matches('=')] == json!(v.trim_start_matches('=')),
        None => object["metadata"]["labels"].get(term).is_some(),
    })
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(map) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let target_map = target.as_object_mut().expect("object");
            for (k, v) in map {
                if v.is_null() {
                    target_map.remove(k);
                } else {
                    merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}
