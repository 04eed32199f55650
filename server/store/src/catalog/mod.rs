//! The catalog beyond services' own rows: the entities descriptors declare besides
//! components (APIs, systems, resources…), team aliases, what a pushed descriptor
//! applies, catalog-only services written by an import, and the reads of the
//! Backstage-compatible API.

use slipway_core::catalog::Descriptor;

use crate::services::CatalogFields;
use crate::{Result, Store, on_pool, to_json};

mod entities;

pub use entities::{ComponentRow, EntityFilter, EntityRow};

/// The owner a descriptor declares: as written, and its identity in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredOwner {
    pub display: String,
    pub kind: String,
    pub name: String,
}

/// An entity to store, already rendered as Backstage JSON by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntity {
    /// Lower case: `api`, `system`…
    pub kind: String,
    pub namespace: String,
    /// Lower case.
    pub name: String,
    pub owner_kind: Option<String>,
    /// Lower case.
    pub owner_name: Option<String>,
    /// Lower case.
    pub lifecycle: Option<String>,
    /// The team that owns it (the owner resolved to a team).
    pub team_id: Option<i64>,
    pub entity: String,
}

/// What a pushed descriptor applies to its service, in one transaction.
#[derive(Debug, Clone)]
pub struct DescriptorSync<'a> {
    pub fields: &'a CatalogFields,
    pub declared: Option<&'a DeclaredOwner>,
    pub descriptor: &'a Descriptor,
    pub digest: &'a str,
    pub entities: &'a [NewEntity],
}

/// A catalog-only service an import creates or updates.
#[derive(Debug, Clone)]
pub struct ImportedService {
    pub name: String,
    pub team_id: i64,
    pub fields: CatalogFields,
    pub declared: Option<DeclaredOwner>,
    pub repo_url: Option<String>,
    pub descriptor: Descriptor,
}

/// What an import writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub services: Vec<ImportedService>,
    pub entities: Vec<NewEntity>,
}

/// What happened to each item of an import batch, in order: services, then entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
    /// Another team's service, a Slipway-built service, or an entity a push declares:
    /// changed meanwhile so that the import may no longer write it.
    Refused,
}

impl Store {
    /// The digest of the descriptor last applied to a service.
    pub async fn descriptor_digest(&self, service_id: i64) -> Result<Option<String>> {
        let digest = on_pool!(self, pool => sqlx::query_scalar::<_, Option<String>>(
            "SELECT descriptor_digest FROM services WHERE id = $1").bind(service_id).fetch_one(pool).await)?;
        Ok(digest)
    }

