-- Releases: immutable vN of an environment (image, commit, how it runs), and each
-- environment's current release and replica count.

ALTER TABLE environments ADD COLUMN replicas INTEGER NOT NULL DEFAULT 2;
ALTER TABLE environments ADD COLUMN current_release BIGINT;

CREATE TABLE releases (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    environment_id BIGINT  NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    run_id         BIGINT,
    image          TEXT    NOT NULL,
    image_id       TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    port           INTEGER NOT NULL,
    health         TEXT    NOT NULL,
    created_by     TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    UNIQUE (environment_id, version)
);
