//! Catalog metadata of a service (Backstage-style): lifecycle, tier, links, on-call and
//! dependencies, with the rules each field must satisfy.

use std::fmt;
use std::str::FromStr;

use crate::names::{NameError, validate_name};

pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_LINKS: usize = 20;
pub const MAX_LINK_NAME_LEN: usize = 64;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_ON_CALL_LEN: usize = 200;
pub const MAX_DEPENDENCIES: usize = 50;

/// Where a service is in its life, as in Backstage's `spec.lifecycle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    #[default]
    Experimental,
    Production,
    Deprecated,
}

/// How critical a service is to the business; tier-1 pages someone at night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tier {
    Tier1,
    Tier2,
    #[default]
    Tier3,
}

macro_rules! text_enum {
    ($ty:ident, $what:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            pub const ALL: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }

        impl FromStr for $ty {
            type Err = CatalogError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(CatalogError::UnknownValue {
                        field: $what,
                        value: other.to_owned(),
                        allowed: Self::ALL,
                    }),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(Lifecycle, "lifecycle", Experimental => "experimental", Production => "production", Deprecated => "deprecated");
text_enum!(Tier, "tier", Tier1 => "tier-1", Tier2 => "tier-2", Tier3 => "tier-3");

/// A catalog field was refused; `field()` names it for the API's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{field} {value:?} is not one of {}", allowed.join(", "))]
    UnknownValue { field: &'static str, value: String, allowed: &'static [&'static str] },
    #[error("{field} is {len} characters long; the maximum is {max}")]
    TooLong { field: &'static str, len: usize, max: usize },
    #[error("{field} has {count} entries; the maximum is {max}")]
    TooMany { field: &'static str, count: usize, max: usize },
    #[error("link name must not be empty")]
    EmptyLinkName,
    #[error("link {name:?} has URL {url:?}, which is not an absolute http(s) URL")]
    BadLinkUrl { name: String, url: String },
    #[error("depends_on entry {entry:?} {reason}")]
    BadDependency { entry: String, reason: NameError },
    #[error("{field} contains a control character")]
    ControlChar { field: &'static str },
    #[error("lifecycle must not be empty (production, experimental, deprecated, or your own word)")]
    EmptyLifecycle,
}

impl CatalogError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            CatalogError::UnknownValue { field, .. }
            | CatalogError::TooLong { field, .. }
            | CatalogError::TooMany { field, .. }
            | CatalogError::ControlChar { field } => field,
            CatalogError::EmptyLifecycle => "lifecycle",
            CatalogError::EmptyLinkName | CatalogError::BadLinkUrl { .. } => "links",
            CatalogError::BadDependency { .. } => "depends_on",
        }
    }
}

/// A named link shown on the service page (runbook, dashboard, docs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Link {
    pub name: String,
    pub url: String,
}

/// Checks free text: bounded length and no control characters (which would corrupt
/// terminal tables and logs). Newlines are allowed in descriptions only.
pub fn validate_text(field: &'static str, text: &str, max: usize, multiline: bool) -> Result<(), CatalogError> {
    let len = text.chars().count();
    if len > max {
        return Err(CatalogError::TooLong { field, len, max });
    }
    if text.chars().any(|c| c.is_control() && !(multiline && c == '\n')) {
        return Err(CatalogError::ControlChar { field });
    }
    Ok(())
}

pub fn validate_description(text: &str) -> Result<(), CatalogError> {
    validate_text("description", text, MAX_DESCRIPTION_LEN, true)
}

pub fn validate_on_call(text: &str) -> Result<(), CatalogError> {
    validate_text("on_call", text, MAX_ON_CALL_LEN, false)
}

pub fn validate_links(links: &[Link]) -> Result<(), CatalogError> {
    if links.len() > MAX_LINKS {
        return Err(CatalogError::TooMany { field: "links", count: links.len(), max: MAX_LINKS });
    }
    for link in links {
        if link.name.trim().is_empty() {
            return Err(CatalogError::EmptyLinkName);
        }
        validate_text("links", &link.name, MAX_LINK_NAME_LEN, false)?;
        validate_text("links", &link.url, MAX_URL_LEN, false)?;
        let ok = url::Url::parse(&link.url)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .unwrap_or(false);
        if !ok {
            return Err(CatalogError::BadLinkUrl { name: link.name.clone(), url: link.url.clone() });
        }
    }
    Ok(())
}

/// Dependencies name other services; they may not exist yet (the catalog flags them),
/// but each must be a valid service name.
pub fn validate_dependencies(deps: &[String]) -> Result<(), CatalogError> {
    if deps.len() > MAX_DEPENDENCIES {
        return Err(CatalogError::TooMany { field: "depends_on", count: deps.len(), max: MAX_DEPENDENCIES });
    }
    for dep in deps {
        validate_name(dep).map_err(|reason| CatalogError::BadDependency { entry: dep.clone(), reason })?;
    }
    Ok(())
}

/// What a Backstage descriptor says of a service beyond Slipway's own catalog fields,
/// kept so the catalog and the Backstage-compatible API show it. References are stored
/// as written by [`crate::catalog_info::EntityRef`]'s `Display` (`kind:namespace/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Descriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// `spec.type` (`service`, `website`, `library`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub provides_apis: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consumes_apis: Vec<String>,
    /// `dependsOn` entries that are not components (resources, mostly).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// Lifecycle is free text, as in Backstage (`unknown`, `development`, `beta`… are common);
/// the three documented values are styled by the portal. Bounded and printable.
pub fn validate_lifecycle(text: &str) -> Result<(), CatalogError> {
    if text.trim().is_empty() {
        return Err(CatalogError::EmptyLifecycle);
    }
    validate_text("lifecycle", text, MAX_LIFECYCLE_LEN, false)
}

pub const MAX_LIFECYCLE_LEN: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_tier_parse_their_documented_values() {
        assert_eq!("production".parse::<Lifecycle>(), Ok(Lifecycle::Production));
        assert_eq!("tier-1".parse::<Tier>(), Ok(Tier::Tier1));
        let err = "prod".parse::<Lifecycle>().expect_err("not a lifecycle");
        assert_eq!(err.field(), "lifecycle");
        assert!(err.to_string().contains("experimental, production, deprecated"), "{err}");
    }

    #[test]
    fn links_must_be_absolute_http_urls() {
        let good = Link { name: "runbook".into(), url: "https://wiki.example.com/shop".into() };
        assert_eq!(validate_links(std::slice::from_ref(&good)), Ok(()));
        for url in ["javascript:alert(1)", "/relative", "ftp://x.example.com", "https://"] {
            let bad = Link { name: "x".into(), url: url.into() };
            assert!(matches!(validate_links(&[bad]), Err(CatalogError::BadLinkUrl { .. })), "{url}");
        }
        let unnamed = Link { name: " ".into(), url: good.url.clone() };
        assert_eq!(validate_links(&[unnamed]), Err(CatalogError::EmptyLinkName));
        let many = vec![good; MAX_LINKS + 1];
        assert!(matches!(validate_links(&many), Err(CatalogError::TooMany { .. })));
    }

    #[test]
    fn text_fields_are_bounded_and_printable() {
        assert!(validate_description("line one\nline two").is_ok());
        assert_eq!(validate_on_call("a\u{1b}[31m"), Err(CatalogError::ControlChar { field: "on_call" }));
        assert!(matches!(
            validate_description(&"x".repeat(MAX_DESCRIPTION_LEN + 1)),
            Err(CatalogError::TooLong { field: "description", .. })
        ));
    }

    #[test]
    fn dependencies_are_service_names() {
        assert!(validate_dependencies(&["billing".into(), "auth-api".into()]).is_ok());
        let err = validate_dependencies(&["Billing".into()]).expect_err("upper case");
        assert_eq!(err.field(), "depends_on");
    }
}
