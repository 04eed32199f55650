//! The Backstage-compatible reads: a page of entities (services as components, and
//! stored entities) by filter, and one stored entity by name.

use slipway_core::catalog::Descriptor;

use super::placeholders;
use crate::services::ServiceRow;
use crate::{Result, Store, StoreError, on_pool};

/// One term of a Backstage filter; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityFilter {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// The owner's kind (`group`, `user`), with `owner_names`.
    pub owner_kind: Option<String>,
    /// Lower-case owner names that count as the same owner (a team, its aliases), for
    /// stored entities.
    pub owner_names: Option<Vec<String>>,
    /// The teams those names are, for services.
    pub owner_teams: Option<Vec<i64>>,
    pub lifecycle: Option<String>,
}

/// A row of the Backstage entity list: a service, or a stored entity.
#[derive(Debug, Clone)]
pub enum EntityRow {
    Service(Box<ComponentRow>),
    Stored(String),
}

/// What the Backstage view shows of a service: its `Component`. Read with only these
/// columns, since an owner's page is 50 of them a request.
#[derive(Debug, Clone)]
pub struct ComponentRow {
    pub id: i64,
    pub name: String,
    pub team: String,
    pub description: String,
    pub lifecycle: String,
    pub links: Vec<slipway_core::catalog::Link>,
    pub depends_on: Vec<String>,
    pub catalog_only: bool,
    pub repo_url: Option<String>,
    pub descriptor: Descriptor,
}

impl From<ServiceRow> for ComponentRow {
    fn from(row: ServiceRow) -> Self {
        ComponentRow {
            id: row.id,
            name: row.name,
            team: row.team,
            description: row.catalog.description,
            lifecycle: row.catalog.lifecycle,
            links: row.catalog.links,
            depends_on: row.catalog.depends_on,
            catalog_only: row.catalog_only,
            repo_url: row.repo_url,
            descriptor: row.descriptor,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RawComponent {
    id: i64,
    name: String,
    team: String,
    description: String,
    lifecycle: String,
    links: String,
    depends_on: String,
    catalog_only: bool,
    repo_url: Option<String>,
    descriptor: String,
}

impl TryFrom<RawComponent> for ComponentRow {
    type Error = StoreError;

    fn try_from(raw: RawComponent) -> Result<Self> {
        Ok(ComponentRow {
            id: raw.id,
            name: raw.name,
            team: raw.team,
            description: raw.description,
            lifecycle: raw.lifecycle,
            links: crate::from_json("services.links", &raw.links)?,
            depends_on: crate::from_json("services.depends_on", &raw.depends_on)?,
            catalog_only: raw.catalog_only,
            repo_url: raw.repo_url,
            descriptor: crate::from_json("services.descriptor", &raw.descriptor)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct Key {
    service_id: Option<i64>,
    entity: Option<String>,
}

impl Store {
    /// A page of the Backstage entity list: entities matching any of `filters` (all when
    /// empty), ordered by kind, namespace and name. Each filter is stated for services
    /// and for stored entities apart, on their own (indexed) columns, so that an owner's
    /// page reads that team's services and entities only, not the whole catalog. A page
    /// near the start reads each side's first rows whole and merges them (one query a
    /// side); a deep one finds its keys through one ordered union first.
    pub async fn entity_page(&self, filters: &[EntityFilter], offset: i64, limit: i64) -> Result<Vec<EntityRow>> {
        const SHALLOW: i64 = 2000;
        if offset + limit <= SHALLOW {
            let (services, service_binds) = conditions(filters, Side::Services, 1);
            let (entities, entity_binds) = conditions(filters, Side::Entities, 1);
            let wanted = offset + limit;
            let service_sql = format!(
                "SELECT s.id, s.name, t.name AS team, s.description, s.lifecycle, s.links, s.depends_on, \
                 s.catalog_only, s.repo_url, s.descriptor FROM services s JOIN teams t ON t.id = s.team_id \
                 WHERE {services} ORDER BY s.name LIMIT {wanted}"
            );
            let entity_sql = format!(
                "SELECT c.kind, c.namespace, c.name, c.entity FROM catalog_entities c WHERE {entities} \
                 ORDER BY c.kind, c.namespace, c.name LIMIT {wanted}"
            );
            let raws = on_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, RawComponent>(sqlx::AssertSqlSafe(service_sql.as_str()));
                for value in &service_binds {
                    q = q.bind(value);
                }
                q.fetch_all(pool).await
            })?;
            let stored = on_pool!(self, pool => {
                let mut q = sqlx::query_as::<_, (String, String, String, String)>(sqlx::AssertSqlSafe(entity_sql.as_str()));
                for value in &entity_binds {
                    q = q.bind(value);
                }
                q.fetch_all(pool).await
            })?;
            // Merge the two ordered lists on (kind, namespace, name); services are
            // `component:default/<name>`.
            let mut services =
                raws.into_iter().map(ComponentRow::try_from).collect::<Result<Vec<_>>>()?.into_iter().peekable();
            let mut stored = stored.into_iter().peekable();
            let mut rows = Vec::new();
            loop {
                let take_service = match (services.peek(), stored.peek()) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(s), Some((k, ns, n, _))) => {
                        ("component", "default", s.name.as_str()) <= (k.as_str(), ns.as_str(), n.as_str())
                    }
                };
                let row = if take_service {
                    services.next().map(|s| EntityRow::Service(Box::new(s)))
                } else {
                    stored.next().map(|(_, _, _, entity)| EntityRow::Stored(entity))
                };
                rows.extend(row);
            }
            return Ok(rows.into_iter().skip(offset as usize).take(limit as usize).collect());
        }
        let (services, mut binds) = conditions(filters, Side::Services, 1);
        let (entities, entity_binds) = conditions(filters, Side::Entities, binds.len() + 1);
        binds.extend(entity_binds);
        let sql = format!(
            "SELECT e.service_id, e.entity FROM ( \
             SELECT 'component' AS kind, 'default' AS namespace, s.name AS name, s.id AS service_id, \
             CAST(NULL AS TEXT) AS entity FROM services s WHERE {services} \
             UNION ALL SELECT c.kind, c.namespace, c.name, CAST(NULL AS BIGINT), c.entity FROM catalog_entities c \
             WHERE {entities}) e ORDER BY e.kind, e.namespace, e.name LIMIT {limit} OFFSET {offset}"
        );
        let keys = on_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, Key>(sqlx::AssertSqlSafe(sql.as_str()));
            for value in &binds {
                q = q.bind(value);
            }
            q.fetch_all(pool).await
        })?;
        let ids: Vec<i64> = keys.iter().filter_map(|k| k.service_id).collect();
        let mut services = self.services_by_ids(&ids).await?;
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            match (key.service_id, key.entity) {
                (Some(id), _) => {
                    // A service deleted between the two reads is left out of the page.
                    if let Some(at) = services.iter().position(|s| s.id == id) {
                        rows.push(EntityRow::Service(Box::new(services.swap_remove(at).into())));
                    }
                }
                (None, Some(entity)) => rows.push(EntityRow::Stored(entity)),
                (None, None) => return Err(StoreError::Corrupt("catalog entity without a body".to_owned())),
            }
        }
        Ok(rows)
    }

