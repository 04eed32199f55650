-- Per-environment traffic figures: what the app router counted in one minute (`minute`,
-- Unix seconds of its start), one row per replica of slipwayd that served it. `latency`
-- is the histogram of times to the response's head (slipway_core::traffic). Rows older
-- than a day are pruned.
CREATE TABLE traffic_minutes (
    environment_id BIGINT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    minute         BIGINT NOT NULL,
    requests       BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    latency        TEXT   NOT NULL
);
CREATE INDEX traffic_minutes_environment ON traffic_minutes(environment_id, minute);
CREATE INDEX traffic_minutes_minute ON traffic_minutes(minute);
