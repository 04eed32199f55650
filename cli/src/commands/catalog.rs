//! `catalog import PATH|URL...`: reads Backstage descriptors from files, directories
//! (recursively) and URLs, follows `Location` targets, and sends them in batches; the
//! server plans (dry run) or writes each batch in one transaction.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};

use slipway_api::{CatalogImport, DescriptorFile, ImportReport, ImportedFile};

use super::signed_in_client;
use crate::error::CliError;
use crate::output;

/// What one request carries at most: the server takes 64 KiB bodies, and a batch is
/// one transaction.
const MAX_BATCH_BYTES: usize = 56 * 1024;
const MAX_BATCH_FILES: usize = 1000;
/// Descriptor files read at most in one import.
const MAX_FILES: usize = 100_000;

/// Where a descriptor comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    File(PathBuf),
    Url(url::Url),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Url(url) => url.to_string(),
        }
    }

    /// A `Location` target of this file: a relative path to a `.yaml`/`.yml` file that
    /// stays under `root` (the directory the import was given), or on the same origin
    /// for a URL. A descriptor never makes the CLI read or fetch anything else.
    fn join(&self, target: &str, root: &Path) -> Option<Source> {
        let target = target.trim();
        if target.contains(':') || target.starts_with('/') || target.contains('\\') {
            return None;
        }
        if !is_descriptor(Path::new(target)) {
            return None;
        }
        match self {
            Source::File(path) => {
                let joined = normalize(&path.parent().unwrap_or(Path::new("")).join(target));
                joined.starts_with(root).then_some(Source::File(joined))
            }
            Source::Url(url) => {
                let joined = url.join(target).ok()?;
                (joined.origin() == url.origin()).then_some(Source::Url(joined))
            }
        }
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (the server resolves
/// `Location` targets the same way, against the paths it was sent).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn is_descriptor(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

/// Every descriptor under a directory, skipping hidden entries (`.git`).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::usage(format!("cannot read {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_descriptor(&path) {
            out.push(normalize(&path));
        }
        if out.len() > MAX_FILES {
            return Err(CliError::usage(format!("more than {MAX_FILES} descriptor files; import fewer at a time")));
        }
    }
    Ok(())
}

async fn read(source: &Source, http: &reqwest::Client) -> Result<String, String> {
    match source {
        Source::File(path) => std::fs::read_to_string(path).map_err(|e| e.to_string()),
        Source::Url(url) => {
            let response = http.get(url.clone()).send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("the server answered {}", response.status()));
            }
            let bytes = response.bytes().await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_BATCH_BYTES {
                return Err(format!("{} bytes; at most {} KiB per file", bytes.len(), MAX_BATCH_BYTES / 1024));
            }
            String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8 text".to_owned())
        }
    }
}

/// The `Location` targets a descriptor names (`spec.target`, `spec.targets`).
fn targets(text: &str) -> Vec<String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let Ok(value) = serde_yaml_ng::Value::deserialize(document) else { break };
        if value.get("kind").and_then(|k| k.as_str()).is_none_or(|k| !k.eq_ignore_ascii_case("Location")) {
            continue;
        }
        let Some(spec) = value.get("spec") else { continue };
        out.extend(spec.get("target").and_then(|t| t.as_str()).map(str::to_owned));
        if let Some(list) = spec.get("targets").and_then(|t| t.as_sequence()) {
            out.extend(list.iter().filter_map(|t| t.as_str()).map(str::to_owned));
        }
    }
    out
}

