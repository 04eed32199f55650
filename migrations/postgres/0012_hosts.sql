-- Each environment's host name `<service>-<environment>` (its router host and, with
-- `slipway-` in front, its Kubernetes namespace) is unique across all services: service
-- `shop` with environment `api-production` would otherwise take over `shop-api`'s
-- `production`. Existing clashes keep the older environment's claim; the newer one has
-- none until it is recreated.
ALTER TABLE environments ADD COLUMN host TEXT;
UPDATE environments SET host = (SELECT s.name || '-' || environments.name FROM services s WHERE s.id = environments.service_id);
UPDATE environments SET host = NULL WHERE id NOT IN (SELECT MIN(id) FROM environments GROUP BY host);
CREATE UNIQUE INDEX environments_host ON environments(host);
