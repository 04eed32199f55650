//! Reading a pushed commit: single files (`slipway.toml`) and the tree as a tar archive
//! for the builder. During `pre-receive` the pushed objects sit in git's quarantine
//! directory; the hook hands its object-directory variables over, and these functions
//! pass them to git so the new commit is readable before the ref moves.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Object-directory variables from the hook (`GIT_OBJECT_DIRECTORY`, …); empty outside
/// a push.
#[derive(Debug, Clone, Default)]
pub struct ObjectEnv(pub Vec<(String, String)>);

impl ObjectEnv {
    /// Keeps only the object-directory variables, and only if every path they name lies
    /// inside `repo` (git's quarantine is `<repo>/objects/incoming-…`): a hook cannot
    /// point the server at another repository's objects.
    pub fn confined_to(vars: &[(String, String)], repo: &Path) -> Result<ObjectEnv, String> {
        let mut kept = Vec::new();
        for (key, value) in vars {
            if !OBJECT_VARS.contains(&key.as_str()) {
                continue;
            }
            // GIT_ALTERNATE_OBJECT_DIRECTORIES is a ':'-separated list.
            for path in value.split(':').filter(|p| !p.is_empty()) {
                let path = Path::new(path);
                let inside = path.is_absolute()
                    && !path.components().any(|c| matches!(c, std::path::Component::ParentDir))
                    && path.starts_with(repo);
                if !inside {
                    return Err(format!("{key} points outside the repository being pushed"));
                }
            }
            kept.push((key.clone(), value.clone()));
        }
        Ok(ObjectEnv(kept))
    }
}

/// The variables a hook must forward for its objects to be readable.
pub const OBJECT_VARS: &[&str] = &["GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH"];

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("running git: {0}")]
    Io(#[from] std::io::Error),
    #[error("git {command} failed: {stderr}")]
    Git { command: &'static str, stderr: String },
}

fn git(git: &Path, repo: &Path, env: &ObjectEnv) -> Command {
    let mut cmd = Command::new(git);
    cmd.arg("--git-dir").arg(repo).env_remove("GIT_DIR").stdin(Stdio::null());
    for (key, value) in &env.0 {
        if OBJECT_VARS.contains(&key.as_str()) {
            cmd.env(key, value);
        }
    }
    cmd
}

/// The commit a revision names, or `None` when it names none.
pub async fn resolve(git_bin: &Path, repo: &Path, rev: &str, env: &ObjectEnv) -> Result<Option<String>, ArchiveError> {
    let output = git(git_bin, repo, env)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .await?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

/// When `commit` was committed (Unix ms), or `None` when it names no commit.
pub async fn commit_time(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    env: &ObjectEnv,
) -> Result<Option<i64>, ArchiveError> {
    let output =
        git(git_bin, repo, env).args(["show", "-s", "--format=%ct", "--end-of-options", commit]).output().await?;
    if !output.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse::<i64>().ok().map(|secs| secs * 1000))
}

/// The kind of object at `commit:path` (`blob`, `tree`), or `None` when absent.
pub async fn object_type(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    path: &str,
    env: &ObjectEnv,
) -> Result<Option<String>, ArchiveError> {
    let output = git(git_bin, repo, env).args(["cat-file", "-t"]).arg(format!("{commit}:{path}")).output().await?;
    Ok(output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

/// The contents of the file at `commit:path`, or `None` when there is none.
pub async fn read_file(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    path: &str,
    env: &ObjectEnv,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    if object_type(git_bin, repo, commit, path, env).await?.as_deref() != Some("blob") {
        return Ok(None);
    }
    let output = git(git_bin, repo, env).args(["cat-file", "blob"]).arg(format!("{commit}:{path}")).output().await?;
    if !output.status.success() {
        return Err(ArchiveError::Git {
            command: "cat-file",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(Some(output.stdout))
}

/// Writes the tree at `commit:dir` as a tar archive to `dest`.
pub async fn export_tar(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    dir: &str,
    env: &ObjectEnv,
    dest: &Path,
) -> Result<(), ArchiveError> {
    let tree = if dir == "." { commit.to_owned() } else { format!("{commit}:{dir}") };
    let file = std::fs::File::create(dest)?;
    // spawn + wait_with_output: `output()` would replace the file with a pipe.
    let child = git(git_bin, repo, env)
        .args(["archive", "--format=tar"])
        .arg(&tree)
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .spawn()?;
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(ArchiveError::Git {
            command: "archive",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_directories_must_stay_inside_the_repository() {
        let repo = Path::new("/data/repos/shop.git");
        let ok = vec![
            ("GIT_QUARANTINE_PATH".to_owned(), "/data/repos/shop.git/objects/incoming-Ab12".to_owned()),
            ("GIT_OBJECT_DIRECTORY".to_owned(), "/data/repos/shop.git/objects/incoming-Ab12".to_owned()),
            ("GIT_ALTERNATE_OBJECT_DIRECTORIES".to_owned(), "/data/repos/shop.git/objects".to_owned()),
            ("PATH".to_owned(), "/ignored".to_owned()),
        ];
        let env = ObjectEnv::confined_to(&ok, repo).expect("inside");
        assert_eq!(env.0.len(), 3, "unrelated variables are dropped");
        for bad in [
            "/data/repos/other.git/objects",
            "/data/repos/shop.git/../other.git/objects",
            "relative/objects",
            "/data/repos/shop.git/objects:/data/repos/other.git/objects",
        ] {
            let vars = vec![("GIT_ALTERNATE_OBJECT_DIRECTORIES".to_owned(), bad.to_owned())];
            assert!(ObjectEnv::confined_to(&vars, repo).is_err(), "{bad}");
        }
    }
}
