-- Backstage descriptors in full (issue 17): catalog-only services (an external repository,
-- no Slipway git repository or environments), the fields Slipway keeps beyond its own
-- catalog fields, the owner a descriptor declares as a parsed entity reference, the
-- descriptor last applied (so its warnings are printed once per change), team aliases
-- (Backstage group names), and the entities descriptors declare besides components.
ALTER TABLE services ADD COLUMN catalog_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE services ADD COLUMN repo_url TEXT;
-- JSON (slipway_core::catalog::Descriptor): title, tags, annotations, type, system, APIs, resources.
ALTER TABLE services ADD COLUMN descriptor TEXT NOT NULL DEFAULT '{}';
ALTER TABLE services ADD COLUMN declared_owner_kind TEXT;
-- Lower case: Backstage compares entity references case-insensitively.
ALTER TABLE services ADD COLUMN declared_owner_name TEXT;
ALTER TABLE services ADD COLUMN descriptor_digest TEXT;
UPDATE services SET
    declared_owner_kind = CASE WHEN declared_owner LIKE 'user:%' THEN 'user' ELSE 'group' END,
    declared_owner_name = LOWER(CASE WHEN declared_owner LIKE 'user:%' THEN SUBSTR(declared_owner, 6) ELSE declared_owner END)
    WHERE declared_owner IS NOT NULL;

CREATE TABLE team_aliases (
    alias   TEXT   PRIMARY KEY,
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE
);
CREATE INDEX team_aliases_team ON team_aliases(team_id);

-- Entities other than services' components (API, System, Resource, Group, Domain,
-- Location…). kind, namespace and name are lower case (the identity); `entity` is the
-- Backstage JSON as served. One from a push belongs to its service (origin_service_id)
-- and goes with it; an imported one has none. team_id is the owning team an import or a
-- push resolved; only that team (or an admin) changes the entity again.
CREATE TABLE catalog_entities (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    kind              TEXT   NOT NULL,
    namespace         TEXT   NOT NULL,
    name              TEXT   NOT NULL,
    owner_kind        TEXT,
    owner_name        TEXT,
    lifecycle         TEXT,
    team_id           BIGINT REFERENCES teams(id) ON DELETE CASCADE,
    origin_service_id BIGINT REFERENCES services(id) ON DELETE CASCADE,
    entity            TEXT   NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (kind, namespace, name)
);
CREATE INDEX catalog_entities_owner ON catalog_entities(owner_name, kind, namespace, name);
CREATE INDEX catalog_entities_origin ON catalog_entities(origin_service_id);
CREATE INDEX services_team_name ON services(team_id, name);
