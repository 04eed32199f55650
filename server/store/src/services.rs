//! Services and their catalog metadata.

use slipway_core::catalog::Link;

use crate::{Result, Store, StoreError, from_json, on_pool, to_json};

/// A service as stored, with its owning team's name.
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub id: i64,
    pub name: String,
    pub team_id: i64,
    pub team: String,
    pub catalog: CatalogFields,
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

#[derive(sqlx::FromRow)]
struct RawService {
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
            created_at: raw.created_at,
            updated_at: raw.updated_at,
        })
    }
}

macro_rules! select {
    () => {
        "SELECT s.id, s.name, s.team_id, t.name AS team, s.description, s.lifecycle, s.tier, \
    s.on_call, s.links, s.depends_on, s.preview_template, s.created_at, s.updated_at \
    FROM services s JOIN teams t ON t.id = s.team_id"
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
                && let Err(over) = crate::environments::insert_environment!(tx, id, team_id, env, now).await?
            {
                tx.rollback().await?;
                return Ok(Err(over));
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Ok(()))
        }.await)?;
        created.map_err(crate::StoreError::Quota)?;
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
