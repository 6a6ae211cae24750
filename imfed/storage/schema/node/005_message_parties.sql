-- A user's conversations are found from the messages they sent or received: without these
-- indexes, listing them read every message of the server.
CREATE INDEX messages_sender ON messages (sender_id);
CREATE INDEX messages_recv ON messages (recv_id);
