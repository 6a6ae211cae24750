-- Group messages can be recalled (issue #26, the master's rule: docs/groups.md): a recalled
-- message keeps its place in the group's order, its content is erased.
ALTER TABLE group_messages ADD COLUMN recalled INTEGER NOT NULL DEFAULT 0;
