//! Bare repositories on disk: `<root>/<name>.git`.

use std::path::{Path, PathBuf};

use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("running git: {0}")]
    Io(#[from] std::io::Error),
    #[error("git init failed: {0}")]
    Init(String),
}

pub fn path(root: &Path, name: &str) -> PathBuf {
    root.join(format!("{name}.git"))
}

/// Creates an empty bare repository whose default branch is `main`. Idempotent.
pub async fn init(git: &Path, root: &Path, name: &str) -> Result<PathBuf, RepoError> {
    let path = path(root, name);
    tokio::fs::create_dir_all(root).await?;
    let output = Command::new(git)
        .args(["init", "--bare", "--quiet", "--initial-branch=main"])
        .arg(&path)
        .env_remove("GIT_DIR")
        .output()
        .await?;
    if !output.status.success() {
        return Err(RepoError::Init(String::from_utf8_lossy(&output.stderr).trim().to_owned()));
    }
    Ok(path)
}

/// Removes a repository; a missing one is not an error.
pub async fn remove(root: &Path, name: &str) -> Result<(), RepoError> {
    match tokio::fs::remove_dir_all(path(root, name)).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Bytes used on disk under `dir` (0 when it cannot be read).
pub async fn disk_size(dir: &Path) -> u64 {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut total = 0;
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => stack.push(entry.path()),
                    Ok(meta) => total += meta.len(),
                    Err(_) => {}
                }
            }
        }
        total
    })
    .await
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn init_is_idempotent_and_remove_cleans_up() {
        let root = tempfile::tempdir().expect("tempdir");
        let git = Path::new("git");
        let repo = init(git, root.path(), "shop").await.expect("init");
        assert!(repo.join("HEAD").is_file());
        let head = std::fs::read_to_string(repo.join("HEAD")).expect("HEAD");
        assert_eq!(head.trim(), "ref: refs/heads/main");
        init(git, root.path(), "shop").await.expect("init again");
        assert!(disk_size(&repo).await > 0);
        remove(root.path(), "shop").await.expect("remove");
        assert!(!repo.exists());
        remove(root.path(), "shop").await.expect("remove again");
    }
}
