-- Environment templates (immutable published versions), environments made from them
-- (template, parameters, rendered spec, preview lifetime), the same on each release, and
-- per-team quotas.

CREATE TABLE templates (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    major        INTEGER NOT NULL,
    minor        INTEGER NOT NULL,
    patch        INTEGER NOT NULL,
    description  TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    builtin      BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated   BOOLEAN NOT NULL DEFAULT FALSE,
    published_by TEXT    NOT NULL,
    published_at BIGINT  NOT NULL,
    UNIQUE (name, version)
);

-- Environments made before templates existed ran the web template's defaults.
ALTER TABLE environments ADD COLUMN template TEXT NOT NULL DEFAULT 'web';
ALTER TABLE environments ADD COLUMN template_version TEXT NOT NULL DEFAULT '1.0.0';
ALTER TABLE environments ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';
ALTER TABLE environments ADD COLUMN spec TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN preview BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE environments ADD COLUMN expires_at BIGINT;
ALTER TABLE environments ADD COLUMN idle_ttl_ms BIGINT;
ALTER TABLE environments ADD COLUMN last_request_at BIGINT;
ALTER TABLE environments ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
-- What the environment counts against its team's quotas (all workloads).
ALTER TABLE environments ADD COLUMN total_replicas INTEGER NOT NULL DEFAULT 2;
ALTER TABLE environments ADD COLUMN total_memory_mb BIGINT NOT NULL DEFAULT 512;

ALTER TABLE releases ADD COLUMN template TEXT NOT NULL DEFAULT 'web';
ALTER TABLE releases ADD COLUMN template_version TEXT NOT NULL DEFAULT '1.0.0';
ALTER TABLE releases ADD COLUMN parameters TEXT NOT NULL DEFAULT '{}';
ALTER TABLE releases ADD COLUMN spec TEXT NOT NULL DEFAULT '';

CREATE TABLE quotas (
    team_id          BIGINT PRIMARY KEY REFERENCES teams(id) ON DELETE CASCADE,
    max_environments INTEGER,
    max_previews     INTEGER,
    max_replicas     INTEGER,
    max_memory_mb    BIGINT,
    updated_by       TEXT   NOT NULL,
    updated_at       BIGINT NOT NULL
);