    /// One stored entity (not a service) by its lower-case identity.
    pub async fn stored_entity(&self, kind: &str, namespace: &str, name: &str) -> Result<String> {
        let entity = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT entity FROM catalog_entities WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind).bind(namespace).bind(name).fetch_one(pool).await)?;
        Ok(entity)
    }

    /// Stored entities of one kind, by name, for the portal (at most `limit`).
    pub async fn stored_entities_of_kind(&self, kind: &str, limit: i64) -> Result<Vec<String>> {
        let rows = on_pool!(self, pool => sqlx::query_scalar::<_, String>(
            "SELECT entity FROM catalog_entities WHERE kind = $1 ORDER BY namespace, name LIMIT $2")
            .bind(kind).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    async fn services_by_ids(&self, ids: &[i64]) -> Result<Vec<ServiceRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            concat!(
                "SELECT ",
                crate::services::columns!(),
                " FROM services s JOIN teams t ON t.id = s.team_id WHERE s.id IN ({})"
            ),
            placeholders(1, ids.len())
        );
        let raws = on_pool!(self, pool => {
            let mut q = sqlx::query_as::<_, crate::services::RawService>(sqlx::AssertSqlSafe(sql.as_str()));
            for id in ids {
                q = q.bind(id);
            }
            q.fetch_all(pool).await
        })?;
        raws.into_iter().map(ServiceRow::try_from).collect()
    }
}

/// Which relation a filter is stated for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Services,
    Entities,
}

/// The filters as one SQL condition on `side` (`s` for services, `c` for stored
/// entities), with its values to bind from placeholder `$first` on.
fn conditions(filters: &[EntityFilter], side: Side, first: usize) -> (String, Vec<String>) {
    const NONE: &str = "1 = 0";
    let mut binds: Vec<String> = Vec::new();
    let mut bind = |value: &str| {
        binds.push(value.to_owned());
        format!("${}", first + binds.len() - 1)
    };
    let services = side == Side::Services;
    let mut terms = Vec::new();
    for filter in filters {
        let mut parts = Vec::new();
        // A service is `component:default/<name>`, owned by a group (its team): a term
        // asking for anything else matches no service.
        let fixed = [
            (&filter.kind, "component", "c.kind"),
            (&filter.namespace, "default", "c.namespace"),
            (&filter.owner_kind, "group", "c.owner_kind"),
        ];
        for (wanted, service_value, column) in fixed {
            let Some(wanted) = wanted else { continue };
            if !services {
                parts.push(format!("{column} = {}", bind(wanted)));
            } else if wanted != service_value {
                parts.push(NONE.to_owned());
            }
        }
        if let Some(name) = &filter.name {
            // Service names are lower case already (a DNS label).
            parts.push(if services { format!("s.name = {}", bind(name)) } else { format!("c.name = {}", bind(name)) });
        }
        if let Some(lifecycle) = &filter.lifecycle {
            parts.push(if services {
                format!("LOWER(s.lifecycle) = {}", bind(lifecycle))
            } else {
                format!("c.lifecycle = {}", bind(lifecycle))
            });
        }
        if services && let Some(teams) = &filter.owner_teams {
            // Ids read from the database, not text from the request.
            let ids: Vec<String> = teams.iter().map(i64::to_string).collect();
            parts.push(if ids.is_empty() { NONE.to_owned() } else { format!("s.team_id IN ({})", ids.join(", ")) });
        }
        if !services && let Some(owners) = &filter.owner_names {
            if owners.is_empty() {
                parts.push(NONE.to_owned());
            } else {
                let list: Vec<String> = owners.iter().map(|o| bind(o)).collect();
                parts.push(format!("c.owner_name IN ({})", list.join(", ")));
            }
        }
        terms.push(if parts.is_empty() { "1 = 1".to_owned() } else { format!("({})", parts.join(" AND ")) });
    }
    let condition = if terms.is_empty() { "1 = 1".to_owned() } else { terms.join(" OR ") };
    (condition, binds)
}
