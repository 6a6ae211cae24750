-- The full JID (with its resource) that sent each remembered stanza: an error about the
-- message later (its delivery failed) goes to it, since XMPP servers drop a message error
-- addressed to a bare JID (RFC 6121 8.5.2.1.1).  And what the client asked to be told:
-- 1 a receipt (XEP-0184), 2 a "received" chat marker (XEP-0333), 3 both.
ALTER TABLE xmpp_ids ADD COLUMN jid TEXT NOT NULL DEFAULT '';
ALTER TABLE xmpp_ids ADD COLUMN wants INTEGER NOT NULL DEFAULT 0;
