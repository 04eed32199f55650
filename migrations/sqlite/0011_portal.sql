-- The portal: what catalog-info.yaml declares, commit times for DORA lead time, and the
-- indexes the catalog, the dashboard and the metrics read by.
ALTER TABLE services ADD COLUMN declared_owner TEXT;
ALTER TABLE services ADD COLUMN catalog_synced_at BIGINT;
ALTER TABLE runs ADD COLUMN commit_at BIGINT;
CREATE INDEX runs_service_finished ON runs(service_id, finished_at);
CREATE INDEX runs_environment ON runs(environment_id, id);
CREATE INDEX services_lifecycle ON services(lifecycle, name);
