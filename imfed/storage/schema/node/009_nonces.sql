-- Nonces of signed requests seen within the replay window, kept here when several processes
-- serve the node (PostgreSQL): a nonce one process took is refused by every other.  Alone on
-- SQLite a process keeps them in memory (crypto/signing.py) and this table stays empty.
CREATE TABLE seen_nonces (
    origin     TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (origin, nonce)
);
CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at);
