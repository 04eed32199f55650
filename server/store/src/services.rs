//! Services and their catalog metadata.

use slipway_core::catalog::{Descriptor, Link};

use crate::{Result, Store, StoreError, from_json, on_pool, to_json};

/// A service as stored, with its owning team's name.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub id: i64,
    pub name: String,
    pub team_id: i64,
    pub team: String,
    pub catalog: CatalogFields,
    /// The owner `catalog-info.yaml` names, as written, when a descriptor carried one.
    pub declared_owner: Option<String>,
    /// The declared owner is neither the owning team (by name or alias, compared
    /// case-insensitively) nor, for `user:X`, one of its members.
    pub owner_mismatch: bool,
    /// Only in the catalog: its code lives at `repo_url`, it has no Slipway git
    /// repository or environments.
    pub catalog_only: bool,
    pub repo_url: Option<String>,
    pub descriptor: Descriptor,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The editable catalog fields of a service, already validated by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogFields {
    pub description: String,
    pub lifecycle: String,
    pub tier: String,
    pub on_call: String,
    pub links: Vec<Link>,
    pub depends_on: Vec<String>,
    pub preview_template: Option<String>,
}

/// What the catalog page filters by; empty strings match everything.
#[derive(Debug, Clone, Default)]
pub struct CatalogQuery<'a> {
    /// Matched case-insensitively against names and descriptions.
    pub text: &'a str,
    pub team: &'a str,
    pub lifecycle: &'a str,
    /// Only services the catalog flags: ownerless, owner mismatch, or stale.
    pub flagged: bool,
    /// A service with no run since this time (Unix ms) is stale.
    pub stale_before: i64,
    pub after: &'a str,
    pub limit: i64,
}

/// A catalog row: the service, how many people its team has, and when it last ran.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub service: ServiceRow,
    pub team_members: i64,
    pub last_run_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RawEntry {
    #[sqlx(flatten)]
    service: RawService,
    team_members: i64,
    last_run_at: Option<i64>,
}

