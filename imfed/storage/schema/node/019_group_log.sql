-- What happened to each group (issue #26): joins, removals, admins, renames, announcements,
-- its end; one row per change as this server learnt it, placed after the newest message it
-- held then (after_ord: that message's ord, 0 for none), so a member's chat shows the same
-- lines between the same messages after a reload as it did live.
CREATE TABLE group_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id    TEXT NOT NULL,
    after_ord   REAL NOT NULL,
    after_id    TEXT NOT NULL,
    entry       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX group_log_place ON group_log (group_id, after_ord);
