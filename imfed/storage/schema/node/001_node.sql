-- The node role's store.

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

-- Access control (§5.3.2): per direction a mode, and the two lists.
CREATE TABLE acl_mode (
    direction TEXT PRIMARY KEY CHECK (direction IN ('in', 'out')),
    mode      TEXT NOT NULL CHECK (mode IN ('open', 'whitelist', 'blacklist'))
);
INSERT INTO acl_mode VALUES ('in', 'open'), ('out', 'open');
CREATE TABLE acl_list (
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    list      TEXT NOT NULL CHECK (list IN ('whitelist', 'blacklist')),
    server_id TEXT NOT NULL,
    PRIMARY KEY (direction, list, server_id)
);

-- This server's own users.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    phone         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    portrait      TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    verify_type   INTEGER NOT NULL DEFAULT 2 CHECK (verify_type IN (1, 2)),
    searchable    INTEGER NOT NULL DEFAULT 1,
    update_time   INTEGER NOT NULL
);
CREATE INDEX users_name ON users (name);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- Friendships as each local user sees them (the friend may be on another server).
CREATE TABLE friends (
    owner_id   TEXT NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    friend_id  TEXT NOT NULL,
    remark     TEXT NOT NULL DEFAULT '',
    friend_info TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, friend_id)
);

CREATE TABLE friend_requests (
    request_id TEXT PRIMARY KEY,
    from_id    TEXT NOT NULL,
    to_id      TEXT NOT NULL,
    remark     TEXT NOT NULL DEFAULT '',
    from_info  TEXT NOT NULL DEFAULT '{}',
    status     TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'refused')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX friend_requests_open ON friend_requests (from_id, to_id)
    WHERE status = 'pending';

-- Messages sent and received by local users, in the order this server stored them.
CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   TEXT NOT NULL UNIQUE,
    chat_type    INTEGER NOT NULL,
    sender_id    TEXT NOT NULL,
    recv_id      TEXT NOT NULL,
    conversation TEXT NOT NULL,
    message_type TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'received', 'failed')),
    recalled     INTEGER NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX messages_conversation ON messages (conversation, seq);

-- Durable outbound queue: per destination and lane (a conversation, or a pair of users for
-- friend requests), strictly in seq order; lanes are delivered in parallel.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    destination  TEXT NOT NULL,
    lane         TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    body         TEXT NOT NULL,
    message_id   TEXT,
    created_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_lane ON outbox (destination, lane, seq);

-- What each local user's event stream has to show, replayable by seq.
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX events_user ON events (user_id, seq);

-- Files: uploaded by local users (their fileID names this server), or announced by another
-- server in a message (path NULL until a local user first downloads it, then the cached copy).
CREATE TABLE files (
    file_id    TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    size       INTEGER NOT NULL,
    md5        TEXT NOT NULL,
    sm3        TEXT NOT NULL DEFAULT '',
    path       TEXT,
    created_at INTEGER NOT NULL
);
-- Who may fetch a file: the users it was sent to (and their servers, through them).
CREATE TABLE file_access (
    file_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (file_id, user_id)
);
