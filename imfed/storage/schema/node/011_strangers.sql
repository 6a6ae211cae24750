-- Messages from strangers (docs/security.md): a user may refuse them, and how many a user
-- received from whom lately is counted by recipient and time.
ALTER TABLE users ADD COLUMN accept_strangers INTEGER NOT NULL DEFAULT 1;
CREATE INDEX messages_recipient_time ON messages (recv_id, created_at)
