"""Who is who on both sides (docs/bridge.md, "The ID mapping"):

- a user of the XMPP server, ``localpart@domain``, is the node's user ``phone@serverId``:
  the localpart is the phone number, or ``[xmpp.accounts]`` names the phone of a localpart;
- every other federation user, and every group, is a JID on the component's domain whose
  localpart is the federation ID, escaped as XEP-0106 says: ``13600000002@node-b`` is
  ``13600000002\\40node-b@imfed.example.com``;
- a group made from XMPP keeps the room name its creator joined (``project@component``)."""

from __future__ import annotations

from twisted.words.protocols.jabber.jid import JID, InvalidFormat

from ...config import PHONE, XmppConfig
from ...wire.message_info import split_id

__all__ = ["escape", "unescape", "Mapping"]

_ESCAPES = {" ": "\\20", '"': "\\22", "&": "\\26", "'": "\\27", "/": "\\2f", ":": "\\3a",
            "<": "\\3c", ">": "\\3e", "@": "\\40", "\\": "\\5c"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}


def escape(text: str) -> str:
    """XEP-0106: the characters a localpart may not hold, as ``\\hh``."""
    return "".join(_ESCAPES.get(c, c) for c in text)


def unescape(local: str) -> str:
    out, i = [], 0
    while i < len(local):
        seq = local[i:i + 3].lower()
        if seq in _UNESCAPES:
            out.append(_UNESCAPES[seq])
            i += 3
        else:
            out.append(local[i])
            i += 1
    return "".join(out)


class Mapping:
    def __init__(self, config: XmppConfig, server_id: str) -> None:
        self.config, self.server_id = config, server_id
        self.component, self.domain = config.component, config.domain
        self._phone_of = {k.lower(): v for k, v in config.accounts.items()}
        self._local_of = {v: k.lower() for k, v in config.accounts.items()}

    # -- the XMPP server's own users --

    def local_user(self, jid: JID) -> str | None:
        """The federation ID of one of the XMPP server's users (None: not one the gateway
        serves)."""
        if jid.host != self.domain or not jid.user:
            return None
        phone = self._phone_of.get(jid.user, jid.user)
        if not PHONE.match(phone) or not self.config.owns(phone):
            return None
        return "%s@%s" % (phone, self.server_id)

    def serves(self, user_id: str) -> bool:
        """Is this federation user one of the XMPP server's?"""
        parts = split_id(user_id)
        return parts is not None and parts[1] == self.server_id and \
            PHONE.match(parts[0]) is not None and self.config.owns(parts[0])

    # -- everyone seen from XMPP --

    def user_jid(self, user_id: str) -> JID:
        """The XMPP account of one of the gateway's users (what ``serves`` accepts)."""
        phone = user_id.split("@")[0]
        return JID(tuple=(self._local_of.get(phone, phone), self.domain, None))

    def contact_jid(self, user_id: str) -> JID:
        """Any federation user as XMPP users see it: a JID on the component (the gateway
        speaks only from its own domain, so a user of this node too)."""
        return JID(tuple=(escape(user_id), self.component, None))

    def user_of(self, jid: JID) -> str | None:
        """The federation user a component JID stands for (None: not a user's JID)."""
        if jid.host != self.component or not jid.user:
            return None
        user_id = unescape(jid.user)
        parts = split_id(user_id)
        if parts is None or not PHONE.match(parts[0]):
            return None
        return user_id

    def room_jid(self, group_id: str, alias: str | None = None, nick: str | None = None
                 ) -> JID:
        """A group's room: its name made from XMPP (``alias``), else its escaped ID."""
        return JID(tuple=(alias or escape(group_id), self.component, nick))


def parse_jid(text: str | None) -> JID | None:
    try:
        return JID(text) if text else None
    except InvalidFormat:
        return None