    /// Records the digest of descriptor files that were not applied (a file that does not
    /// parse): the catalog keeps what it had, and the same files are not reported again.
    pub async fn set_descriptor_digest(&self, service_id: i64, digest: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE services SET descriptor_digest = $1 WHERE id = $2")
            .bind(digest).bind(service_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Applies a pushed descriptor: the catalog fields, the declared owner (recorded,
    /// never applied), the descriptor's other fields, and its other entities (replacing
    /// those the service declared before). Answers the entities refused because another
    /// service or an import declares them.
    pub async fn sync_descriptor(&self, service_id: i64, sync: &DescriptorSync<'_>, now: i64) -> Result<Vec<String>> {
        let fields = sync.fields;
        let refused = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE services SET description = $1, lifecycle = $2, links = $3, depends_on = $4, \
                 declared_owner = $5, declared_owner_kind = $6, declared_owner_name = $7, descriptor = $8, \
                 descriptor_digest = $9, catalog_synced_at = $10, updated_at = $10 WHERE id = $11")
                .bind(&fields.description).bind(&fields.lifecycle).bind(to_json(&fields.links))
                .bind(to_json(&fields.depends_on)).bind(sync.declared.map(|d| &d.display))
                .bind(sync.declared.map(|d| &d.kind)).bind(sync.declared.map(|d| &d.name))
                .bind(to_json(sync.descriptor)).bind(sync.digest).bind(now).bind(service_id)
                .execute(&mut *tx).await?.rows_affected();
            if done == 0 {
                return Err(sqlx::Error::RowNotFound);
            }
            sqlx::query("DELETE FROM catalog_entities WHERE origin_service_id = $1").bind(service_id).execute(&mut *tx).await?;
            let mut refused = Vec::new();
            for e in sync.entities {
                let written = sqlx::query(
                    "INSERT INTO catalog_entities (kind, namespace, name, owner_kind, owner_name, lifecycle, \
                     team_id, origin_service_id, entity, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (kind, namespace, name) DO NOTHING")
                    .bind(&e.kind).bind(&e.namespace).bind(&e.name).bind(&e.owner_kind).bind(&e.owner_name)
                    .bind(&e.lifecycle).bind(e.team_id).bind(service_id).bind(&e.entity).bind(now)
                    .execute(&mut *tx).await?.rows_affected();
                if written == 0 {
                    refused.push(format!("{}:{}/{}", e.kind, e.namespace, e.name));
                }
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(refused)
        }.await)?;
        Ok(refused)
    }

    /// Replaces a team's aliases (lower case). `Conflict` when another team has one.
    pub async fn set_team_aliases(&self, team_id: i64, aliases: &[String]) -> Result<()> {
        on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM team_aliases WHERE team_id = $1").bind(team_id).execute(&mut *tx).await?;
            for alias in aliases {
                sqlx::query("INSERT INTO team_aliases (alias, team_id) VALUES ($1, $2)")
                    .bind(alias).bind(team_id).execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)?;
        Ok(())
    }

    pub async fn team_aliases(&self, team_id: i64) -> Result<Vec<String>> {
        let aliases = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT alias FROM team_aliases WHERE team_id = $1 ORDER BY alias").bind(team_id).fetch_all(pool).await)?;
        Ok(aliases)
    }

    /// Every name a group owner may be written as, lower case, with its team:
    /// `(name or alias, team id, team name)`.
    pub async fn owner_directory(&self) -> Result<Vec<(String, i64, String)>> {
        let rows = on_pool!(self, pool => sqlx::query_as::<_, (String, i64, String)>(
            "SELECT LOWER(name), id, name FROM teams UNION ALL \
             SELECT a.alias, t.id, t.name FROM team_aliases a JOIN teams t ON t.id = a.team_id")
            .fetch_all(pool).await)?;
        Ok(rows)
    }

    /// The team a group owner name is (its name or an alias, lower case), with every
    /// name that team goes by; `None` when no team has it.
    pub async fn owner_names_of(&self, name: &str) -> Result<Option<(i64, Vec<String>)>> {
        // Team names are lower case (a DNS label); names and aliases never collide.
        let rows = on_pool!(self, pool => sqlx::query_as::<_, (i64, String)>(
            "SELECT t.id, t.name FROM teams t WHERE t.id IN \
               (SELECT id FROM teams WHERE name = $1 UNION SELECT team_id FROM team_aliases WHERE alias = $1) \
             UNION ALL SELECT a.team_id, a.alias FROM team_aliases a WHERE a.team_id IN \
               (SELECT id FROM teams WHERE name = $1 UNION SELECT team_id FROM team_aliases WHERE alias = $1)")
            .bind(name).fetch_all(pool).await)?;
        let Some(&(team, _)) = rows.first() else { return Ok(None) };
        Ok(Some((team, rows.into_iter().filter(|(id, _)| *id == team).map(|(_, n)| n).collect())))
    }

    /// Which of `names` are services, and whether each is catalog-only and its team.
    pub async fn existing_services(&self, names: &[String]) -> Result<Vec<(String, bool, i64)>> {
        let mut found = Vec::new();
        for chunk in names.chunks(500) {
            let sql = format!(
                "SELECT name, catalog_only, team_id FROM services WHERE name IN ({})",
                placeholders(1, chunk.len())
            );
            let rows = on_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, (String, bool, i64)>(sqlx::AssertSqlSafe(sql.as_str()));
                for name in chunk {
                    q = q.bind(name);
                }
                q.fetch_all(pool).await
            })?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Which of the entity keys `(kind, namespace, name)` exist: whether a push declares
    /// each, and its team.
    #[allow(clippy::type_complexity)]
    pub async fn existing_entities(
        &self,
        keys: &[(String, String, String)],
    ) -> Result<Vec<((String, String, String), (bool, Option<i64>))>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(300) {
            let terms: Vec<String> = (0..chunk.len())
                .map(|i| format!("(kind = ${} AND namespace = ${} AND name = ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
                .collect();
            let sql = format!(
                "SELECT kind, namespace, name, origin_service_id IS NOT NULL, team_id FROM catalog_entities WHERE {}",
                terms.join(" OR ")
            );
            let rows = on_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, (String, String, String, bool, Option<i64>)>(sqlx::AssertSqlSafe(sql.as_str()));
                for (kind, namespace, name) in chunk {
                    q = q.bind(kind).bind(namespace).bind(name);
                }
                q.fetch_all(pool).await
            })?;
            found.extend(rows.into_iter().map(|(k, ns, n, pushed, team)| ((k, ns, n), (pushed, team))));
        }
        Ok(found)
    }

    /// Writes an import batch in one transaction. A service is created, or updated when
    /// it is catalog-only and the same team's; an entity is created, or updated when no
    /// push declares it and it is the same team's. Anything else is `Refused` (it changed
    /// since the plan was made).
    pub async fn import_catalog(&self, batch: &ImportBatch, now: i64) -> Result<Vec<Written>> {
        let written = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let mut written = Vec::with_capacity(batch.services.len() + batch.entities.len());
            for s in &batch.services {
                let f = &s.fields;
                let existing: Option<(bool, i64)> = sqlx::query_as(
                    "SELECT catalog_only, team_id FROM services WHERE name = $1").bind(&s.name)
                    .fetch_optional(&mut *tx).await?;
                let outcome = match existing {
                    None => {
                        let inserted = sqlx::query(
                            "INSERT INTO services (name, team_id, description, lifecycle, tier, on_call, links, depends_on, \
                             declared_owner, declared_owner_kind, declared_owner_name, catalog_only, repo_url, descriptor, \
                             catalog_synced_at, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12, $13, $14, $14, $14) \
                             ON CONFLICT (name) DO NOTHING")
                            .bind(&s.name).bind(s.team_id).bind(&f.description).bind(&f.lifecycle).bind(&f.tier)
                            .bind(&f.on_call).bind(to_json(&f.links)).bind(to_json(&f.depends_on))
                            .bind(s.declared.as_ref().map(|d| &d.display)).bind(s.declared.as_ref().map(|d| &d.kind))
                            .bind(s.declared.as_ref().map(|d| &d.name)).bind(&s.repo_url).bind(to_json(&s.descriptor))
                            .bind(now).execute(&mut *tx).await?.rows_affected();
                        // Created by someone else since it was read.
                        if inserted == 1 { Written::Created } else { Written::Refused }
                    }
                    Some((true, team_id)) if team_id == s.team_id => {
                        sqlx::query(
                            "UPDATE services SET description = $1, lifecycle = $2, links = $3, depends_on = $4, \
                             declared_owner = $5, declared_owner_kind = $6, declared_owner_name = $7, repo_url = $8, \
                             descriptor = $9, catalog_synced_at = $10, updated_at = $10 WHERE name = $11")
                            .bind(&f.description).bind(&f.lifecycle).bind(to_json(&f.links)).bind(to_json(&f.depends_on))
                            .bind(s.declared.as_ref().map(|d| &d.display)).bind(s.declared.as_ref().map(|d| &d.kind))
                            .bind(s.declared.as_ref().map(|d| &d.name)).bind(&s.repo_url).bind(to_json(&s.descriptor))
                            .bind(now).bind(&s.name).execute(&mut *tx).await?;
                        Written::Updated
                    }
                    Some(_) => Written::Refused,
                };
                written.push(outcome);
            }
            for e in &batch.entities {
                let inserted = sqlx::query(
                    "INSERT INTO catalog_entities (kind, namespace, name, owner_kind, owner_name, lifecycle, \
                     team_id, origin_service_id, entity, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9) \
                     ON CONFLICT (kind, namespace, name) DO NOTHING")
                    .bind(&e.kind).bind(&e.namespace).bind(&e.name).bind(&e.owner_kind).bind(&e.owner_name)
                    .bind(&e.lifecycle).bind(e.team_id).bind(&e.entity).bind(now)
                    .execute(&mut *tx).await?.rows_affected();
                if inserted == 1 {
                    written.push(Written::Created);
                    continue;
                }
                let updated = sqlx::query(
                    "UPDATE catalog_entities SET owner_kind = $1, owner_name = $2, lifecycle = $3, entity = $4, \
                     updated_at = $5 WHERE kind = $6 AND namespace = $7 AND name = $8 AND origin_service_id IS NULL \
                     AND team_id = $9")
                    .bind(&e.owner_kind).bind(&e.owner_name).bind(&e.lifecycle).bind(&e.entity).bind(now)
                    .bind(&e.kind).bind(&e.namespace).bind(&e.name).bind(e.team_id)
                    .execute(&mut *tx).await?.rows_affected();
                written.push(if updated == 1 { Written::Updated } else { Written::Refused });
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(written)
        }.await)?;
        Ok(written)
    }
}

/// `$first, $first+1, …` for `count` values. The dynamic SQL of this module is built from
/// constant text and these numbered placeholders only; every value is bound.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}
