//! `slipway.toml`, the optional file at a repository's root that tells Slipway how to
//! build and run the service. Parsing is strict: an unknown key or a bad value is an
//! error naming it, so a typo never silently changes a deploy.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    #[serde(default)]
    pub build: BuildSection,
    #[serde(default)]
    pub web: WebSection,
    #[serde(default)]
    pub release: ReleaseSection,
    /// Procfile-style `name = "command"`; `web` gets traffic.
    #[serde(default)]
    pub processes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// The Containerfile/Dockerfile, relative to `context`.
    pub dockerfile: Option<String>,
    /// The directory sent to the builder, relative to the repository root.
    pub context: Option<String>,
    #[serde(default)]
    pub args: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    pub port: Option<u16>,
    pub health: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSection {
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoConfigError {
    #[error("slipway.toml is not valid: {0}")]
    Syntax(String),
    #[error("slipway.toml: {key} = {value:?} {rule}")]
    Invalid { key: &'static str, value: String, rule: &'static str },
    #[error(transparent)]
    Path(#[from] crate::build_inputs::BuildInputError),
}

impl RepoConfig {
    pub fn parse(text: &str) -> Result<RepoConfig, RepoConfigError> {
        let mut config: RepoConfig = toml::from_str(text).map_err(|e| RepoConfigError::Syntax(e.to_string()))?;
        // Paths pass the one gate for build inputs, and are kept as it normalised them.
        if let Some(dockerfile) = &config.build.dockerfile {
            config.build.dockerfile = Some(crate::build_inputs::repo_path("build.dockerfile", dockerfile, false)?);
        }
        if let Some(context) = &config.build.context {
            config.build.context = Some(crate::build_inputs::repo_path("build.context", context, true)?);
        }
        for name in config.build.args.keys() {
            let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(RepoConfigError::Invalid {
                    key: "build.args",
                    value: name.clone(),
                    rule: "is not a build argument name (letters, digits and '_', not starting with a digit)",
                });
            }
        }
        if let Some(health) = &config.web.health
            && !health.starts_with('/')
        {
            return Err(RepoConfigError::Invalid {
                key: "web.health",
                value: health.clone(),
                rule: "must be an HTTP path starting with '/'",
            });
        }
        if config.web.port == Some(0) {
            return Err(RepoConfigError::Invalid { key: "web.port", value: "0".into(), rule: "must be 1-65535" });
        }
        Ok(config)
    }

    /// The context directory, normalised (`"."` for the root).
    pub fn context(&self) -> &str {
        self.build.context.as_deref().unwrap_or(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section() {
        let config = RepoConfig::parse(
            "[build]\ndockerfile = \"docker/Containerfile\"\ncontext = \"app\"\nargs = { VERSION = \"1\" }\n\
             [web]\nport = 8080\nhealth = \"/healthz\"\n[release]\ncommand = \"migrate\"\n\
             [processes]\nweb = \"httpd -f\"\nworker = \"run-jobs\"\n",
        )
        .expect("valid");
        assert_eq!(config.build.dockerfile.as_deref(), Some("docker/Containerfile"));
        assert_eq!(config.context(), "app");
        assert_eq!(config.build.args["VERSION"], "1");
        assert_eq!(config.web.port, Some(8080));
        assert_eq!(config.processes.len(), 2);
        assert_eq!(RepoConfig::parse("").expect("empty is fine").context(), ".");
    }

    #[test]
    fn refuses_typos_and_escapes() {
        let err = RepoConfig::parse("[biuld]\n").expect_err("unknown section");
        assert!(err.to_string().contains("biuld"), "{err}");
        let err = RepoConfig::parse("[build]\ndockerfile = \"../../etc/passwd\"\n").expect_err("escape");
        assert!(err.to_string().contains("build.dockerfile"), "{err}");
        assert!(RepoConfig::parse("[build]\ncontext = \"/abs\"\n").is_err());
        assert!(RepoConfig::parse("[build]\nargs = { \"1X\" = \"a\" }\n").is_err());
        assert!(RepoConfig::parse("[web]\nhealth = \"healthz\"\n").is_err());
        let err = RepoConfig::parse("[web]\nport = \"eighty\"\n").expect_err("type");
        assert!(err.to_string().contains("port"), "{err}");
    }
}
