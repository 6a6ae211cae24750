-- Registration and review (§5.3.1, §6.1, docs/protocol.md §4), the audit log, the notification queue.

CREATE TABLE applications (
    application_id TEXT PRIMARY KEY,
    kind           TEXT NOT NULL CHECK (kind IN ('apply', 'modify', 'deregister')),
    server_id      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_at   INTEGER NOT NULL,
    submitted_by   TEXT NOT NULL,
    token_hash     TEXT NOT NULL,
    data           TEXT NOT NULL,          -- JSON: the application's fields or changes
    csr_pem        TEXT,
    decided_at     INTEGER,
    decided_by     TEXT,
    reason         TEXT NOT NULL DEFAULT '',
    cert_pem       TEXT
);
-- At most one open application per serverId.
CREATE UNIQUE INDEX applications_one_pending ON applications (server_id) WHERE status = 'pending';
CREATE INDEX applications_status ON applications (status, submitted_at);

-- Append-only: what, who, when, why.
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- receivenotify deliveries still owed (§6.3.3): one row per (node, changed server).
CREATE TABLE notify_queue (
    target_id      TEXT NOT NULL,
    changed_id     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_attempt   INTEGER NOT NULL,
    last_error     TEXT NOT NULL DEFAULT '',
    -- Bumped when the same change is owed again while a delivery is in flight, so that
    -- delivery's success does not erase the newer debt.
    version        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (target_id, changed_id)
);
CREATE INDEX notify_queue_due ON notify_queue (next_attempt);
