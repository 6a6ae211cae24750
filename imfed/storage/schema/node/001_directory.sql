-- The node's copy of the management directory (§6.3.1), kept across restarts.
CREATE TABLE directory (
    server_id        TEXT PRIMARY KEY,
    server_name      TEXT NOT NULL,
    server_address   TEXT NOT NULL,
    status           INTEGER NOT NULL,
    cert_pem         TEXT,
    cert_fingerprint TEXT NOT NULL DEFAULT '',
    updated_at       INTEGER NOT NULL
);
CREATE TABLE directory_state (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_query_time INTEGER NOT NULL
);
