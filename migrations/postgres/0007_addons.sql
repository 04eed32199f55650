-- Add-ons provisioned beside an environment's workloads: the container and volume that
-- hold them, where replicas reach them, and their generated password (sealed).

CREATE TABLE addons (
    environment_id  BIGINT  NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    container       TEXT    NOT NULL,
    volume          TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    port            INTEGER NOT NULL,
    password_sealed TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (environment_id, kind)
);
