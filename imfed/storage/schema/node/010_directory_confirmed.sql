-- When the management server last answered a directory query (ms): how old the node's
-- knowledge of every server's status is (peer_status_max_age_seconds, docs/security.md).
ALTER TABLE directory_state ADD COLUMN confirmed_at INTEGER NOT NULL DEFAULT 0
