-- Sessions move to arbor::sessions::SqlStore (table `sessions`): the same SHA-256 ids, plus the
-- session data (JSON) and the last request (for the idle expiry). Existing sessions stay valid,
-- last seen when they started. `user_id` stays NOT NULL: the app has no anonymous sessions.
ALTER TABLE sessions ADD COLUMN data TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen_at = created_at;
CREATE INDEX sessions_expires_at ON sessions (expires_at);
