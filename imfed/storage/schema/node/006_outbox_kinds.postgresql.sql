-- 006_outbox_kinds.sql for PostgreSQL: the same conversion, with PostgreSQL's JSON and string
-- functions.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT '';
UPDATE outbox SET kind = CASE
    WHEN path LIKE '%/chat' THEN 'chat'
    WHEN path LIKE '%/add/users' THEN 'add_users'
    WHEN path LIKE '%/rsp/users' THEN 'rsp_users'
    WHEN path LIKE '%/del/users' THEN 'del_users'
    WHEN path LIKE '%/invite/grpreq' THEN 'invite_grpreq'
    WHEN path LIKE '%/invite/grprep?%' THEN 'invite_grprep'
    WHEN path LIKE '%/quit/grpmember?%' THEN 'quit_grpmember'
    WHEN path LIKE '%/notify/grpchat?%' THEN 'notify_grpchat'
    WHEN path LIKE '%/notify/grpnotify?%' THEN 'notify_grpnotify'
    ELSE '' END;
UPDATE outbox SET body = jsonb_set(body::jsonb, '{groupID}',
        to_jsonb(substr(path, strpos(path, 'groupID=') + 8)))::text
    WHERE strpos(path, '?groupID=') > 0;
DELETE FROM outbox WHERE kind = '';
ALTER TABLE outbox DROP COLUMN method;
ALTER TABLE outbox DROP COLUMN path;
ALTER TABLE outbox RENAME COLUMN body TO payload;
