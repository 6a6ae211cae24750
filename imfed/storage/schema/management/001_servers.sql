-- The directory of IM servers (§6.1.1.3 table 1, docs/protocol.md §4).
-- changed_at: strictly increasing across all rows (ms), the key of incremental queries.
CREATE TABLE servers (
    server_id       TEXT PRIMARY KEY,
    server_name     TEXT NOT NULL,
    server_address  TEXT NOT NULL,
    server_type     TEXT NOT NULL DEFAULT '',
    area            TEXT NOT NULL DEFAULT '',
    country         TEXT NOT NULL DEFAULT '',
    owner_id        TEXT NOT NULL DEFAULT '',
    contact_name    TEXT NOT NULL,
    contact_email   TEXT NOT NULL,
    contact_mobile  TEXT NOT NULL,
    status          INTEGER NOT NULL CHECK (status IN (0, 1, 2)),
    cert_pem        TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    changed_at      INTEGER NOT NULL UNIQUE
);
CREATE INDEX servers_changed_at ON servers (changed_at);
