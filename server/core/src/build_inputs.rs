//! The one gate for what a pushed repository hands the builder: the paths `slipway.toml`
//! names, the Containerfile's and the build context's git tree entries (modes and symlink
//! targets), and the Containerfile's mount options and remote `ADD`s. Pushed code is hostile: every rule
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
        "{path}{}: RUN --mount (and the escape directive) is refused: on this engine's buildah a mount can reach \
         the host through a symbolic link (CVE-2024-1753); copy what you need with COPY or COPY --from=<stage>",
        line.map(|n| format!(" line {n}")).unwrap_or_default()
    )]
    Mount { path: String, line: Option<usize> },
    #[error(
        "{path} line {line}: ADD of a URL (or of a variable) is refused: the engine fetches it from the build \
         host's network, where loopback services and the cloud's metadata address answer; fetch it in a RUN step \
         (curl, wget) or commit the file"
    )]
    RemoteAdd { path: String, line: usize },
    #[error(
        "slipway.toml: build.dockerfile = {0:?}: a name ending in .in is run through the C preprocessor on the \
         build host; rename the file"
    )]
    Preprocessed(String),
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

/// The Containerfile's own name: buildah runs one ending in `.in` through cpp on the
/// host (`#include "/etc/shadow"`).
pub fn containerfile_name(path: &str) -> Result<(), BuildInputError> {
    if path.to_ascii_lowercase().ends_with(".in") {
        return Err(BuildInputError::Preprocessed(path.to_owned()));
    }
    Ok(())
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
/// resolve inside the context: relative, never climbing above the root, and never
/// passing through another link on the way (`s -> .` then `x -> s/s/../..` climbs out
/// on disk while its text does not); `is_link` says which context paths are links.
pub fn link_inside(path: &str, target: &str, is_link: impl Fn(&str) -> bool) -> Result<(), BuildInputError> {
    let outside = || BuildInputError::LinkOutside { path: path.to_owned(), target: target.to_owned() };
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(outside());
    }
    // Resolve from the link's directory, one component at a time.
    let mut at: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    at.pop();
    let parts: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == ".." {
            at.pop().ok_or_else(outside)?;
        } else {
            at.push(part);
            // Every component but the last is walked through as a directory: it must be
            // one, not a link (the last may be a link; it is checked on its own).
            if i + 1 < parts.len() && is_link(&at.join("/")) {
                return Err(outside());
            }
        }
    }
    Ok(())
}

/// The Containerfile's text: refuses `--mount` anywhere (any instruction, `ONBUILD`, a
/// comment inside a continuation), also spelled with quotes, backslashes or split over
/// lines, and the `escape` parser directive. A narrower rule (only `from=`) was fooled
/// by quoting, ARG expansion and continuation tricks; mounts are refused until the
/// engine's buildah has the CVE-2024-1753 fix.
pub fn containerfile_text(path: &str, text: &str) -> Result<(), BuildInputError> {
    // What a parser could read as `--mount` once quotes, escapes and line joins go.
    let squeeze = |s: &str| -> String {
        s.chars().filter(|c| !matches!(c, '\\' | '"' | '\'' | '`' | '\n' | '\r')).flat_map(char::to_lowercase).collect()
    };
    for (n, line) in text.lines().enumerate() {
        let lower = line.trim().to_ascii_lowercase();
        let directive =
            lower.strip_prefix('#').map(str::trim_start).is_some_and(|d| d.replace(' ', "").starts_with("escape="));
        if directive || squeeze(line).contains("--mount") {
            return Err(BuildInputError::Mount { path: path.to_owned(), line: Some(n + 1) });
        }
    }
    if squeeze(text).contains("--mount") {
        return Err(BuildInputError::Mount { path: path.to_owned(), line: None });
    }
    remote_adds(path, text, squeeze)
}