/// `%` and `_` in what the user typed are literal, not wildcards.
fn like_pattern(text: &str) -> String {
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

#[derive(sqlx::FromRow)]
pub(crate) struct RawService {
    id: i64,
    name: String,
    team_id: i64,
    team: String,
    description: String,
    lifecycle: String,
    tier: String,
    on_call: String,
    links: String,
    depends_on: String,
    preview_template: Option<String>,
    declared_owner: Option<String>,
    owner_mismatch: bool,
    catalog_only: bool,
    repo_url: Option<String>,
    descriptor: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RawService> for ServiceRow {
    type Error = StoreError;

    fn try_from(raw: RawService) -> Result<Self> {
        Ok(ServiceRow {
            id: raw.id,
            name: raw.name,
            team_id: raw.team_id,
            team: raw.team,
            catalog: CatalogFields {
                description: raw.description,
                lifecycle: raw.lifecycle,
                tier: raw.tier,
                on_call: raw.on_call,
                links: from_json("services.links", &raw.links)?,
                depends_on: from_json("services.depends_on", &raw.depends_on)?,
                preview_template: raw.preview_template,
            },
            declared_owner: raw.declared_owner,
            owner_mismatch: raw.owner_mismatch,
            catalog_only: raw.catalog_only,
            repo_url: raw.repo_url,
            descriptor: from_json("services.descriptor", &raw.descriptor)?,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

/// The columns of a [`RawService`] over `services s JOIN teams t`. `owner_mismatch` is
/// worked out here, so the catalog's flag filter and each row agree and a new alias or
/// member clears it at once.
macro_rules! columns {
    () => {
        "s.id, s.name, s.team_id, t.name AS team, s.description, s.lifecycle, s.tier, \
    s.on_call, s.links, s.depends_on, s.preview_template, s.declared_owner, \
    (s.declared_owner_name IS NOT NULL AND NOT ( \
      (s.declared_owner_kind = 'group' AND (s.declared_owner_name = LOWER(t.name) \
        OR EXISTS (SELECT 1 FROM team_aliases a WHERE a.team_id = s.team_id AND a.alias = s.declared_owner_name))) \
      OR (s.declared_owner_kind = 'user' AND EXISTS (SELECT 1 FROM team_members m JOIN users u ON u.id = m.user_id \
        WHERE m.team_id = s.team_id AND LOWER(u.username) = s.declared_owner_name)))) AS owner_mismatch, \
    s.catalog_only, s.repo_url, s.descriptor, s.created_at, s.updated_at"
    };
}
pub(crate) use columns;

macro_rules! select {
    () => {
        concat!("SELECT ", columns!(), " FROM services s JOIN teams t ON t.id = s.team_id")
    };
}

impl Store {
    /// Creates a service and, in the same transaction, its first environment
    /// (`(name, branch)`), so a service never exists without the environment a push needs.
    pub async fn create_service(
        &self,
        name: &str,
        team_id: i64,
        fields: &CatalogFields,
        first_environment: Option<&crate::environments::NewEnvironment<'_>>,
        now: i64,
    ) -> Result<ServiceRow> {
        let created = on_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            // Queue behind other changes of the team's quota usage (see environments.rs).
            sqlx::query("UPDATE quotas SET team_id = team_id WHERE team_id = $1").bind(team_id).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO services (name, team_id, description, lifecycle, tier, on_call, links, depends_on, \
                 preview_template, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                 RETURNING id")
                .bind(name).bind(team_id).bind(&fields.description).bind(&fields.lifecycle).bind(&fields.tier)
                .bind(&fields.on_call).bind(to_json(&fields.links)).bind(to_json(&fields.depends_on))
                .bind(&fields.preview_template).bind(now)
                .fetch_one(&mut *tx).await?;
            if let Some(env) = first_environment
                && let Err(refused) = crate::environments::insert_environment!(tx, id, team_id, env, now).await?
            {
                tx.rollback().await?;
                return Ok(Err(refused));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(()))
        }.await)?;
        created.map_err(crate::StoreError::from)?;
        self.service_by_name(name).await
    }

    pub async fn service_by_name(&self, name: &str) -> Result<ServiceRow> {
        let sql = concat!(select!(), " WHERE s.name = $1");
        let raw = on_pool!(self, pool => sqlx::query_as::<_, RawService>(sql).bind(name).fetch_one(pool).await)?;
        raw.try_into()
    }

    /// Services ordered by name after `after`; `team` filters by owner when not empty.
    pub async fn list_services(&self, team: &str, after: &str, limit: i64) -> Result<Vec<ServiceRow>> {
        let sql = concat!(select!(), " WHERE ($1 = '' OR t.name = $1) AND s.name > $2 ORDER BY s.name LIMIT $3");
        let raws = on_pool!(self, pool => sqlx::query_as::<_, RawService>(sql)
            .bind(team).bind(after).bind(limit).fetch_all(pool).await)?;
        raws.into_iter().map(ServiceRow::try_from).collect()
    }

    /// The services of the teams `user_id` belongs to, by name after `after`.
    pub async fn services_of_member(&self, user_id: i64, after: &str, limit: i64) -> Result<Vec<ServiceRow>> {
        let sql = concat!(
            select!(),
            " JOIN team_members m ON m.team_id = s.team_id WHERE m.user_id = $1 AND s.name > $2 ORDER BY s.name LIMIT $3"
        );
        let raws = on_pool!(self, pool => sqlx::query_as::<_, RawService>(sql)
            .bind(user_id).bind(after).bind(limit).fetch_all(pool).await)?;
        raws.into_iter().map(ServiceRow::try_from).collect()
    }

    /// The catalog: services matching `query`, by name, with what the flags need.
    pub async fn search_catalog(&self, query: &CatalogQuery<'_>) -> Result<Vec<CatalogEntry>> {
        let sql = concat!(
            "SELECT * FROM (SELECT ",
            columns!(),
            ", \
             (SELECT COUNT(*) FROM team_members m WHERE m.team_id = s.team_id) AS team_members, \
             (SELECT MAX(r.created_at) FROM runs r WHERE r.service_id = s.id) AS last_run_at \
             FROM services s JOIN teams t ON t.id = s.team_id \
             WHERE ($1 = '' OR LOWER(s.name) LIKE $2 ESCAPE '\\' OR LOWER(s.description) LIKE $2 ESCAPE '\\') \
             AND ($3 = '' OR t.name = $3) AND ($4 = '' OR s.lifecycle = $4) AND s.name > $5) c \
             WHERE (NOT $6 OR c.team_members = 0 OR c.owner_mismatch \
             OR COALESCE(c.last_run_at, c.created_at) < $7) \
             ORDER BY c.name LIMIT $8"
        );
        let raws = on_pool!(self, pool => sqlx::query_as::<_, RawEntry>(sql)
            .bind(query.text).bind(like_pattern(query.text)).bind(query.team).bind(query.lifecycle)
            .bind(query.after).bind(query.flagged).bind(query.stale_before).bind(query.limit)
            .fetch_all(pool).await)?;
        raws.into_iter()
            .map(|raw| {
                Ok(CatalogEntry {
                    service: raw.service.try_into()?,
                    team_members: raw.team_members,
                    last_run_at: raw.last_run_at,
                })
            })
            .collect()
    }

    /// The services that name `name` among their dependencies.
    pub async fn dependents_of(&self, name: &str) -> Result<Vec<String>> {
        // depends_on is a JSON array of names; a quoted match finds the exact entry.
        let pattern = format!("%\"{name}\"%");
        let rows = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT name FROM services WHERE depends_on LIKE $1 ORDER BY name LIMIT 200")
            .bind(pattern).fetch_all(pool).await)?;
        Ok(rows)
    }

    pub async fn update_service(&self, id: i64, fields: &CatalogFields, now: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE services SET description = $1, lifecycle = $2, tier = $3, on_call = $4, links = $5, \
             depends_on = $6, preview_template = $7, updated_at = $8 WHERE id = $9")
            .bind(&fields.description).bind(&fields.lifecycle).bind(&fields.tier).bind(&fields.on_call)
            .bind(to_json(&fields.links)).bind(to_json(&fields.depends_on)).bind(&fields.preview_template)
            .bind(now).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn delete_service(&self, id: i64) -> Result<()> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM services WHERE id = $1").bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn count_services(&self) -> Result<i64> {
        let n = on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM services").fetch_one(pool).await)?;
        Ok(n)
    }
}
