//! The HTTP side of the simulator: one handler for every API path, writes (create,
//! replace, merge patch, server-side apply, dry runs) and watch streams.

use super::*;

pub(crate) async fn handle(State(sim): State<KubeSim>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = query_map(request.uri().query());
    let logged = match request.uri().query() {
        Some(q) => format!("{method} {path}?{q}"),
        None => format!("{method} {path}"),
    };
    sim.inner.log.lock().expect("lock").push(logged);
    match path.as_str() {
        "/version" => {
            return ok_json(
                StatusCode::OK,
                &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-slipway-sim", "platform": "linux/amd64"}),
            );
        }
        "/api" => {
            return ok_json(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            );
        }
        "/apis" => {
            let groups: BTreeSet<&str> =
                KINDS.iter().filter(|k| k.group_version.contains('/')).map(|k| k.group_version).collect();
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|gv| {
                    let (group, version) = gv.split_once('/').expect("group/version");
                    json!({"name": group, "versions": [{"groupVersion": gv, "version": version}],
                        "preferredVersion": {"groupVersion": gv, "version": version}})
                })
                .collect();
            return ok_json(StatusCode::OK, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}));
        }
        _ => {}
    }
    let Some((group_version, rest)) = split_path(&path) else {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find {path}"));
    };
    let (namespace, plural, name) = match rest.as_slice() {
        [] => {
            let resources: Vec<Value> = KINDS
                .iter()
                .filter(|k| k.group_version == group_version)
                .map(|k| {
                    json!({"name": k.plural, "singularName": "", "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
                })
                .collect();
            return ok_json(
                StatusCode::OK,
                &json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}),
            );
        }
        [p] => (String::new(), p.clone(), None),
        [p, n] => (String::new(), p.clone(), Some(n.clone())),
        [ns_word, ns, p] if ns_word == "namespaces" => (ns.clone(), p.clone(), None),
        [ns_word, ns, p, n] if ns_word == "namespaces" => (ns.clone(), p.clone(), Some(n.clone())),
        [ns_word, ns, p, n, sub] if ns_word == "namespaces" && sub == "status" => {
            (ns.clone(), p.clone(), Some(n.clone()))
        }
        _ => return status(StatusCode::NOT_FOUND, "NotFound", format!("the server could not find {path}")),
    };
    let Some(kind) = kind_of(&group_version, &plural) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server doesn't have a resource type {plural} in {group_version}"),
        );
    };
    if kind.namespaced == namespace.is_empty() && name.is_some() {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{plural} is {}namespaced", if kind.namespaced { "" } else { "not " }),
        );
    }
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap_or_default();
    match (method, name) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(sim, kind, namespace, query)
        }
        (Method::GET, None) => {
            let objects = sim.inner.objects.lock().expect("lock");
            let items: Vec<Value> = objects
                .iter()
                .filter(|(k, s)| {
                    k.group_version == kind.group_version
                        && k.plural == kind.plural
                        && (namespace.is_empty() || k.namespace == namespace)
                        && matches_selector(&s.object, query.get("labelSelector"))
                })
                .map(|(_, s)| s.object.clone())
                .collect();
            let rv = sim.rv.load(Ordering::SeqCst).to_string();
            ok_json(
                StatusCode::OK,
                &json!({"apiVersion": kind.group_version, "kind": format!("{}List", kind.kind),
                "metadata": {"resourceVersion": rv}, "items": items}),
            )
        }
        (Method::GET, Some(name)) => match sim.get(kind.group_version, kind.plural, &namespace, &name) {
            Some(object) => ok_json(StatusCode::OK, &object),
            None => status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural)),
        },
        (Method::DELETE, Some(name)) => {
            let key = Key::of(kind, namespace.clone(), name.clone());
            if kind.plural == "namespaces" {
                let mut objects = sim.inner.objects.lock().expect("lock");
                let Some(stored) = objects.get_mut(&key) else {
                    return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{name}\" not found"));
                };
                stored.object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                stored.object["status"] = json!({"phase": "Terminating"});
                let object = stored.object.clone();
                drop(objects);
                sim.finalize_namespace(name);
                return ok_json(StatusCode::OK, &object);
            }
            match sim.delete_key(&key) {
                Some(object) => {
                    if kind.plural == "deployments" {
                        let pods: Vec<Key> = sim
                            .inner
                            .objects
                            .lock()
                            .expect("lock")
                            .iter()
                            .filter(|(k, s)| {
                                k.plural == "pods"
                                    && k.namespace == namespace
                                    && s.object["metadata"]["labels"]["slipway-sim/deployment"] == json!(name)
                            })
                            .map(|(k, _)| k.clone())
                            .collect();
                        for pod in pods {
                            sim.delete_key(&pod);
                        }
                    }
                    ok_json(StatusCode::OK, &object)
                }
                None => status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural)),
            }
        }
        (method @ (Method::POST | Method::PUT | Method::PATCH), name) => {
            write(sim, kind, namespace, name, method, &content_type, &query, body)
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not supported by the simulator"),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    sim: KubeSim,
    kind: &'static Kind,
    namespace: String,
    name: Option<String>,
    method: Method,
    content_type: &str,
    query: &HashMap<String, String>,
    body: Bytes,
) -> Response {
    let input: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", format!("the body is not JSON: {e}")),
    };
    let name = match name.or_else(|| input["metadata"]["name"].as_str().map(str::to_owned)) {
        Some(n) => n,
        None => return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", "metadata.name: Required value"),
    };
    let invalid = |problem: String| {
        status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", format!("{} \"{name}\" is invalid: {problem}", kind.kind))
    };
    if let Some(problem) = normalize::invalid_name(kind.kind, &name) {
        return invalid(problem);
    }
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    if dry_run && sim.inner.no_dry_run.lock().expect("lock").contains(kind.plural) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "admission webhook \"sim.example.com\" does not support dry run",
        );
    }
    // The server decodes what it is sent into its types first: quantities canonical,
    // empty lists and maps gone. (The unknown-field check below reads the raw body.)
    let raw = input;
    let mut input = raw.clone();
    normalize::normalize(kind.kind, &mut input);
    if kind.namespaced && namespace.is_empty() {
        return status(StatusCode::NOT_FOUND, "NotFound", "a namespaced resource needs a namespace in its path");
    }
    let key = Key::of(kind, namespace.clone(), name.clone());
    let existing = sim.inner.objects.lock().expect("lock").get(&key).cloned();
    if kind.namespaced {
        match sim.get("v1", "namespaces", "", &namespace) {
            None => return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{namespace}\" not found")),
            Some(ns) if ns["metadata"].get("deletionTimestamp").is_some() && existing.is_none() => {
                return status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!("unable to create new content in namespace {namespace} because it is being terminated"),
                );
            }
            Some(_) => {}
        }
    }
    let (object, owners, created) = if method == Method::PATCH && content_type.starts_with("application/apply-patch") {
        let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
            return status(StatusCode::BAD_REQUEST, "BadRequest", "PATCH with apply-patch needs a fieldManager");
        };
        let force = query.get("force").is_some_and(|f| f == "true");
        if input["apiVersion"] != json!(kind.group_version) || input["kind"] != json!(kind.kind) {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("apply needs apiVersion {} and kind {}", kind.group_version, kind.kind),
            );
        }
        let fields = applied_fields(&input);
        let mut owners = existing.as_ref().map(|s| s.owners.clone()).unwrap_or_default();
        let mut object = existing.as_ref().map(|s| s.object.clone()).unwrap_or_else(|| json!({"metadata": {}}));
        let mut conflicts = Vec::new();
        for (path, value) in &fields {
            for (other, paths) in &owners {
                if other != manager && paths.contains(path) && get_path(&object, path) != Some(value) {
                    conflicts.push(format!("conflict with \"{other}\": .{}", path.join(".")));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Apply failed with {} conflicts: {}", conflicts.len(), conflicts.join("; ")),
            );
        }
        // Fields this manager applied before and no longer applies are removed, unless
        // another manager still owns them.
        let previous = owners.get(manager).cloned().unwrap_or_default();
        for path in previous.iter().filter(|p| !fields.contains_key(*p)) {
            if !owners.iter().any(|(m, ps)| m != manager && ps.contains(path)) {
                remove_path(&mut object, path);
            }
        }
        for (path, value) in &fields {
            set_path(&mut object, path, value.clone());
        }
        for (other, paths) in owners.iter_mut() {
            if other != manager {
                paths.retain(|p| !fields.contains_key(p));
            }
        }
        owners.insert(manager.clone(), fields.keys().cloned().collect());
        (object, owners, existing.is_none())
    } else if method == Method::PATCH {
        let Some(existing) = &existing else {
            return status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural));
        };
        let mut object = existing.object.clone();
        merge_patch(&mut object, &raw);
        normalize::normalize(kind.kind, &mut object);
        (object, existing.owners.clone(), false)
    } else {
        if method == Method::POST && existing.is_some() {
            return status(StatusCode::CONFLICT, "AlreadyExists", format!("{} \"{name}\" already exists", kind.plural));
        }
        if method == Method::PUT {
            let Some(existing) = &existing else {
                return status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{name}\" not found", kind.plural));
            };
            let given = input["metadata"]["resourceVersion"].as_str();
            if given.is_some() && given != existing.object["metadata"]["resourceVersion"].as_str() {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
        }
        (input.clone(), existing.as_ref().map(|e| e.owners.clone()).unwrap_or_default(), method == Method::POST)
    };
    // Validate against the kind's type: wrong types fail to deserialize, unknown fields
    // are dropped by the type and found missing.
    if let Err(e) = (kind.roundtrip)(object.clone()) {
        return invalid(e);
    }
    // A whole object sent (apply, create, replace) must not carry fields its type lacks,
    // at any depth (inside `containers[]`, `ports[]`, Ingress rules, HPA metrics…).
    let partial = method == Method::PATCH && !content_type.starts_with("application/apply-patch");
    if !partial {
        let typed = match (kind.roundtrip)(raw.clone()) {
            Ok(typed) => typed,
            Err(e) => return invalid(e),
        };
        if let Some(field) = normalize::unknown_field(&raw, &typed) {
            return invalid(format!("unknown field \"{field}\""));
        }
    }
    let labels = object["metadata"]["labels"].as_object().into_iter().flatten();
    for (key, value) in labels.chain(object["spec"]["template"]["metadata"]["labels"].as_object().into_iter().flatten())
    {
        if let Some(problem) = normalize::invalid_label(key, value.as_str().unwrap_or_default()) {
            return invalid(problem);
        }
    }
    // A workload's selector is fixed at creation.
    if let Some(existing) = &existing
        && matches!(kind.kind, "Deployment" | "StatefulSet")
        && existing.object["spec"]["selector"] != object["spec"]["selector"]
    {
        return invalid(format!("spec.selector: Invalid value: {}: field is immutable", object["spec"]["selector"]));
    }
    // A StatefulSet's spec is fixed at creation but for these fields.
    if let Some(existing) = &existing
        && kind.kind == "StatefulSet"
    {
        let fixed = |object: &Value| {
            let mut spec = object["spec"].clone();
            if let Some(spec) = spec.as_object_mut() {
                for field in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    spec.remove(field);
                }
            }
            spec
        };
        if fixed(&existing.object) != fixed(&object) {
            return invalid(
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', \
                 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are \
                 forbidden"
                    .to_owned(),
            );
        }
    }
    // Defaulting: a Deployment without a count has one replica.
    let mut object = object;
    if kind.kind == "Deployment" && object["spec"].get("replicas").is_none() {
        object["spec"]["replicas"] = json!(1);
    }
    if dry_run {
        let (preview, _) = sim.commit(&key, kind, object, owners, true);
        return ok_json(if created { StatusCode::CREATED } else { StatusCode::OK }, &preview);
    }
    let (stored, _) = sim.commit(&key, kind, object, owners, false);
    if kind.plural == "jobs" {
        // The job controller: it succeeds, unless its image was told to fail.
        let key = Key::of(kind, namespace.clone(), name.clone());
        let failing = {
            let failures = sim.inner.failures.lock().expect("lock");
            let objects = sim.inner.objects.lock().expect("lock");
            let image =
                objects.get(&key).map(|s| s.object["spec"]["template"]["spec"]["containers"][0]["image"].to_string());
            image.is_some_and(|i| failures.iter().any(|(part, _)| i.contains(part.as_str())))
        };
        let mut objects = sim.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key) {
            stored.object["status"] = if failing {
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit"}]})
            } else {
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
            };
        }
    }
    if kind.plural == "statefulsets" {
        // The stateful set controller: its pods are ready at once.
        let key = Key::of(kind, namespace.clone(), name.clone());
        let mut objects = sim.inner.objects.lock().expect("lock");
        if let Some(stored) = objects.get_mut(&key) {
            let replicas = stored.object["spec"]["replicas"].as_i64().unwrap_or(1);
            stored.object["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas,
                "observedGeneration": stored.object["metadata"]["generation"]});
        }
    }
    if kind.plural == "horizontalpodautoscalers"
        && let Some(target) = stored["spec"]["scaleTargetRef"]["name"].as_str()
    {
        sim.autoscale(&namespace, target);
    }
    if kind.plural == "deployments" {
        sim.autoscale(&namespace, &name);
        sim.reconcile_deployment(&namespace, &name);
        // Pods become ready a moment later, as on a real cluster.
        let later = sim.clone();
        let (ns, n) = (namespace.clone(), name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            later.reconcile_deployment(&ns, &n);
        });
    }
    let stored = if kind.plural == "deployments" {
        sim.get(kind.group_version, kind.plural, &namespace, &name).unwrap_or(stored)
    } else {
        stored
    };
    ok_json(if created { StatusCode::CREATED } else { StatusCode::OK }, &stored)
}