/// Refuses an `ADD` (also under `ONBUILD`, however continued or quoted) whose sources
/// name a URL or a git remote, or a variable that could hold one: buildah fetches those
/// in the engine's own process, on the host's network, not in the build's sandbox.
fn remote_adds(path: &str, text: &str, squeeze: impl Fn(&str) -> String) -> Result<(), BuildInputError> {
    let remote = |logical: &str| {
        let words = squeeze(logical);
        let words = words.trim_start();
        let words = words.strip_prefix("onbuild").map(str::trim_start).unwrap_or(words);
        let is_add = words.strip_prefix("add").is_some_and(|rest| rest.starts_with(char::is_whitespace));
        is_add && ["://", "$", "git@"].iter().any(|sign| words.contains(sign))
    };
    let mut logical = String::new();
    let mut first_line = 0;
    for (n, line) in text.lines().enumerate() {
        if logical.is_empty() {
            first_line = n + 1;
        }
        logical.push_str(line);
        logical.push('\n');
        if line.trim_end().ends_with('\\') {
            continue;
        }
        if remote(&logical) {
            return Err(BuildInputError::RemoteAdd { path: path.to_owned(), line: first_line });
        }
        logical.clear();
    }
    if remote(&logical) {
        return Err(BuildInputError::RemoteAdd { path: path.to_owned(), line: first_line });
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
        let none = |_: &str| false;
        assert!(link_inside("current", "releases/v1", none).is_ok());
        assert!(link_inside("a/b/link", "../c", none).is_ok());
        assert!(link_inside("a/link", "../x", none).is_ok(), "a/../x is x, inside");
        assert!(link_inside("a/link", "./x/../y", none).is_ok());
        for (path, target) in [("host", "/"), ("etc", "/etc"), ("up", ".."), ("a/link", "../../x"), ("x", "")] {
            let err = link_inside(path, target, none).expect_err(target);
            assert!(err.to_string().contains("outside the build context"), "{err}");
        }
        // Deep then climbing out again.
        assert!(link_inside("a/b", "c/d/../../../../x", none).is_err());
        // A chain: `s -> .` makes s/s/s/.. climb on disk though the text stays inside.
        let links = |p: &str| p == "s";
        assert!(link_inside("host", "s/s/s/s/../../../..", links).is_err());
        assert!(link_inside("to-s", "s", links).is_ok(), "a link to a link is checked on its own");
    }

    #[test]
    fn mounts_are_refused_however_they_are_written() {
        let ok = "FROM busybox\nRUN make\nCOPY --from=build /a /b\n";
        assert!(containerfile_text("Containerfile", ok).is_ok());
        for (text, line) in [
            (
                "FROM b AS s\nRUN ln -s / /r\nFROM b\nRUN --mount=type=bind,from=s,source=/r,target=/h cat /h/x\n",
                Some(4),
            ),
            ("FROM x\nRUN --mount=type=cache,target=/c make\n", Some(2)),
            ("FROM x\nRUN --mount=type=bind,\"from\"=s,source=/r,target=/h true\n", Some(2)),
            ("FROM x\nRUN --mo\\unt=type=bind,from=s,target=/h true\n", Some(2)),
            ("FROM x\nONBUILD RUN --mount=type=bind,from=s,target=/h true\n", Some(2)),
            ("FROM x\nARG M=type=bind,from=s\nRUN --MOUNT=$M true\n", Some(3)),
            ("FROM x\nRUN -\\\n-mount=type=bind,from=s,target=/h true\n", None),
            ("# escape=`\nFROM x\nRUN true\n", Some(1)),
        ] {
            match containerfile_text("Containerfile", text) {
                Err(BuildInputError::Mount { line: found, .. }) => assert_eq!(found, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let err = containerfile_text("Containerfile", "RUN --mount=x\n").expect_err("mount");
        assert!(err.to_string().starts_with("Containerfile line 1: RUN --mount"), "{err}");
    }

    #[test]
    fn adds_of_urls_are_refused() {
        let ok = "FROM x\nADD app.tar.gz /srv/\nADD --chown=1:1 a b /c/\nCOPY http.conf /etc/\nRUN wget https://a/b\n";
        assert!(containerfile_text("Containerfile", ok).is_ok());
        for (text, line) in [
            ("FROM x\nADD http://169.254.169.254/latest/meta-data/ /m\n", 2),
            ("FROM x\nadd HTTPS://127.0.0.1:5000/v2/ /r\n", 2),
            ("FROM x\nADD git@github.com:a/b.git /src\n", 2),
            ("FROM x\nARG U=http://127.0.0.1:7700/\nADD ${U} /u\n", 3),
            ("FROM x\nONBUILD ADD http://h/ /h\n", 2),
            ("FROM x\nA\\\nDD \"http\"://h/ /h\n", 2),
            ("FROM x\nADD --checksum=sha256:0 \\\n  http://h/f /f\n", 2),
            ("FROM x\nADD http://h/f \\", 2),
        ] {
            match containerfile_text("Containerfile", text) {
                Err(BuildInputError::RemoteAdd { line: found, .. }) => assert_eq!(found, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_preprocessed_containerfile_is_refused() {
        assert!(containerfile_name("Containerfile").is_ok());
        assert!(containerfile_name("docker/Containerfile.IN").is_err());
    }
}
