-- The XMPP gateway (docs/bridge.md).
-- How far the gateway has handed its users' events to the XMPP server (acknowledged: the
-- server answered a ping sent after them on the same stream).
CREATE TABLE xmpp_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    sent_through INTEGER NOT NULL
);
-- Rooms an XMPP user made by joining a new name: the name stays the group's room JID.
CREATE TABLE xmpp_rooms (
    room     TEXT PRIMARY KEY,
    group_id TEXT NOT NULL UNIQUE
);
-- The stanza ID an XMPP user's client gave a message, for the echo and for a retraction
-- (XEP-0424) that names it.
CREATE TABLE xmpp_ids (
    user_id    TEXT NOT NULL,
    stanza_id  TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, stanza_id)
);
CREATE INDEX xmpp_ids_message ON xmpp_ids (message_id);
