-- Lookups by a user that read whole tables without these: a user's conversations (from the
-- messages they sent or received), their groups, and the friend requests and group
-- invitations waiting for them.
CREATE INDEX messages_sender ON messages (sender_id);
CREATE INDEX messages_recv ON messages (recv_id);
CREATE INDEX group_members_user ON group_members (user_id);
CREATE INDEX friend_requests_to ON friend_requests (to_id) WHERE status = 'pending';
CREATE INDEX group_invitations_invitee ON group_invitations (invitee_id)
    WHERE status = 'pending';
