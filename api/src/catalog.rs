//! Importing Backstage descriptors: the batch sent and the report answered.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// One descriptor file sent for import: its path (for messages and `Location` targets,
/// which resolve against the other files sent) and its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DescriptorFile {
    pub path: String,
    pub content: String,
}

/// `POST /api/v1/catalog/import`: a batch of descriptor files, planned (dry run) or applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CatalogImport {
    pub files: Vec<DescriptorFile>,
    /// The owning team of entities whose `spec.owner` names no team (nor alias).
    #[serde(default)]
    pub team: Option<String>,
    /// Write the plan (in one transaction); without it, only the plan is answered.
    #[serde(default)]
    pub apply: bool,
}

/// What an import did (or would do) with each file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportReport {
    pub applied: bool,
    pub files: Vec<ImportedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportedFile {
    pub path: String,
    pub entities: Vec<ImportedEntity>,
    /// Fields or documents ignored, each naming document and field.
    pub warnings: Vec<String>,
    /// Why the file was not read at all.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ImportedEntity {
    /// `component:default/shop`.
    pub entity: String,
    /// `create`, `update` or `skip`.
    pub action: String,
    /// The owning team it gets (components), or why it is skipped.
    #[serde(default)]
    pub detail: Option<String>,
}
