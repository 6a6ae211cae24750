-- 003_group_order.sql for PostgreSQL: the same columns and table; ord is filled by a BEFORE
-- trigger (the identity gseq is already given then) instead of SQLite's AFTER ... UPDATE.
ALTER TABLE group_messages ADD COLUMN ord DOUBLE PRECISION;
UPDATE group_messages SET ord = gseq;
CREATE FUNCTION group_messages_ord() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.ord IS NULL THEN
        NEW.ord := NEW.gseq;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER group_messages_ord BEFORE INSERT ON group_messages
    FOR EACH ROW EXECUTE FUNCTION group_messages_ord();
CREATE INDEX group_messages_ord ON group_messages (group_id, ord);

CREATE TABLE group_sync (
    group_id       TEXT PRIMARY KEY REFERENCES groups (group_id) ON DELETE CASCADE,
    synced_through TEXT NOT NULL,     -- a messageID; '' for "from the oldest the master keeps"
    synced_at      BIGINT NOT NULL
);
