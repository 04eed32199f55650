//! `catalog-info.yaml`, Backstage's descriptor, as a push carries it: which catalog
//! fields it sets and which owner it declares. Only what Slipway shows is read; the rest
//! of a Backstage document is allowed and ignored.

use serde::Deserialize;

use crate::catalog::{self, CatalogError, Lifecycle, Link};

/// The file Slipway reads at the root of a pushed commit.
pub const FILE: &str = "catalog-info.yaml";
/// Larger files are refused: a descriptor is a few hundred bytes.
pub const MAX_BYTES: usize = 64 * 1024;

/// What the descriptor says; `None` where it is silent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogInfo {
    pub description: Option<String>,
    pub links: Option<Vec<Link>>,
    pub lifecycle: Option<Lifecycle>,
    /// The owning group, without Backstage's `group:` / `default/` prefixes.
    pub owner: Option<String>,
    /// Components it depends on (resources and other kinds are not services).
    pub depends_on: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogInfoError {
    #[error("{FILE} is {0} bytes; the limit is {MAX_BYTES}")]
    TooLarge(usize),
    #[error("{FILE} is not valid YAML: {0}")]
    Yaml(String),
    #[error("{FILE} has no document of kind Component (apiVersion backstage.io/v1alpha1)")]
    NoComponent,
    #[error("{FILE}: {0}")]
    Field(#[from] CatalogError),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Spec,
}

#[derive(Deserialize, Default)]
struct Metadata {
    description: Option<String>,
    links: Option<Vec<DocLink>>,
}

#[derive(Deserialize)]
struct DocLink {
    url: String,
    title: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Spec {
    lifecycle: Option<String>,
    owner: Option<String>,
    depends_on: Option<Vec<String>>,
}

/// `group:default/payments` → `payments`; `user:ana` keeps its kind so it never equals a team.
fn entity_name(reference: &str, kind: &str) -> Option<String> {
    let (ref_kind, rest) = match reference.split_once(':') {
        Some((k, rest)) => (k.to_ascii_lowercase(), rest),
        None => (kind.to_owned(), reference),
    };
    if ref_kind != kind {
        return None;
    }
    let name = rest.rsplit_once('/').map_or(rest, |(_, name)| name);
    Some(name.trim().to_owned())
}

/// Parses and checks a descriptor. Multi-document files are read up to their first
/// `Component`.
pub fn parse(text: &str) -> Result<CatalogInfo, CatalogInfoError> {
    if text.len() > MAX_BYTES {
        return Err(CatalogInfoError::TooLarge(text.len()));
    }
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let doc = Document::deserialize(document).map_err(|e| CatalogInfoError::Yaml(e.to_string()))?;
        if doc.kind != "Component" || !doc.api_version.starts_with("backstage.io/") {
            continue;
        }
        if let Some(description) = &doc.metadata.description {
            catalog::validate_description(description)?;
        }
        let links = match doc.metadata.links {
            None => None,
            Some(links) => {
                let links: Vec<Link> = links
                    .into_iter()
                    .map(|l| Link {
                        name: l.title.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| l.url.clone()),
                        url: l.url,
                    })
                    .collect();
                catalog::validate_links(&links)?;
                Some(links)
            }
        };
        let lifecycle = doc.spec.lifecycle.as_deref().map(str::parse::<Lifecycle>).transpose()?;
        let owner = doc.spec.owner.as_deref().map(|o| entity_name(o, "group").unwrap_or_else(|| o.to_owned()));
        let depends_on = match doc.spec.depends_on {
            None => None,
            Some(refs) => {
                let names: Vec<String> = refs.iter().filter_map(|r| entity_name(r, "component")).collect();
                catalog::validate_dependencies(&names)?;
                Some(names)
            }
        };
        return Ok(CatalogInfo { description: doc.metadata.description, links, lifecycle, owner, depends_on });
    }
    Err(CatalogInfoError::NoComponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  description: The shop front
  links:
    - url: https://runbooks.example.com/shop
      title: Runbook
    - url: https://grafana.example.com/d/shop
spec:
  type: service
  lifecycle: production
  owner: group:default/payments
  dependsOn: [component:billing, resource:default/shop-db, component:default/auth-api]
";

    #[test]
    fn reads_the_fields_slipway_shows() {
        let info = parse(SHOP).expect("valid");
        assert_eq!(info.description.as_deref(), Some("The shop front"));
        assert_eq!(info.lifecycle, Some(Lifecycle::Production));
        assert_eq!(info.owner.as_deref(), Some("payments"));
        assert_eq!(info.depends_on, Some(vec!["billing".to_owned(), "auth-api".to_owned()]));
        let links = info.links.expect("links");
        assert_eq!(links[0].name, "Runbook");
        assert_eq!(links[1].name, "https://grafana.example.com/d/shop", "an untitled link is named by its URL");
    }

    #[test]
    fn a_user_owner_is_kept_whole_so_it_never_matches_a_team() {
        let info = parse(&SHOP.replace("group:default/payments", "user:ana")).expect("valid");
        assert_eq!(info.owner.as_deref(), Some("user:ana"));
        let info = parse(&SHOP.replace("group:default/payments", "payments")).expect("valid");
        assert_eq!(info.owner.as_deref(), Some("payments"));
    }

    #[test]
    fn bad_descriptors_say_what_is_wrong() {
        let err = parse(&SHOP.replace("lifecycle: production", "lifecycle: prod")).expect_err("lifecycle");
        assert!(err.to_string().contains("lifecycle \"prod\" is not one of"), "{err}");
        let err = parse(&SHOP.replace("https://runbooks.example.com/shop", "javascript:alert(1)")).expect_err("url");
        assert!(err.to_string().contains("not an absolute http(s) URL"), "{err}");
        let err = parse("kind: [").expect_err("yaml");
        assert!(matches!(err, CatalogInfoError::Yaml(_)), "{err}");
        assert_eq!(parse("apiVersion: v1\nkind: ConfigMap\n"), Err(CatalogInfoError::NoComponent));
        assert!(matches!(parse(&"#".repeat(MAX_BYTES + 1)), Err(CatalogInfoError::TooLarge(_))));
    }

    #[test]
    fn a_component_after_other_documents_is_found() {
        let text = format!("apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata: {{name: s}}\n---\n{SHOP}");
        assert_eq!(parse(&text).expect("valid").owner.as_deref(), Some("payments"));
    }
}
