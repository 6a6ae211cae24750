-- Idempotent client sends (docs/client-api.md): what each user's txnId made, kept a day.
CREATE TABLE client_txns (
    user_id    TEXT NOT NULL,
    txn_id     TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, txn_id)
);
CREATE INDEX client_txns_time ON client_txns (created_at)
