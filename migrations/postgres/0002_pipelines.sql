-- Environments (what a branch deploys to), pipeline runs, their stages and log lines.

CREATE TABLE environments (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id BIGINT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    branch     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (service_id, name)
);
CREATE INDEX environments_branch ON environments(service_id, branch);

CREATE TABLE runs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id       BIGINT NOT NULL REFERENCES services(id) ON DELETE CASCADE,
    environment_id   BIGINT REFERENCES environments(id) ON DELETE SET NULL,
    trigger          TEXT   NOT NULL,
    git_ref          TEXT   NOT NULL,
    commit_sha       TEXT   NOT NULL,
    actor            TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    reason           TEXT   NOT NULL DEFAULT '',
    node             TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    image            TEXT,
    image_id         TEXT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT
);
CREATE INDEX runs_service ON runs(service_id, id);
CREATE INDEX runs_status ON runs(status, id);

CREATE TABLE run_stages (
    run_id      BIGINT  NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    started_at  BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE run_logs (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    at     BIGINT NOT NULL,
    stage  TEXT   NOT NULL,
    line   TEXT   NOT NULL,
    PRIMARY KEY (run_id, seq)
);
