//! Readying a commit for its build: `slipway.toml` read and the Containerfile found
//! through the one gate for what a repository hands the builder (paths, sizes, links),
//! then the context directory exported for the run that builds it.

use std::path::Path;

use slipway_core::repo_config::RepoConfig;
use slipway_engine::context::{self, BuildSettings};
use slipway_git::archive::{self, ObjectEnv};

use crate::AppState;

/// Why a commit cannot be built.
pub(crate) enum PrepareError {
    /// The commit is wrong (bad slipway.toml, no Containerfile): the pusher must fix it.
    Refused(String),
    Internal(String),
}

/// What a commit says about how to build it.
pub(crate) struct Prepared {
    context_dir: String,
    build: BuildSettings,
}

/// The most of `slipway.toml` or `catalog-info.yaml` that is read: descriptors are small,
/// and a push of a few KiB can carry gigabytes of one compressible file.
pub const MAX_DESCRIPTOR_BYTES: u64 = 1024 * 1024;

/// The most files and directories a build context may hold.
pub const MAX_CONTEXT_ENTRIES: u64 = 100_000;

/// Reads `slipway.toml` (optional) and finds the Containerfile or Dockerfile.
pub(crate) async fn prepare_build(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
) -> Result<Prepared, PrepareError> {
    let git = &state.settings.git;
    let config = match archive::read_file(git, repo, commit, "slipway.toml", MAX_DESCRIPTOR_BYTES, env).await {
        Ok(None) => RepoConfig::default(),
        Ok(Some(bytes)) => {
            RepoConfig::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| PrepareError::Refused(e.to_string()))?
        }
        Err(archive::ArchiveError::TooLarge { size, max, .. }) => {
            return Err(PrepareError::Refused(format!(
                "slipway.toml is {size} bytes; it may be at most {} KiB",
                max / 1024
            )));
        }
        Err(err) => return Err(PrepareError::Internal(format!("reading slipway.toml: {err}"))),
    };
    let context_dir = config.context().to_owned();
    let mut dockerfile = config.build.dockerfile.clone();
    if dockerfile.is_none() {
        for candidate in ["Containerfile", "Dockerfile"] {
            let path = if context_dir == "." { candidate.to_owned() } else { format!("{context_dir}/{candidate}") };
            let kind = archive::object_type(git, repo, commit, &path, env)
                .await
                .map_err(|e| PrepareError::Internal(format!("looking for a Containerfile: {e}")))?;
            if kind.as_deref() == Some("blob") {
                dockerfile = Some(candidate.to_owned());
                break;
            }
        }
    }
    let dockerfile = dockerfile.ok_or_else(|| {
        PrepareError::Refused(
            "no Containerfile or Dockerfile at the root of the repository; add one, or set [build] dockerfile in slipway.toml"
                .to_owned(),
        )
    })?;
    check_build_inputs(state, repo, commit, env, &context_dir, &dockerfile).await?;
    let build = BuildSettings {
        dockerfile,
        args: config.build.args,
        port: config.web.port,
        health: config.web.health,
        processes: config.processes,
        release_command: config.release.command,
    };
    Ok(Prepared { context_dir, build })
}

