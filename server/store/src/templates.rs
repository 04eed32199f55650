//! Published environment templates: immutable versions (the YAML source as published),
//! deprecation, and the built-ins loaded at start.

use crate::{Result, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TemplateRow {
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: String,
    pub builtin: bool,
    pub deprecated: bool,
    pub published_by: String,
    pub published_at: i64,
}

/// A version to publish; `major`/`minor`/`patch` order versions numerically.
#[derive(Debug, Clone)]
pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub description: &'a str,
    pub source: &'a str,
    pub builtin: bool,
    pub published_by: &'a str,
}

macro_rules! columns {
    () => {
        "name, version, description, source, builtin, deprecated, published_by, published_at"
    };
}

impl Store {
    /// Publishes a version; [`crate::StoreError::Conflict`] if it exists (versions never change).
    pub async fn insert_template(&self, new: &NewTemplate<'_>, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO templates (name, version, major, minor, patch, description, source, builtin, published_by, \
             published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(new.name).bind(new.version).bind(i64::from(new.major)).bind(i64::from(new.minor))
            .bind(i64::from(new.patch)).bind(new.description).bind(new.source).bind(new.builtin)
            .bind(new.published_by).bind(now)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn template_version(&self, name: &str, version: &str) -> Result<TemplateRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TemplateRow>(concat!(
            "SELECT ", columns!(), " FROM templates WHERE name = $1 AND version = $2"))
            .bind(name).bind(version).fetch_one(pool).await)?;
        Ok(row)
    }

    /// The newest version of a template that is not deprecated.
    pub async fn latest_template(&self, name: &str) -> Result<TemplateRow> {
        let row = on_pool!(self, pool => sqlx::query_as::<_, TemplateRow>(concat!(
            "SELECT ", columns!(), " FROM templates WHERE name = $1 AND NOT deprecated \
             ORDER BY major DESC, minor DESC, patch DESC LIMIT 1"))
            .bind(name).fetch_one(pool).await)?;
        Ok(row)
    }

    /// Every version of every template, by name then version.
    pub async fn list_templates(&self) -> Result<Vec<TemplateRow>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, TemplateRow>(concat!(
            "SELECT ", columns!(), " FROM templates ORDER BY name, major, minor, patch"))
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    /// One page of every version, in (name, version) order, after the version
    /// `after` (`(name, major, minor, patch)`; none: from the start).
    pub async fn list_templates_after(
        &self,
        after: Option<(&str, u32, u32, u32)>,
        limit: i64,
    ) -> Result<Vec<TemplateRow>> {
        let (name, major, minor, patch) = after.unwrap_or(("", 0, 0, 0));
        let started = after.is_some();
        let rows = on_pool!(self, pool => sqlx::query_as::<_, TemplateRow>(concat!(
            "SELECT ", columns!(), " FROM templates \
             WHERE NOT $1 OR (name, major, minor, patch) > ($2, $3, $4, $5) \
             ORDER BY name, major, minor, patch LIMIT $6"))
            .bind(started).bind(name).bind(i64::from(major)).bind(i64::from(minor)).bind(i64::from(patch)).bind(limit)
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    pub async fn deprecate_template(&self, name: &str, version: &str) -> Result<()> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE templates SET deprecated = TRUE WHERE name = $1 AND version = $2")
            .bind(name).bind(version).execute(pool).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(crate::StoreError::NotFound);
        }
        Ok(())
    }
}
