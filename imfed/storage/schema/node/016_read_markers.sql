-- Where each user has read to in each conversation (issue #26): ``conversation`` is the other
-- party's user ID for a one-to-one conversation (``seq`` a message's seq) or a group's ID
-- (``seq`` a group message's gseq).  Kept on the server, so a read on one device or tab is a
-- read on every other; unread counts are what came after it.
CREATE TABLE read_markers (
    user_id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation)
);