/// The gate for what the commit hands the builder (see `slipway_core::build_inputs`):
/// the context is a committed directory, the Containerfile a regular file without
/// `--mount`, and every symbolic link in the context points inside it without passing
/// through another link.
async fn check_build_inputs(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
    context_dir: &str,
    dockerfile: &str,
) -> Result<(), PrepareError> {
    use slipway_core::build_inputs::{self as gate, MAX_CONTAINERFILE_BYTES, MODE_SYMLINK};
    let git = &state.settings.git;
    let refused = |e: gate::BuildInputError| PrepareError::Refused(e.to_string());
    let internal = |e: archive::ArchiveError| PrepareError::Internal(format!("reading the build inputs: {e}"));
    if context_dir != "." {
        let entry = archive::tree_entry(git, repo, commit, context_dir, env).await.map_err(internal)?;
        gate::context_entry(context_dir, entry.map(|e| e.mode)).map_err(refused)?;
    }
    let path = if context_dir == "." { dockerfile.to_owned() } else { format!("{context_dir}/{dockerfile}") };
    gate::containerfile_name(&path).map_err(refused)?;
    let entry = archive::tree_entry(git, repo, commit, &path, env).await.map_err(internal)?;
    gate::containerfile_entry(&path, entry.as_ref().map(|e| e.mode)).map_err(refused)?;
    let text = match archive::read_file(git, repo, commit, &path, MAX_CONTAINERFILE_BYTES, env).await {
        Ok(text) => text.unwrap_or_default(),
        Err(archive::ArchiveError::TooLarge { .. }) => {
            return Err(refused(gate::BuildInputError::TooLarge { path, limit: MAX_CONTAINERFILE_BYTES }));
        }
        Err(err) => return Err(internal(err)),
    };
    gate::containerfile_text(&path, &String::from_utf8_lossy(&text)).map_err(refused)?;

    // Measured from the object headers before anything is archived or sent, counting
    // every entry's share of the archive, so neither a huge file nor millions of tiny
    // ones get through.
    let max = state.settings.max_context_bytes;
    let cost =
        archive::tree_cost(git, repo, commit, context_dir, env, MAX_CONTEXT_ENTRIES, max).await.map_err(internal)?;
    if cost.over && cost.entries > MAX_CONTEXT_ENTRIES {
        return Err(PrepareError::Refused(format!(
            "the build context {context_dir} holds more than {MAX_CONTEXT_ENTRIES} files and directories; \
             leave them out of the context (set [build] context in slipway.toml)"
        )));
    }
    if cost.over {
        return Err(PrepareError::Refused(format!(
            "the build context {context_dir} holds more than {} MiB of files; at most {} MiB is built \
             (--max-context-mb); leave large files out of the context (set [build] context in slipway.toml)",
            max / (1024 * 1024),
            max / (1024 * 1024)
        )));
    }
    let links: Vec<archive::TreeEntry> = archive::tree_entries(git, repo, commit, context_dir, env)
        .await
        .map_err(internal)?
        .into_iter()
        .filter(|e| e.mode == MODE_SYMLINK)
        .collect();
    let objects: Vec<String> = links.iter().map(|l| l.object.clone()).collect();
    // A link target longer than PATH_MAX is no path the build could use.
    let targets = archive::small_blobs(git, repo, &objects, 4096, env).await.map_err(internal)?;
    let link_paths: std::collections::HashSet<&str> = links.iter().map(|l| l.path.as_str()).collect();
    for (link, target) in links.iter().zip(targets) {
        let target = target.map(|t| String::from_utf8_lossy(&t).into_owned()).unwrap_or_else(|| "/".repeat(4097));
        let shown = if context_dir == "." { link.path.clone() } else { format!("{context_dir}/{}", link.path) };
        gate::link_inside(&link.path, &target, |p| link_paths.contains(p)).map_err(|_| {
            refused(gate::BuildInputError::LinkOutside { path: shown, target: target.chars().take(200).collect() })
        })?;
    }
    Ok(())
}

/// Exports the commit's context directory for the run that will build it.
pub(crate) async fn export_context(
    state: &AppState,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
    run_id: i64,
    prepared: Prepared,
) -> Result<(), String> {
    let contexts = &state.engine.config().contexts_dir;
    let result = async {
        tokio::fs::create_dir_all(contexts).await.map_err(|e| e.to_string())?;
        let tar = context::tar_path(contexts, run_id);
        archive::export_tar(&state.settings.git, repo, commit, &prepared.context_dir, env, &tar)
            .await
            .map_err(|e| e.to_string())?;
        context::write_settings(contexts, run_id, &prepared.build).await.map_err(|e| e.to_string())
    }
    .await;
    if result.is_err() {
        context::remove(contexts, run_id).await;
    }
    result
}
