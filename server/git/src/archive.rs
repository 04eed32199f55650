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
    #[error("{path} is {size} bytes; at most {max} are read")]
    TooLarge { path: String, size: u64, max: u64 },
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

/// The contents of the file at `commit:path`, or `None` when there is none; a file over
/// `max` bytes is refused from its object header, before any of it is read (a small push
/// can carry a huge file that compresses well).
pub async fn read_file(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    path: &str,
    max: u64,
    env: &ObjectEnv,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    if object_type(git_bin, repo, commit, path, env).await?.as_deref() != Some("blob") {
        return Ok(None);
    }
    let size = object_size(git_bin, repo, &format!("{commit}:{path}"), env).await?;
    if size > max {
        return Err(ArchiveError::TooLarge { path: path.to_owned(), size, max });
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

/// One entry of a git tree: its mode (`0o100644`, `0o120000`, …), object and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub mode: u32,
    pub object: String,
    pub path: String,
}

/// Parses `git ls-tree -z` output (`<mode> <type> <object>\t<path>\0`…).
fn parse_tree(out: &[u8]) -> Vec<TreeEntry> {
    out.split(|b| *b == 0)
        .filter(|record| !record.is_empty())
        .filter_map(|record| {
            let text = String::from_utf8_lossy(record);
            let (meta, path) = text.split_once('\t')?;
            let mut parts = meta.split(' ');
            let mode = u32::from_str_radix(parts.next()?, 8).ok()?;
            let object = parts.nth(1)?.to_owned();
            Some(TreeEntry { mode, object, path: path.to_owned() })
        })
        .collect()
}

async fn ls_tree(git_bin: &Path, repo: &Path, env: &ObjectEnv, args: &[&str]) -> Result<Vec<TreeEntry>, ArchiveError> {
    let output = git(git_bin, repo, env).args(["ls-tree", "-z"]).args(args).output().await?;
    if !output.status.success() {
        return Err(ArchiveError::Git {
            command: "ls-tree",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(parse_tree(&output.stdout))
}

/// The tree entry at exactly `commit:path` (a file, link, directory or submodule), or
/// `None` when the commit has nothing there.
pub async fn tree_entry(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    path: &str,
    env: &ObjectEnv,
) -> Result<Option<TreeEntry>, ArchiveError> {
    let entries = ls_tree(git_bin, repo, env, &["--full-tree", commit, "--", path]).await?;
    Ok(entries.into_iter().find(|e| e.path == path))
}

/// Every entry under `commit:dir` (`.` for the root), recursively, paths relative to `dir`.
pub async fn tree_entries(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    dir: &str,
    env: &ObjectEnv,
) -> Result<Vec<TreeEntry>, ArchiveError> {
    let tree = if dir == "." { commit.to_owned() } else { format!("{commit}:{dir}") };
    ls_tree(git_bin, repo, env, &["-r", &tree]).await
}

/// What a build context of `commit:dir` would cost: its entries (files, links,
/// directories, submodules) and the bytes of the archive (each entry's tar header and
/// padding, plus the files' sizes from their object headers). Read as a stream and
/// stopped as soon as either passes its bound, so a tiny push whose trees reuse one
/// another ("a tree bomb", millions of entries in a few objects) is never listed whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeCost {
    pub entries: u64,
    pub bytes: u64,
    /// A bound was passed and the listing stopped there.
    pub over: bool,
}

/// What one entry adds to an archive besides its contents: a 512-byte header, padding
/// up to 512 bytes, and a long-name record for a deep path.
pub const TAR_BYTES_PER_ENTRY: u64 = 1024;

pub async fn tree_cost(
    git_bin: &Path,
    repo: &Path,
    commit: &str,
    dir: &str,
    env: &ObjectEnv,
    max_entries: u64,
    max_bytes: u64,
) -> Result<TreeCost, ArchiveError> {
    use tokio::io::AsyncBufReadExt;
    let tree = if dir == "." { commit.to_owned() } else { format!("{commit}:{dir}") };
    // -t lists the directories too (each is an archive entry).
    let mut child = git(git_bin, repo, env)
        .args(["ls-tree", "-r", "-t", "-l", "-z"])
        .arg(&tree)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut cost = TreeCost { entries: 0, bytes: 0, over: false };
    let mut record = Vec::with_capacity(256);
    loop {
        record.clear();
        // A record is `<mode> <type> <object> <size>\t<path>\0`; a path is at most
        // PATH_MAX-ish in practice, and a longer one is cut off by this bound.
        let n = tokio::io::AsyncReadExt::take(&mut reader, 64 * 1024).read_until(0, &mut record).await?;
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&record);
        let size = text.split_once('\t').and_then(|(meta, _)| meta.split_whitespace().nth(3)?.parse::<u64>().ok());
        cost.entries += 1;
        cost.bytes += TAR_BYTES_PER_ENTRY + size.unwrap_or(0);
        if cost.entries > max_entries || cost.bytes > max_bytes {
            cost.over = true;
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Ok(cost);
        }
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(ArchiveError::Git {
            command: "ls-tree",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(cost)
}

/// The size of an object, from its header (nothing of it is read).
pub async fn object_size(git_bin: &Path, repo: &Path, object: &str, env: &ObjectEnv) -> Result<u64, ArchiveError> {
    let output = git(git_bin, repo, env).args(["cat-file", "-s", object]).output().await?;
    let size = String::from_utf8_lossy(&output.stdout).trim().parse::<u64>().ok();
    match size {
        Some(size) if output.status.success() => Ok(size),
        _ => Err(ArchiveError::Git {
            command: "cat-file",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }),
    }
}

/// Runs `git cat-file <mode>` with `objects` on its standard input; answers its output.
async fn cat_file_batch(
    git_bin: &Path,
    repo: &Path,
    mode: &str,
    objects: &[&str],
    env: &ObjectEnv,
) -> Result<Vec<u8>, ArchiveError> {
    use tokio::io::AsyncWriteExt;
    let mut child = git(git_bin, repo, env)
        .args(["cat-file", mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| std::io::Error::other("no stdin"))?;
    let input: String = objects.iter().map(|o| format!("{o}\n")).collect();
    // Written while the output is read, so a large listing cannot fill both pipes.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
    });
    let output = child.wait_with_output().await?;
    let _ = writer.await;
    if !output.status.success() {
        return Err(ArchiveError::Git {
            command: "cat-file",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(output.stdout)
}

/// The contents of small blobs (symbolic link targets), in order; `None` for one over
/// `max` bytes, whose contents are never read (sizes come from the object headers). Two
/// git processes whatever the count.
pub async fn small_blobs(
    git_bin: &Path,
    repo: &Path,
    objects: &[String],
    max: u64,
    env: &ObjectEnv,
) -> Result<Vec<Option<Vec<u8>>>, ArchiveError> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = objects.iter().map(String::as_str).collect();
    let sizes = cat_file_batch(git_bin, repo, "--batch-check=%(objectsize)", &ids, env).await?;
    let sizes: Vec<Option<u64>> = String::from_utf8_lossy(&sizes).lines().map(|l| l.trim().parse().ok()).collect();
    let small: Vec<&str> =
        ids.iter().zip(&sizes).filter(|(_, s)| s.is_some_and(|s| s <= max)).map(|(o, _)| *o).collect();
    let mut contents = cat_file_batch(git_bin, repo, "--batch=%(objectsize)", &small, env).await?.into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for size in sizes {
        match size {
            Some(size) if size <= max => {
                // `<size>\n<contents>\n`
                let header: Vec<u8> = contents.by_ref().take_while(|b| *b != b'\n').collect();
                let declared = String::from_utf8_lossy(&header).trim().parse::<usize>().unwrap_or(0);
                let body: Vec<u8> = contents.by_ref().take(declared).collect();
                contents.next();
                out.push(Some(body));
            }
            _ => out.push(None),
        }
    }
    Ok(out)
}

/// What `$GIT_DIR/info/attributes` says (it outranks a pushed `.gitattributes`): the
/// archive holds every file byte for byte as committed, exactly what the build gate read
/// (`export-subst` would put the commit message into a file; `eol`, filters and
/// encodings would rewrite files; `export-ignore` would drop them).
const EXPORT_ATTRIBUTES: &str = "* -export-subst -export-ignore -text -eol -ident -filter -working-tree-encoding\n";

fn neutralise_attributes(repo: &Path) -> std::io::Result<()> {
    let path = repo.join("info").join("attributes");
    if std::fs::read_to_string(&path).is_ok_and(|text| text == EXPORT_ATTRIBUTES) {
        return Ok(());
    }
    std::fs::create_dir_all(repo.join("info"))?;
    std::fs::write(path, EXPORT_ATTRIBUTES)
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
    neutralise_attributes(repo)?;
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
    fn tree_listings_parse_with_modes_and_any_path() {
        let out = [
            &b"100644 blob aa11\tContainerfile"[..],
            b"120000 blob bb22\tweird\tname",
            b"160000 commit cc33\tvendor/lib",
        ]
        .join(&0u8);
        let entries = parse_tree(&out);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], TreeEntry { mode: 0o100644, object: "aa11".into(), path: "Containerfile".into() });
        assert_eq!((entries[1].mode, entries[1].path.as_str()), (0o120000, "weird\tname"));
        assert_eq!((entries[2].mode, entries[2].object.as_str()), (0o160000, "cc33"));
    }

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