pub(crate) fn watch(sim: KubeSim, kind: &'static Kind, namespace: String, query: HashMap<String, String>) -> Response {
    let mut rx = sim.events.subscribe();
    let since: u64 = query.get("resourceVersion").and_then(|rv| rv.parse().ok()).unwrap_or(0);
    let timeout = query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(290u64);
    let selector = query.get("labelSelector").cloned();
    let name = query.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).map(str::to_owned);
    let matches = move |key: &Key, object: &Value| {
        key.group_version == kind.group_version
            && key.plural == kind.plural
            && (namespace.is_empty() || key.namespace == namespace)
            && name.as_ref().is_none_or(|n| &key.name == n)
            && matches_selector(object, selector.as_ref())
    };
    // Without a resourceVersion a watch starts with the current objects.
    let initial: Vec<Value> = if since == 0 {
        sim.inner
            .objects
            .lock()
            .expect("lock")
            .iter()
            .filter(|(k, s)| matches(k, &s.object))
            .map(|(_, s)| json!({"type": "ADDED", "object": s.object}))
            .collect()
    } else {
        Vec::new()
    };
    let stream = async_stream(initial, move |tx| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        loop {
            let event = tokio::select! {
                event = rx.recv() => event,
                () = tokio::time::sleep_until(deadline) => return,
            };
            match event {
                Ok(event) => {
                    let rv: u64 = event.object["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|r| r.parse().ok())
                        .unwrap_or(u64::MAX);
                    if rv > since && matches(&event.key, &event.object) {
                        let line = json!({"type": event.kind, "object": event.object}).to_string() + "\n";
                        if tx.send(Ok::<_, std::convert::Infallible>(Bytes::from(line))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

/// A body stream: `initial` lines, then what `producer` sends.
pub(crate) fn async_stream<F, Fut>(
    initial: Vec<Value>,
    producer: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Bytes, std::convert::Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let first = tx.clone();
    let task = producer(tx);
    tokio::spawn(async move {
        for event in initial {
            if first.send(Ok(Bytes::from(event.to_string() + "\n"))).await.is_err() {
                return;
            }
        }
        drop(first);
        task.await;
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
