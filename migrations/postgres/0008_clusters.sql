-- Kubernetes clusters admins register (kubeconfig sealed like a secret), and where each
-- environment runs: 'local' or a cluster's name.

CREATE TABLE clusters (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              TEXT   NOT NULL UNIQUE,
    context           TEXT   NOT NULL,
    server            TEXT   NOT NULL,
    kubeconfig_sealed TEXT   NOT NULL,
    base_domain       TEXT   NOT NULL,
    ingress_class     TEXT   NOT NULL DEFAULT '',
    created_by        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL
);

ALTER TABLE environments ADD COLUMN runtime TEXT NOT NULL DEFAULT 'local';
