-- A group's announcement (群公告, issue #26): set by the owner or an admin on the master, told
-- to every server with members in groupInfo's groupNotice (docs/groups.md), kept in each view.
ALTER TABLE groups ADD COLUMN notice TEXT NOT NULL DEFAULT '';
ALTER TABLE groups ADD COLUMN notice_by TEXT NOT NULL DEFAULT '';
ALTER TABLE groups ADD COLUMN notice_at INTEGER NOT NULL DEFAULT 0;
