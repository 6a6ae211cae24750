-- Groups (§6.4.2, docs/protocol.md §5).  A group's state lives on its master server (the owner's);
-- other servers keep what they are told about the groups their users are in.

-- Groups this server is the master of, and the views other masters sent us.
CREATE TABLE groups (
    group_id    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    icon        TEXT NOT NULL DEFAULT '',
    owner_id    TEXT NOT NULL,
    is_allow    INTEGER NOT NULL DEFAULT 1 CHECK (is_allow IN (1, 2)),
    is_visible  INTEGER NOT NULL DEFAULT 1 CHECK (is_visible IN (1, 2)),
    created_at  INTEGER NOT NULL,
    dissolved   INTEGER NOT NULL DEFAULT 0,
    master      INTEGER NOT NULL        -- 1 here, 0 a view of another server's group
);

-- Members: complete on the master; on other servers, what the master announced.
CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (group_id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL,
    user_type INTEGER NOT NULL CHECK (user_type IN (1, 2, 3)),   -- member, admin, owner
    user_info TEXT NOT NULL DEFAULT '{}',
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- Invitations: on the master, those it sent (to answer grprep); on the invitee's server, those
-- waiting for its user.
CREATE TABLE group_invitations (
    invitation_id TEXT PRIMARY KEY,
    group_id      TEXT NOT NULL,
    group_name    TEXT NOT NULL,
    inviter_id    TEXT NOT NULL,
    invitee_id    TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'refused')),
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX group_invitations_open ON group_invitations (group_id, invitee_id)
    WHERE status = 'pending';

-- Group messages.  On the master, gseq is the group's one order; elsewhere, the order they
-- arrived in from the master.
CREATE TABLE group_messages (
    gseq         INTEGER PRIMARY KEY AUTOINCREMENT,
    group_id     TEXT NOT NULL,
    message_id   TEXT NOT NULL UNIQUE,
    sender_id    TEXT NOT NULL,
    message_type TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX group_messages_group ON group_messages (group_id, gseq);
