-- Config vars and secrets: every change stores the environment's whole config as a new
-- immutable version (secret values sealed), so a release names the exact config it ran
-- with and a rollback can restore it.

CREATE TABLE config_versions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id BIGINT  NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    vars           TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    UNIQUE (environment_id, version)
);

ALTER TABLE releases ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;
