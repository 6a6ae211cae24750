-- Pinned and muted conversations (issue #26): per user, kept on the server as read markers are,
-- so a chat pinned or muted on one device or tab is so on every other. ``conversation`` as in
-- read_markers: the other party's user ID, or a group's ID. A row only while one is set.
CREATE TABLE pins_mutes (
    user_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    pinned INTEGER NOT NULL,
    muted INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation)
);