pub async fn import(paths: Vec<String>, team: Option<String>, apply: bool, json: bool) -> Result<(), CliError> {
    let client = signed_in_client()?;
    let http = reqwest::Client::new();
    // Each source with the directory its Location targets must stay under.
    let mut queue: VecDeque<(Source, PathBuf)> = VecDeque::new();
    for arg in &paths {
        if arg.starts_with("http://") || arg.starts_with("https://") {
            let url = url::Url::parse(arg).map_err(|e| CliError::usage(format!("{arg:?} is not a URL: {e}")))?;
            queue.push_back((Source::Url(url), PathBuf::new()));
            continue;
        }
        // Absolute, so "stays under the directory imported" means what it says.
        let path = std::path::absolute(arg).map_err(|e| CliError::usage(format!("{arg}: {e}")))?;
        let path = path.as_path();
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            let root = normalize(path);
            queue.extend(found.into_iter().map(|f| (Source::File(f), root.clone())));
        } else if path.is_file() {
            let file = normalize(path);
            let root = file.parent().map(Path::to_path_buf).unwrap_or_default();
            queue.push_back((Source::File(file), root));
        } else {
            return Err(CliError::usage(format!("{arg}: no such file or directory")));
        }
    }
    let mut seen: BTreeSet<Source> = BTreeSet::new();
    let mut files: Vec<DescriptorFile> = Vec::new();
    let mut unreadable: Vec<ImportedFile> = Vec::new();
    while let Some((source, root)) = queue.pop_front() {
        if !seen.insert(source.clone()) {
            continue;
        }
        if seen.len() > MAX_FILES {
            return Err(CliError::usage(format!("more than {MAX_FILES} descriptor files; import fewer at a time")));
        }
        let path = source.name();
        let content = match read(&source, &http).await {
            Ok(text) if text.len() <= MAX_BATCH_BYTES => text,
            Ok(text) => {
                let error = format!("{} bytes; at most {} KiB per file", text.len(), MAX_BATCH_BYTES / 1024);
                unreadable.push(ImportedFile { path, entities: Vec::new(), warnings: Vec::new(), error: Some(error) });
                continue;
            }
            Err(error) => {
                unreadable.push(ImportedFile { path, entities: Vec::new(), warnings: Vec::new(), error: Some(error) });
                continue;
            }
        };
        for target in targets(&content) {
            match source.join(&target, &root) {
                Some(next) => queue.push_back((next, root.clone())),
                None => unreadable.push(ImportedFile {
                    path: path.clone(),
                    entities: Vec::new(),
                    warnings: vec![format!(
                        "Location target {target:?} is not a .yaml file under {} (or on the same host); not followed",
                        root.display()
                    )],
                    error: None,
                }),
            }
        }
        files.push(DescriptorFile { path, content });
    }
    if files.is_empty() && unreadable.is_empty() {
        return Err(CliError::usage("no descriptor files (*.yaml, *.yml) found"));
    }

    let mut reports: Vec<ImportedFile> = unreadable;
    let mut batch: Vec<DescriptorFile> = Vec::new();
    let mut size = 0;
    for file in files {
        // JSON escaping and the path count against the body limit too.
        let cost = file.content.len() + file.content.len() / 8 + file.path.len() + 64;
        if !batch.is_empty() && (size + cost > MAX_BATCH_BYTES || batch.len() == MAX_BATCH_FILES) {
            let sent = std::mem::take(&mut batch);
            reports.extend(send(&client, sent, &team, apply).await?);
            size = 0;
        }
        size += cost;
        batch.push(file);
    }
    if !batch.is_empty() {
        reports.extend(send(&client, batch, &team, apply).await?);
    }
    if json {
        return output::json(&ImportReport { applied: apply, files: reports });
    }
    print_report(&reports, apply);
    Ok(())
}

async fn send(
    client: &crate::client::Client,
    files: Vec<DescriptorFile>,
    team: &Option<String>,
    apply: bool,
) -> Result<Vec<ImportedFile>, CliError> {
    let report: ImportReport =
        client.post("/catalog/import", &CatalogImport { files, team: team.clone(), apply }).await?;
    Ok(report.files)
}

fn print_report(reports: &[ImportedFile], apply: bool) {
    let (mut create, mut update, mut skip) = (0, 0, 0);
    for file in reports {
        println!("{}", file.path);
        if let Some(error) = &file.error {
            println!("  error: {error}");
        }
        for entity in &file.entities {
            match entity.action.as_str() {
                "create" => create += 1,
                "update" => update += 1,
                _ => skip += 1,
            }
            match &entity.detail {
                Some(detail) => println!("  {:<6} {} ({detail})", entity.action, entity.entity),
                None => println!("  {:<6} {}", entity.action, entity.entity),
            }
        }
        for warning in &file.warnings {
            println!("  warning: {warning}");
        }
    }
    let verb = if apply { ("created", "updated") } else { ("to create", "to update") };
    println!("{create} {}, {update} {}, {skip} skipped", verb.0, verb.1);
    if !apply {
        println!("Dry run: nothing was written. Run again with --apply to import.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_targets_are_found_and_joined() {
        let text = "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata: {name: all}\nspec:\n  targets: [./a.yaml, ../b.yaml]\n---\nkind: Component\n";
        assert_eq!(targets(text), ["./a.yaml", "../b.yaml"]);
        let from = Source::File(PathBuf::from("top/cat/all.yaml"));
        let root = Path::new("top");
        assert_eq!(from.join("./a.yaml", root), Some(Source::File(PathBuf::from("top/cat/a.yaml"))));
        assert_eq!(from.join("../b.yaml", root), Some(Source::File(PathBuf::from("top/b.yaml"))));
        assert_eq!(from.join("../../up.yaml", root), None, "outside the directory imported");
        assert_eq!(from.join("../../../home/me/.ssh/id_rsa", root), None);
        assert_eq!(from.join("a.txt", root), None, "descriptors only");
        assert_eq!(from.join("https://evil.example/x.yaml", root), None);
        let url = Source::Url(url::Url::parse("https://example.com/c/all.yaml").expect("url"));
        assert_eq!(url.join("a.yaml", root).map(|s| s.name()).as_deref(), Some("https://example.com/c/a.yaml"));
        assert_eq!(url.join("http:evil.example/x.yaml", root), None, "never another host");
    }
}
