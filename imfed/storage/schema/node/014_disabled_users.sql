-- A user an operator disabled (imfed user disable, the admin API): cannot log in, sessions
-- ended, not found by search; the account and what it holds stay (docs/operations.md).
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
