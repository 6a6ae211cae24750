-- The bridge's push cursor (docs/bridge.md): the events up to this seq have been handed to the
-- bridged system (acknowledged with a 2xx); the next transaction starts after it.
CREATE TABLE bridge_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    pushed_through INTEGER NOT NULL
);
