//! The one gate for what a pushed repository hands the builder: the paths `slipway.toml`
//! names, the Containerfile's and the build context's git tree entries (modes and symlink
//! targets), and the Containerfile's mount options. Pushed code is hostile: every rule
//! here stops a way a build could read the host (a JSON list where a path belongs is a
//! list of host files to Podman's API; a symlinked Containerfile or context entry is
//! followed on the host; a `RUN --mount` from a stage holding a symlink to `/` mounts the
//! host's root on buildah 1.28, CVE-2024-1753). Pure rules: slipway-git reads the tree.

/// Why a push cannot be built: one line naming the file (or key) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildInputError {
    #[error(
        "slipway.toml: {key} = {value:?} must be a plain relative path inside the repository: names of letters, \
         digits, '.', '_', '-', '+' or '@' joined by '/' (no leading '/', no '.' or '..', no quotes, brackets or \
         commas)"
    )]
    Path { key: &'static str, value: String },
    #[error("{path} is {what}; the Containerfile must be a regular file committed in the repository")]
    Containerfile { path: String, what: &'static str },
    #[error("{path} is {what}; the build context must be a directory committed in the repository")]
    Context { path: String, what: &'static str },
    #[error(
        "{path} is a symbolic link to {target:?}, outside the build context; links in the context must point \
         inside it"
    )]
    LinkOutside { path: String, target: String },
    #[error("{path} is over {limit} bytes; a Containerfile that large is refused")]
    TooLarge { path: String, limit: u64 },
    #[error(
        "{path} line {line}: RUN --mount with from= is refused (on this engine it can reach the host through a \
         symbolic link in the stage); copy what you need with COPY --from=<stage> instead"
    )]
    MountFrom { path: String, line: usize },
}

/// The largest Containerfile read (checked from the object header before reading).
pub const MAX_CONTAINERFILE_BYTES: u64 = 1024 * 1024;

/// Git tree modes.
pub const MODE_TREE: u32 = 0o040000;
pub const MODE_FILE: u32 = 0o100644;
pub const MODE_EXECUTABLE: u32 = 0o100755;
pub const MODE_SYMLINK: u32 = 0o120000;
pub const MODE_SUBMODULE: u32 = 0o160000;

/// Checks a path from `slipway.toml` and answers it normalised (no trailing '/'; `"."`
/// only where `root_ok`, for the context).
pub fn repo_path(key: &'static str, value: &str, root_ok: bool) -> Result<String, BuildInputError> {
    let bad = || BuildInputError::Path { key, value: value.to_owned() };
    let trimmed = value.strip_suffix('/').unwrap_or(value);
    if root_ok && trimmed == "." {
        return Ok(".".to_owned());
    }
    if trimmed.is_empty() || trimmed.len() > 1024 {
        return Err(bad());
    }
    for part in trimmed.split('/') {
        let plain = !part.is_empty()
            && part != "."
            && part != ".."
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b));
        if !plain {
            return Err(bad());
        }
    }
    Ok(trimmed.to_owned())
}

/// What a tree mode is, for an error.
fn describe(mode: u32) -> &'static str {
    match mode {
        MODE_SYMLINK => "a symbolic link (mode 120000)",
        MODE_SUBMODULE => "a submodule (mode 160000)",
        MODE_TREE => "a directory",
        _ => "not a regular file",
    }
}

/// The Containerfile's tree entry: `None` when the commit has nothing at that path.
pub fn containerfile_entry(path: &str, mode: Option<u32>) -> Result<(), BuildInputError> {
    match mode {
        Some(MODE_FILE | MODE_EXECUTABLE) => Ok(()),
        None => Err(BuildInputError::Containerfile { path: path.to_owned(), what: "missing" }),
        Some(other) => Err(BuildInputError::Containerfile { path: path.to_owned(), what: describe(other) }),
    }
}

/// The context directory's own tree entry (not checked for the repository root).
pub fn context_entry(path: &str, mode: Option<u32>) -> Result<(), BuildInputError> {
    match mode {
        Some(MODE_TREE) => Ok(()),
        None => Err(BuildInputError::Context { path: path.to_owned(), what: "missing" }),
        Some(MODE_SYMLINK) => Err(BuildInputError::Context { path: path.to_owned(), what: describe(MODE_SYMLINK) }),
        Some(other) => Err(BuildInputError::Context { path: path.to_owned(), what: describe(other) }),
    }
}

/// A symbolic link at `path` (relative to the context root) pointing at `target` must
/// resolve inside the context: relative, and never climbing above the root.
pub fn link_inside(path: &str, target: &str) -> Result<(), BuildInputError> {
    let outside = || BuildInputError::LinkOutside { path: path.to_owned(), target: target.to_owned() };
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(outside());
    }
    // Where the link sits: its directory's depth below the context root.
    let mut depth: usize = path.split('/').filter(|p| !p.is_empty()).count().saturating_sub(1);
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => depth = depth.checked_sub(1).ok_or_else(outside)?,
            _ => depth += 1,
        }
    }
    Ok(())
}

