-- Sessions that end before their expiry: signing out revokes the session's token id
-- (kept until the token would have expired anyway), and changing a password ends every
-- session issued before the change (`sessions_after`, Unix ms).
ALTER TABLE users ADD COLUMN sessions_after BIGINT NOT NULL DEFAULT 0;
CREATE TABLE revoked_sessions (
    jti        TEXT   PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_sessions_expiry ON revoked_sessions(expires_at);
