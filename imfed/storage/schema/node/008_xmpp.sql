-- Where each feed of events to a system outside the node stands (imfed/node/feeds.py): the
-- events up to seq have been handed over and acknowledged.  "bridge": the bridged system's
-- pushes (its cursor was bridge_state's); "xmpp": the XMPP gateway (acknowledged when the XMPP
-- server answered a ping sent after them on the same stream).
CREATE TABLE event_cursors (
    name TEXT PRIMARY KEY,
    seq  INTEGER NOT NULL
);
INSERT INTO event_cursors SELECT 'bridge', pushed_through FROM bridge_state;
DROP TABLE bridge_state;
-- The XMPP gateway (docs/bridge.md).
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
