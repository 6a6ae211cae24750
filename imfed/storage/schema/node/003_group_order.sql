-- A server that is not a group's master keeps the master's order of its messages, also for
-- those it fills in later with grpchat (§6.4.2.12): ord is the position (gseq unless a filled
-- message was put between two others), and group_sync the newest message up to which this
-- server's copy was last checked complete against the master.
ALTER TABLE group_messages ADD COLUMN ord REAL;
UPDATE group_messages SET ord = gseq;
CREATE TRIGGER group_messages_ord AFTER INSERT ON group_messages WHEN NEW.ord IS NULL
BEGIN
    UPDATE group_messages SET ord = NEW.gseq WHERE gseq = NEW.gseq;
END;
CREATE INDEX group_messages_ord ON group_messages (group_id, ord);

CREATE TABLE group_sync (
    group_id       TEXT PRIMARY KEY REFERENCES groups (group_id) ON DELETE CASCADE,
    synced_through TEXT NOT NULL,     -- a messageID; '' for "from the oldest the master keeps"
    synced_at      INTEGER NOT NULL
);