/// The Containerfile's text: refuses `RUN --mount=…from=…` (continuation lines joined).
pub fn containerfile_text(path: &str, text: &str) -> Result<(), BuildInputError> {
    let mut instruction = String::new();
    let mut first_line = 0;
    for (n, line) in text.lines().enumerate() {
        if instruction.is_empty() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            first_line = n + 1;
        }
        let continued = line.trim_end().strip_suffix('\\');
        instruction.push_str(continued.unwrap_or(line));
        instruction.push(' ');
        if continued.is_some() {
            continue;
        }
        let words: Vec<&str> = instruction.split_whitespace().collect();
        let is_run = words.first().is_some_and(|w| w.eq_ignore_ascii_case("RUN"));
        let mounts_from = words.iter().skip(1).take_while(|w| w.starts_with("--")).any(|w| {
            w.to_ascii_lowercase()
                .strip_prefix("--mount=")
                .is_some_and(|options| options.split(',').any(|o| o.trim().starts_with("from=")))
        });
        if is_run && mounts_from {
            return Err(BuildInputError::MountFrom { path: path.to_owned(), line: first_line });
        }
        instruction.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_slipway_toml_are_plain_relative_paths() {
        assert_eq!(repo_path("build.dockerfile", "docker/Containerfile", false), Ok("docker/Containerfile".into()));
        assert_eq!(repo_path("build.context", "app/", true), Ok("app".into()));
        assert_eq!(repo_path("build.context", ".", true), Ok(".".into()));
        assert_eq!(repo_path("build.dockerfile", "Containerfile.prod-v2+x@y", false).map(|_| ()), Ok(()));
        for bad in [
            r#"["Containerfile","/etc/shadow"]"#,
            "/etc/passwd",
            "../outside",
            "a/../../b",
            "./Containerfile",
            "a//b",
            "",
            ".",
            "a\\b",
            "a b",
            "tab\there",
            "C:x",
            "quote\"d",
        ] {
            let err = repo_path("build.dockerfile", bad, false).expect_err(bad);
            assert!(err.to_string().starts_with("slipway.toml: build.dockerfile = "), "{err}");
        }
        assert!(repo_path("build.context", "..", true).is_err());
    }

    #[test]
    fn the_containerfile_and_context_are_regular_entries() {
        assert!(containerfile_entry("Containerfile", Some(MODE_FILE)).is_ok());
        assert!(containerfile_entry("Containerfile", Some(MODE_EXECUTABLE)).is_ok());
        let err = containerfile_entry("Containerfile", Some(MODE_SYMLINK)).expect_err("symlink");
        assert_eq!(
            err.to_string(),
            "Containerfile is a symbolic link (mode 120000); the Containerfile must be a regular file committed in \
             the repository"
        );
        assert!(containerfile_entry("Containerfile", Some(MODE_SUBMODULE)).is_err());
        assert!(containerfile_entry("Containerfile", Some(MODE_TREE)).is_err());
        assert!(containerfile_entry("Containerfile", None).is_err());
        assert!(context_entry("app", Some(MODE_TREE)).is_ok());
        assert!(context_entry("app", Some(MODE_SYMLINK)).unwrap_err().to_string().contains("app is a symbolic link"));
        assert!(context_entry("app", Some(MODE_SUBMODULE)).is_err());
        assert!(context_entry("app", None).is_err());
    }

    #[test]
    fn links_in_the_context_must_stay_inside_it() {
        assert!(link_inside("current", "releases/v1").is_ok());
        assert!(link_inside("a/b/link", "../c").is_ok());
        assert!(link_inside("a/link", "../x").is_ok(), "a/../x is x, inside");
        assert!(link_inside("a/link", "./x/../y").is_ok());
        for (path, target) in [("host", "/"), ("etc", "/etc"), ("up", ".."), ("a/link", "../../x"), ("x", "")] {
            let err = link_inside(path, target).expect_err(target);
            assert!(err.to_string().contains("outside the build context"), "{err}");
        }
        // Deep then climbing out again.
        assert!(link_inside("a/b", "c/d/../../../../x").is_err());
    }

    #[test]
    fn run_mounts_from_a_stage_are_refused() {
        let ok = "FROM busybox\nRUN --mount=type=cache,target=/root/.cache make\nCOPY --from=build /a /b\n";
        assert!(containerfile_text("Containerfile", ok).is_ok());
        let cve = "FROM busybox AS s\nRUN ln -s / /rootfs\nFROM busybox\n\
                   RUN --mount=type=bind,from=s,source=/rootfs,target=/host,rw cat /host/etc/shadow\n";
        assert_eq!(
            containerfile_text("Containerfile", cve),
            Err(BuildInputError::MountFrom { path: "Containerfile".into(), line: 4 })
        );
        let continued = "FROM x\n# a comment\nrun \\\n  --network=none \\\n  --MOUNT=type=bind,source=/x,FROM=s,target=/h \\\n  true\n";
        assert_eq!(
            containerfile_text("Dockerfile", continued),
            Err(BuildInputError::MountFrom { path: "Dockerfile".into(), line: 3 })
        );
        assert!(containerfile_text("C", "RUN echo --mount=type=bind,from=s\n").is_ok(), "an argument, not an option");
    }
}
