"""The XMPP gateway (docs/bridge.md): the users of an ordinary XMPP server are this node's
users, and talk with every user of every T/CIIA server through the same handlers as the
client API.

From XMPP (a stanza of one of the XMPP server's users; one user's stanzas handled in the order
they came):

- presence subscribe / subscribed / unsubscribed / unsubscribe to a contact ⇄ friend request,
  acceptance, refusal, deletion; a probe is answered for friends;
- a chat message ⇄ a text message; an out-of-band link (XEP-0066, as after an XEP-0363
  upload) to an allowed upload service ⇄ an image or file message; a retraction (XEP-0424)
  of one's own message ⇄ a recall;
- joining a room ⇄ being in the group (accepting a pending invitation; a new room name makes
  a new group); a groupchat message ⇄ a group message; a mediated invitation ⇄ a group
  invitation; a decline ⇄ refusing one.

To XMPP: the events of the gateway's users, in seq order, as stanzas; the cursor moves past
them only when the XMPP server has answered a ping sent after them on the same stream, so a
restart of the XMPP server (or of imfed) loses nothing: what was not acknowledged is sent
again (a client may see a repeat, with the same stanza id)."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from urllib.parse import unquote, urlsplit

import treq
from twisted.application.service import MultiService
from twisted.internet.defer import DeferredLock, ensureDeferred
from twisted.logger import Logger
from twisted.words.protocols.jabber import error as jerror
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from ...config import XmppConfig
from ...metrics import XMPP_BACKLOG, XMPP_CONNECTED, XMPP_STANZAS
from ...wire.errors import (ApiError, BadRequest, Conflict, Forbidden, NotFound, TooLarge, TooMany,
                            Unauthorized, Unavailable)
from ...wire.message_info import split_id
from ...wire.records import OperType, UserType
from ..services.feeds import EventFeed
from ..handlers.bridge import BridgeAccess
from ..store.unit import NodeStore
from . import state
from .jids import Mapping, parse_jid, unescape
from .link import NS_PING, ComponentLink, Offline

__all__ = ["Gateway"]

log = Logger()

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_OOB = "jabber:x:oob"
NS_RETRACT_1 = "urn:xmpp:message-retract:1"
NS_RETRACT_0 = "urn:xmpp:message-retract:0"
NS_FASTEN = "urn:xmpp:fasten:0"
NS_FALLBACK = "urn:xmpp:fallback:0"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_REACTIONS = "urn:xmpp:reactions:0"
NS_RECEIPTS = "urn:xmpp:receipts"
NS_NICK = "http://jabber.org/protocol/nick"
NS_VCARD = "vcard-temp"
NS_SEARCH = "jabber:iq:search"
NS_MARKERS = "urn:xmpp:chat-markers:0"
ENCRYPTED = (("eu.siacs.conversations.axolotl", "encrypted"), ("urn:xmpp:omemo:2", "encrypted"),
             ("urn:xmpp:openpgp:0", "openpgp"), ("jabber:x:encrypted", "x"))
"""End-to-end encrypted payloads (OMEMO, both versions; XEP-0373/0027 OpenPGP): the
federation carries no such thing, and their fallback body ("I sent you an OMEMO encrypted
message") is not what the sender meant to say."""

QUEUE_LIMIT = 2000
QUEUE_BYTES = 8 << 20
TOTAL_BYTES = 64 << 20
"""What waits to be handled: a sender's stanzas are handled one after another, so a burst
(a client flushing what it kept while offline) waits its turn rather than being refused; up
to QUEUE_LIMIT stanzas and QUEUE_BYTES of one sender, TOTAL_BYTES of all senders together.
Past those, resource-constraint."""

_ERRCODES = {"not_occupant": "not-acceptable", "encrypted_payload": "not-acceptable",
             "not_carried": "feature-not-implemented"}
"""Errors that have a condition of their own, whatever their HTTP kind."""

_CONDITIONS = [(BadRequest, "bad-request"), (Unauthorized, "not-authorized"),
               (Forbidden, "forbidden"), (NotFound, "item-not-found"),
               (Conflict, "conflict"), (TooLarge, "not-acceptable"),
               (TooMany, "resource-constraint"), (Unavailable, "remote-server-timeout")]
_AFFILIATION = {int(UserType.OWNER): "owner", int(UserType.ADMIN): "admin",
                int(UserType.MEMBER): "member"}


def _child(element: domish.Element, uri: str, name: str) -> domish.Element | None:
    for c in element.elements(uri, name):
        return c
    return None


def _text(element: domish.Element | None) -> str:
    return str(element) if element is not None else ""


HISTORY = 20
"""The room's newest messages a joining occupant is sent, unless its join asks for fewer
(``<history maxstanzas="N"/>``, 0 for none)."""


def _history_wanted(presence: domish.Element) -> int:
    x = _child(presence, NS_MUC, "x")
    history = _child(x, NS_MUC, "history") if x is not None else None
    wanted = history.getAttribute("maxstanzas") if history is not None else None
    if wanted is not None and wanted.isdigit():
        return min(int(wanted), HISTORY)
    return HISTORY


def _name(info) -> str:
    """A userInfo's name, or ""."""
    name = info.get("name") if isinstance(info, dict) else None
    return name.strip()[:64] if isinstance(name, str) else ""


def _retraction(to: str, kind_type: str, stanza_id: str) -> domish.Element:
    """A retraction (XEP-0424) of the message known by ``stanza_id``, with the fallback body
    a client that knows no retraction shows."""
    m = domish.Element((None, "message"))
    m["to"], m["type"] = to, kind_type
    m.addElement((NS_RETRACT_1, "retract"))["id"] = stanza_id
    m.addElement((NS_FALLBACK, "fallback"))["for"] = NS_RETRACT_1
    m.addElement("body", content="(a message was recalled)")
    return m


def _stamp(ms: int) -> str:
    """XEP-0082's date-time, UTC."""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def error_reply(element: domish.Element, condition: str, text: str) -> domish.Element:
    """The error answering ``element``: its kind and id, back to the full JID that sent it,
    with the condition and a short text, and none of its payload (RFC 6120 8.3.1 lets a reply
    carry it; copied back, a large message would overrun the XMPP server's limit on what a
    component sends, and it closes the stream)."""
    reply = domish.Element((None, element.name))
    reply["type"] = "error"
    for ours, theirs in (("id", "id"), ("to", "from"), ("from", "to")):
        if element.hasAttribute(theirs):
            reply[ours] = element[theirs]
    reply.addChild(jerror.StanzaError(condition, text=text[:500]).getElement())
    return reply


class Gateway(MultiService):
    def __init__(self, config: XmppConfig, handlers, store: NodeStore, server_id: str,
                 clock) -> None:
        super().__init__()
        self.config, self.h, self.store, self.clock = config, handlers, store, clock
        self.server_id = server_id
        self.mapping = Mapping(config, server_id)
        self.access = BridgeAccess(store, config.owns, server_id)
        self.link = ComponentLink(config, clock, self._received, self._online, self._offline)
        self.link.setServiceParent(self)
        self.feed = _Feed(self)
        self.feed.setServiceParent(self)
        self.lock = DeferredLock()
        self._queues: dict[str, list[tuple[domish.Element, int]]] = {}
        self._queued_bytes: dict[str, int] = {}
        self._total_bytes = 0
        self._users: dict[str, object] = {}
        self._rooms: dict[str, str | None] = {}  # group ID -> the room's name made from XMPP
        # group ID -> {occupant's full JID: (userID, nick)}: who is in which room now.
        self.occupants: dict[str, dict[str, tuple[str, str]]] = {}
        self._names: dict[str, dict[str, str]] = {}  # group: member: nick (from names)
        self._joining: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.user_source = XmppUsers(self)

    # -- the stream --

    def _online(self) -> None:
        self.feed.wake()

    def _offline(self) -> None:
        # Rooms are left when the stream ends (the XMPP server tells its clients so); they
        # join again.
        self.occupants.clear()
        self._joining.clear()

    def wake(self, user_ids=()) -> None:
        self.feed.wake()

    def send(self, element: domish.Element) -> None:
        self.link.send(element)
        XMPP_STANZAS.labels(self.server_id, "out").inc()

    async def health(self) -> dict:
        XMPP_CONNECTED.labels(self.server_id).set(1 if self.link.online else 0)
        return {"connected": self.link.online, "backlog": await self.backlog(),
                "error": self.link.last_error}

    async def backlog(self) -> int:
        n = await self.feed.backlog()
        XMPP_BACKLOG.labels(self.server_id).set(n)
        return n

    # -- stanzas from the XMPP server --

    def _received(self, element: domish.Element) -> None:
        XMPP_STANZAS.labels(self.server_id, "in").inc()
        key = element.getAttribute("from", "")
        queue = self._queues.get(key)
        size = len(element.toXml())
        if queue is not None and (len(queue) >= QUEUE_LIMIT or self._queued_bytes[key] + size >
                                  QUEUE_BYTES or self._total_bytes + size > TOTAL_BYTES):
            self._refuse(element, "resource-constraint", "too many stanzas waiting")
            return
        self._queued_bytes[key] = self._queued_bytes.get(key, 0) + size
        self._total_bytes += size
        if queue is None:
            self._queues[key] = [(element, size)]
            ensureDeferred(self._drain(key))
        else:
            queue.append((element, size))

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        while queue:
            element, size = queue[0]
            try:
                await self._handle(element)
            except ApiError as e:
                condition = _ERRCODES.get(e.errcode) or next(
                    (c for kind, c in _CONDITIONS if isinstance(e, kind)),
                    "undefined-condition")
                self._refuse(element, condition, e.message)
            except Offline:
                pass  # the stream went away; the client will send again
            except Exception:
                log.failure("XMPP gateway: handling a stanza from {who} failed", who=key)
                self._refuse(element, "internal-server-error", "the gateway failed")
            queue.pop(0)
            self._queued_bytes[key] -= size
            self._total_bytes -= size
        del self._queues[key], self._queued_bytes[key]

    def _refuse(self, element: domish.Element, condition: str, text: str) -> None:
        if element.getAttribute("type") in ("error", "result"):
            return
        try:
            self.send(error_reply(element, condition, text))
        except Offline:
            pass

    async def _handle(self, element: domish.Element) -> None:
        frm, to = parse_jid(element.getAttribute("from")), parse_jid(
            element.getAttribute("to"))
        kind, kind_type = element.name, element.getAttribute("type")
        if frm is None or to is None or kind_type == "error":
            return
        if kind == "iq":
            return await self._iq(element, frm, to)
        user_id = self.mapping.local_user(frm)
        if user_id is None:
            raise Forbidden("%s is not one of this gateway's users" % frm.userhost(),
                            "outside_namespace")
        user = await self._user(user_id)
        if kind == "presence":
            if to.resource:
                await self._room_presence(element, user, frm, to, kind_type)
            elif self.mapping.user_of(to) is not None:
                await self._contact_presence(element, user, to, kind_type)
        elif kind == "message":
            if kind_type == "groupchat" or _child(element, NS_MUC_USER, "x") is not None:
                await self._room_message(element, user, frm, to, kind_type)
            else:
                await self._chat(element, user, to)

    async def _user(self, user_id: str):
        """One of the gateway's users, made here the first time (named by its localpart)."""
        user = self._users.get(user_id)
        if user is None:
            user, _ = await self.access.provision(user_id.split("@")[0],
                                                  self.mapping.user_jid(user_id).user)
            self._users[user_id] = user
        return user

    async def _iq(self, element: domish.Element, frm: JID, to: JID) -> None:
        if element.getAttribute("type") not in ("get", "set"):
            return
        query = next(element.elements(), None)
        uri = query.uri if query is not None else None
        answer = domish.Element((None, "iq"))
        answer["type"], answer["id"] = "result", element.getAttribute("id", "")
        answer["to"], answer["from"] = element["from"], element["to"]
        if uri == NS_MUC_OWNER and element["type"] == "set" and \
                _child(query, NS_MUC_OWNER, "destroy") is not None:
            await self._destroy_room(frm, to)  # errors answered by the caller
        elif uri == NS_PING or uri == NS_MUC_OWNER:
            pass  # a ping; a room's configuration (rooms need none: taken as it is)
        elif uri == NS_VCARD and element["type"] == "get" and to.user:
            if self.mapping.local_user(frm) is None:
                raise Forbidden("only this gateway's users see its users' cards",
                                "outside_namespace")
            answer.addChild(await self._vcard(to))
        elif uri == NS_SEARCH and not to.user:
            answer.addChild(await self._search(element, frm, query))
        elif uri == NS_DISCO_INFO and element["type"] == "get":
            q = answer.addElement((NS_DISCO_INFO, "query"))
            if to.user and self.mapping.user_of(to) is None:
                identity = q.addElement("identity")
                identity["category"], identity["type"] = "conference", "text"
                for feature in (NS_MUC, "muc_persistent", "muc_membersonly",
                                "muc_nonanonymous"):
                    q.addElement("feature")["var"] = feature
            elif not to.user:
                identity = q.addElement("identity")
                identity["category"], identity["type"] = "gateway", "t-ciia"
                identity["name"] = "T/CIIA federation (%s)" % self.server_id
                for feature in (NS_DISCO_INFO, NS_MUC, NS_PING, NS_RETRACT_1, NS_OOB,
                                NS_SEARCH, NS_RECEIPTS, NS_MARKERS):
                    q.addElement("feature")["var"] = feature
            else:
                identity = q.addElement("identity")
                identity["category"], identity["type"] = "account", "registered"
                q.addElement("feature")["var"] = NS_VCARD
        else:
            return self._refuse(element, "service-unavailable", "not served here")
        self.send(answer)

    async def _vcard(self, to: JID) -> domish.Element:
        """A federation user's vCard (XEP-0054) from their userInfo: name, phone, portrait."""
        uid = self.mapping.user_of(to)
        if uid is None:
            raise NotFound("%s is not a user's address here" % to.full(), "unknown_user")
        info, _ = await self.h.users.info(uid)
        card = domish.Element((NS_VCARD, "vCard"))
        name = _name(info)
        if name:
            card.addElement("FN", content=name)
            card.addElement("NICKNAME", content=name)
        if info.get("phoneNumber"):
            card.addElement("TEL").addElement("NUMBER", content=info["phoneNumber"])
        if info.get("portrait"):
            card.addElement("PHOTO").addElement("EXTVAL", content=info["portrait"])
        return card

    async def _search(self, element: domish.Element, frm: JID,
                      query: domish.Element) -> domish.Element:
        """jabber:iq:search (XEP-0055) on the component: the form (a name or phone number),
        or the federation users it finds, each a JID ready to add to the roster."""
        out = domish.Element((NS_SEARCH, "query"))
        if element["type"] == "get":
            out.addElement("instructions", content="A name or a phone number: users of every "
                           "server of the federation this one may reach.")
            out.addElement("nick")
            return out
        if self.mapping.local_user(frm) is None:
            raise Forbidden("only this gateway's users search", "outside_namespace")
        text = " ".join(_text(_child(query, NS_SEARCH, f)).strip()
                        for f in ("nick", "first", "last", "email")).strip()
        if not text:
            raise BadRequest("say whom to look for: nick", "bad_query")
        found, _ = await self.h.users.search(text[:64])
        for info in found[:50]:
            if not isinstance(info.get("userID"), str):
                continue
            item = out.addElement("item")
            item["jid"] = self.mapping.contact_jid(info["userID"]).full()
            for field in ("first", "nick"):
                item.addElement(field, content=_name(info))
            item.addElement("last", content="")
            item.addElement("email", content="")
        return out

    async def _destroy_room(self, frm: JID, to: JID) -> None:
        """A room destroyed (XEP-0045 10.9): the group dissolved, by its owner, on the server
        that masters it; anything else an error that says why."""
        user_id = self.mapping.local_user(frm)
        if user_id is None:
            raise Forbidden("not one of this gateway's users", "outside_namespace")
        group_id = await self._group_of_room(to.user) if to.user else None
        if group_id is None:
            raise NotFound("no group %s" % to.userhost(), "unknown_group")
        await self.h.groups.dissolve(await self._user(user_id), group_id)

    # -- friends --

    async def _contact_presence(self, element, user, to: JID, kind_type: str | None) -> None:
        contact = self.mapping.user_of(to)
        if kind_type == "probe":
            if await self._friends(user, contact):
                self._presence(contact, user.user_id, None)
            return
        if kind_type not in ("subscribe", "subscribed", "unsubscribe", "unsubscribed"):
            return  # directed availability: nothing to carry
        incoming = await self._request_from(user, contact)
        if kind_type == "subscribe":
            if incoming is not None:
                await self.h.friends.answer(user, incoming, True)
            elif await self._friends(user, contact):
                self._presence(contact, user.user_id, "subscribed")
            else:
                await self.h.friends.request(user, contact, _text(element.status)[:100])
        elif kind_type == "subscribed":
            if incoming is not None:
                await self.h.friends.answer(user, incoming, True)
        elif kind_type == "unsubscribed" and incoming is not None:
            await self.h.friends.answer(user, incoming, False)
        elif await self._friends(user, contact):
            await self.h.friends.delete(user, contact)

    async def _request_from(self, user, contact: str) -> str | None:
        for r in await self.h.friends.requests(user):
            if r["from"] == contact and r["direction"] == "incoming":
                return r["requestID"]
        return None

    async def _friends(self, user, contact: str) -> bool:
        return any(f["userID"] == contact for f in await self.h.friends.list(user))

    def _presence(self, from_user: str, to_user: str, kind_type: str | None,
                  status: str = "", nick: str = "") -> None:
        p = domish.Element((None, "presence"))
        p["from"] = self.mapping.contact_jid(from_user).full()
        p["to"] = self.mapping.user_jid(to_user).full()
        if kind_type:
            p["type"] = kind_type
        if status:
            p.addElement("status", content=status)
        if nick:  # XEP-0172: the name a client puts on the roster item it makes
            p.addElement((NS_NICK, "nick"), content=nick)
        self.send(p)

    # -- one-to-one messages --

    async def _chat(self, element, user, to: JID) -> None:
        contact = self.mapping.user_of(to)
        if contact is None:
            raise NotFound("%s is not a user's address here" % to.full(), "unknown_user")
        retracted = self._retracted(element)
        if retracted is not None:
            message_id = await self.store.read(state.message_of_stanza, user.user_id,
                                               retracted)
            await self.h.messages.recall(user, message_id or retracted)
            return
        kind, content = await self._content(element, user)
        if kind is None:
            return  # a chat state, a receipt: nothing to carry
        async with self.lock:
            message = await self.h.messages.send(user, contact, kind, content)
            await self._remember(element, user, message.info.message_id)
        if message.state != "queued":  # taken by this server: its recipient's
            await self._receipt(user.user_id, message.info.message_id, contact,
                                self.mapping.user_jid(user.user_id).full())

    def _retracted(self, element) -> str | None:
        retract = _child(element, NS_RETRACT_1, "retract")
        if retract is not None:
            return retract.getAttribute("id")
        apply_to = _child(element, NS_FASTEN, "apply-to")
        if apply_to is not None and _child(apply_to, NS_RETRACT_0, "retract") is not None:
            return apply_to.getAttribute("id")
        return None

    async def _remember(self, element, user, message_id: str) -> None:
        ids = {element.getAttribute("id")}
        origin = _child(element, NS_SID, "origin-id")
        if origin is not None:
            ids.add(origin.getAttribute("id"))
        wants = (state.RECEIPT if _child(element, NS_RECEIPTS, "request") is not None else 0) | \
            (state.MARKER if _child(element, NS_MARKERS, "markable") is not None else 0)
        for stanza_id in ids - {None, ""}:
            await self.store.run(state.remember_id, user.user_id, stanza_id, message_id,
                                 self.store.now_ms(), element.getAttribute("from", ""), wants)

    async def _content(self, element, user) -> tuple[str | None, dict]:
        """(messageType, content) of a message stanza: a file when it links an allowed
        upload, else its body as text; (None, {}) without either."""
        if any(_child(element, ns, name) is not None for ns, name in ENCRYPTED):
            raise BadRequest("an end-to-end encrypted message cannot be carried to the "
                             "federation (it knows no OMEMO or OpenPGP); send it unencrypted",
                             "encrypted_payload")
        if _child(element, NS_REACTIONS, "reactions") is not None:
            raise BadRequest("reactions are not carried to the federation (the standard has "
                             "none)", "not_carried")
        body = _text(element.body)
        oob = _child(element, NS_OOB, "x")
        url = _text(_child(oob, NS_OOB, "url")).strip() if oob is not None else ""
        if url and any(url.startswith(prefix) for prefix in self.config.fetch_from):
            return await self._upload_from(url, user)
        if body:
            return "text", {"message": body}
        if url:
            return "text", {"message": url}
        return None, {}

    async def _upload_from(self, url: str, user) -> tuple[str, dict]:
        """An XMPP user's upload (XEP-0363), fetched and stored as that user's file."""
        limit = self.h.files.max_file_bytes
        response = await treq.get(url, timeout=60, persistent=False)
        if response.code != 200:
            await treq.content(response)
            raise Unavailable("fetching %s answered HTTP %d" % (url, response.code),
                              "upload_unavailable")
        length = response.length
        if isinstance(length, int) and length > limit:
            response.original.deliverBody(_Discard())  # type: ignore[call-arg,misc]  # zope method
            raise TooLarge("file over %d bytes" % limit, "too_large")
        with tempfile.TemporaryFile() as spool:
            written = [0]

            def collect(data: bytes) -> None:
                written[0] += len(data)
                if written[0] > limit:
                    raise TooLarge("file over %d bytes" % limit, "too_large")
                spool.write(data)

            await treq.collect(response, collect)
            spool.seek(0)
            name = unquote(os.path.basename(urlsplit(url).path)) or "file"
            name = name.replace("/", "_").replace("\x00", "")[:255]
            stored = await self.h.files.upload(user, name, spool)
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        kind = "image" if kind.startswith(b"image/") else "file"
        return kind, {"fileID": stored.file_id, "name": stored.name}

    # -- groups --

    async def _group_of_room(self, room: str) -> str | None:
        group_id = await self.store.read(state.group_of_room, room)
        if group_id is None and split_id(unescape(room)) is not None:
            group_id = unescape(room)
        return group_id

    async def _room_jid(self, group_id: str, nick: str | None = None) -> JID:
        if group_id not in self._rooms:
            self._rooms[group_id] = await self.store.read(state.room_of_group, group_id)
        return self.mapping.room_jid(group_id, self._rooms[group_id], nick)

    async def _member_of(self, user, group_id: str | None) -> bool:
        return group_id is not None and any(
            g["groupInfo"]["groupID"] == group_id for g in await self.h.groups.mine(user))

    async def _room_presence(self, element, user, frm: JID, to: JID,
                             kind_type: str | None) -> None:
        group_id = await self._group_of_room(to.user)
        if kind_type == "unavailable":
            if group_id is not None and self.occupants.get(group_id, {}).pop(frm.full(),
                                                                            None):
                p = domish.Element((None, "presence"))
                p["from"], p["to"], p["type"] = to.full(), frm.full(), "unavailable"
                self._item(p, "member", ("110",))
                self.send(p)
            return
        if kind_type is not None:
            return
        created = False
        if not await self._member_of(user, group_id):
            invitation = await self._invitation(user, group_id)
            if invitation is not None:
                await self.h.groups.answer(user, invitation, True)
                if not await self._member_of(user, group_id):
                    # The master takes the answer; group_joined says when it has.
                    self._joining.setdefault((user.user_id, group_id), []).append(
                        (frm.full(), to.resource))
                    return
            elif group_id is None and "\\" not in to.user:
                group = await self.h.groups.create(user, to.user, "")
                await self.store.run(state.name_room, to.user, group.group_id)
                self._rooms[group.group_id] = to.user.lower()
                group_id, created = group.group_id, True
            else:
                raise NotFound("no group %s for you" % to.userhost(), "unknown_group")
        await self._enter(user, group_id, frm.full(), to.resource, created,
                          _history_wanted(element))

    async def _invitation(self, user, group_id: str | None) -> str | None:
        for i in await self.h.groups.invitations(user):
            if i["groupInfo"]["groupID"] == group_id:
                return i["invitationID"]
        return None

    def _nick(self, group_id: str, member_id: str) -> str:
        """A member's nick in the room: the one an XMPP occupant chose, else the member's
        name made unique in the room (their ID when no name is known)."""
        for uid, nick in self.occupants.get(group_id, {}).values():
            if uid == member_id:
                return nick
        return self._names.get(group_id, {}).get(member_id, member_id)

    def _learn_names(self, group_id: str, infos) -> None:
        """Nicks from members' userInfo: the name, with the ID after it when another member
        of the room has that name (or an occupant took it as a nick)."""
        names = self._names.setdefault(group_id, {})
        taken = {nick for _, nick in self.occupants.get(group_id, {}).values()}
        taken.update(names.values())
        for info in infos:
            uid = info.get("userID") if isinstance(info, dict) else None
            name = _name(info)
            if not isinstance(uid, str) or not name or uid in names:
                continue
            nick = name if name not in taken else "%s (%s)" % (name, uid)
            names[uid] = nick
            taken.add(nick)

    def _item(self, presence, affiliation: str, codes=(), destroy: bool = False) -> None:
        x = presence.addElement((NS_MUC_USER, "x"))
        item = x.addElement("item")
        item["affiliation"] = affiliation
        item["role"] = "participant" if affiliation != "none" else "none"
        if destroy:
            x.addElement("destroy")
        for code in codes:
            x.addElement("status")["code"] = code

    async def _enter(self, user, group_id: str, full: str, nick: str, created: bool,
                     history: int = HISTORY) -> None:
        """The occupant is in the room: the members' presence, its own (status 110), the
        newest ``history`` messages of the group (delayed, XEP-0045 7.2.15), the group's name
        as the subject."""
        info = await self.h.groups.info(user, group_id)
        self.occupants.setdefault(group_id, {})[full] = (user.user_id, nick)
        self._learn_names(group_id, [m.get("userInfo") for m in info.get("members") or []
                                     if isinstance(m, dict)])
        mine = "member"
        for m in info.get("members") or []:
            member_id = (m.get("userInfo") or {}).get("userID")
            affiliation = _AFFILIATION.get(m.get("userType"), "member")
            if member_id == user.user_id:
                mine = affiliation
                continue
            p = domish.Element((None, "presence"))
            p["from"] = (await self._room_jid(group_id, self._nick(group_id, member_id))).full()
            p["to"] = full
            self._item(p, affiliation)
            self.send(p)
        p = domish.Element((None, "presence"))
        p["from"], p["to"] = (await self._room_jid(group_id, nick)).full(), full
        self._item(p, mine, ("110", "100") + (("201",) if created else ()))
        self.send(p)
        room = (await self._room_jid(group_id)).full()
        if history and not created:
            for kept in await self.h.groups.recent(user, group_id, history):
                if kept["recalled"]:
                    continue
                message = kept["messageInfo"]
                m = self._message(message, full, "groupchat", message["messageID"],
                                  user.user_id)
                m["from"] = (await self._room_jid(
                    group_id, self._nick(group_id, message["senderID"]))).full()
                delay = m.addElement((NS_DELAY, "delay"))
                delay["from"], delay["stamp"] = room, _stamp(kept["createTime"])
                self.send(m)
        subject = domish.Element((None, "message"))
        subject["from"], subject["to"], subject["type"] = room, full, "groupchat"
        subject.addElement("subject", content=(info.get("groupInfo") or {}).get(
            "groupName", ""))
        self.send(subject)

    async def _room_message(self, element, user, frm: JID, to: JID,
                            kind_type: str | None) -> None:
        group_id = await self._group_of_room(to.user) if to.user else None
        if group_id is None:
            raise NotFound("no group %s" % to.userhost(), "unknown_group")
        x = _child(element, NS_MUC_USER, "x")
        if x is not None and kind_type != "groupchat":
            invited = [parse_jid(i.getAttribute("to")) for i in x.elements(NS_MUC_USER,
                                                                          "invite")]
            targets = [self.mapping.user_of(j) or self.mapping.local_user(j)
                       for j in invited if j is not None]
            if None in targets or len(targets) != len(invited):
                raise BadRequest("an invitation names someone who is not a user",
                                 "bad_userID")
            if targets:
                await self.h.groups.invite(user, group_id, targets)
            if _child(x, NS_MUC_USER, "decline") is not None:
                invitation = await self._invitation(user, group_id)
                if invitation is not None:
                    await self.h.groups.answer(user, invitation, False)
            return
        if frm.full() not in self.occupants.get(group_id, {}):
            raise Forbidden("join the room first", "not_occupant")
        retracted = self._retracted(element)
        if retracted is not None:
            # A recall of the group's (never its fallback body posted to everyone): by the
            # master's rule, one's own message within the window (docs/groups.md).
            message_id = await self.store.read(state.message_of_stanza, user.user_id,
                                               retracted)
            await self.h.groups.recall(user, group_id, message_id or retracted)
            return
        subject = element.subject
        if subject is not None and element.body is None:
            name = _text(subject).strip()
            if not 1 <= len(name) <= 64:
                raise BadRequest("a group's name is 1-64 characters", "bad_groupName")
            await self.h.groups.update(user, group_id, name=name)
            return
        kind, content = await self._content(element, user)
        if kind is None:
            return
        async with self.lock:
            message_id = await self.h.groups.send(user, group_id, kind, content)
            await self._remember(element, user, message_id)

    # -- events to the XMPP server --

    async def deliver(self, user_id: str, kind: str, data: dict) -> None:
        """One event of one of the gateway's users, as the stanzas that show it."""
        to = self.mapping.user_jid(user_id).full()
        if kind == "message":
            info = data["messageInfo"]
            if info["senderID"] != user_id:
                m = self._message(info, to, "chat", info["messageID"], user_id)
                m["from"] = self.mapping.contact_jid(info["senderID"]).full()
                self.send(m)
        elif kind == "recall" and data["senderID"] != user_id:
            m = _retraction(to, "chat", data["messageID"])
            m["from"] = self.mapping.contact_jid(data["senderID"]).full()
            m.addElement((NS_HINTS, "store"))
            self.send(m)
        elif kind == "delivery" and data.get("state") == "sent":
            message = await self.h.messages.get(await self._user(user_id),
                                                data["messageID"])
            await self._receipt(user_id, message.info.message_id, message.info.recv_id, to)
        elif kind == "delivery" and data.get("state") == "failed":
            message = await self.h.messages.get(await self._user(user_id),
                                                data["messageID"])
            sent = await self.store.read(state.sent_by, user_id, data["messageID"])
            stanza_id, sender = (sent[0], sent[1]) if sent else (None, "")
            m = domish.Element((None, "message"))
            m["from"] = self.mapping.contact_jid(message.info.recv_id).full()
            # To the resource that sent it: a server drops a message error sent to a bare JID.
            m["to"], m["type"], m["id"] = sender or to, "error", stanza_id or data["messageID"]
            err = jerror.StanzaError("remote-server-not-found", text=data.get("error") or
                                     "not delivered")
            m.addChild(err.getElement())
            self.send(m)
        elif kind == "friend_request":
            self._presence(data["from"], user_id, "subscribe", data.get("remark") or "",
                           _name(data.get("fromInfo")))
        elif kind == "friend_answer":
            if data.get("agree"):
                nick = _name(data.get("userInfo"))
                self._presence(data["userID"], user_id, "subscribed", nick=nick)
                self._presence(data["userID"], user_id, "subscribe", nick=nick)
            else:
                self._presence(data["userID"], user_id, "unsubscribed")
        elif kind == "friend_deleted":
            self._presence(data["userID"], user_id, "unsubscribe")
            self._presence(data["userID"], user_id, "unsubscribed")
        elif kind == "group_invitation":
            group_id = data["groupInfo"]["groupID"]
            m = domish.Element((None, "message"))
            m["from"], m["to"] = (await self._room_jid(group_id)).full(), to
            invite = m.addElement((NS_MUC_USER, "x")).addElement("invite")
            inviter = (data.get("inviter") or {}).get("userID")
            if inviter:
                invite["from"] = self.mapping.contact_jid(inviter).full()
            invite.addElement("reason", content=data["groupInfo"].get("groupName", ""))
            self.send(m)
        elif kind == "group_joined":
            user = await self._user(user_id)
            for full, nick in self._joining.pop((user_id, data["groupID"]), []):
                await self._enter(user, data["groupID"], full, nick, False)
        elif kind == "group_message":
            await self._group_message(user_id, data)
        elif kind == "group_recall":
            await self._group_recall(user_id, data)
        elif kind == "group_notify":
            await self._group_notify(user_id, data)

    async def _receipt(self, user_id: str, message_id: str, recipient: str, bare: str) -> None:
        """What the client asked to be told once the recipient's server has the message (its
        ``sent`` state; for a recipient of this server, at once): a XEP-0184 receipt and/or a
        XEP-0333 ``received`` marker, to the resource that sent it.  That the recipient's
        server took it, not that a person read it (docs/bridge.md)."""
        sent = await self.store.read(state.sent_by, user_id, message_id)
        if not sent or not sent[2]:
            return
        stanza_id, jid, wants = sent
        m = domish.Element((None, "message"))
        m["from"] = self.mapping.contact_jid(recipient).full()
        m["to"], m["id"] = jid or bare, "receipt-" + stanza_id
        if wants & state.RECEIPT:
            m.addElement((NS_RECEIPTS, "received"))["id"] = stanza_id
        if wants & state.MARKER:
            m.addElement((NS_MARKERS, "received"))["id"] = stanza_id
        m.addElement((NS_HINTS, "store"))
        self.send(m)

    def _message(self, info: dict, to: str, kind_type: str, stanza_id: str,
                 user_id: str) -> domish.Element:
        m = domish.Element((None, "message"))
        m["to"], m["type"], m["id"] = to, kind_type, stanza_id
        content = info.get("content") or {}
        if info["messageType"] == "text":
            m.addElement("body", content=content.get("message", ""))
        else:
            url = self.config.file_url + self.h.links.path(content["fileID"], user_id)
            m.addElement("body", content=url)
            x = m.addElement((NS_OOB, "x"))
            x.addElement("url", content=url)
            x.addElement("desc", content="%s (%d bytes)" % (content.get("name") or "file",
                                                            content.get("size", 0)))
        sid = m.addElement((NS_SID, "stanza-id"))
        sid["id"], sid["by"] = info["messageID"], self.mapping.component
        return m

    async def _to_occupants(self, user_id: str, group_id: str, sender: str, message_id: str,
                            build) -> None:
        """``build(full JID, stanza id)``, a stanza about a room message, to each of the
        user's occupants of the room, from the sender's occupant JID, naming the message by
        the id the user knows it by (for the user's own message, its client's)."""
        stanza_id = message_id
        if sender == user_id:
            stanza_id = await self.store.read(state.stanza_of_message, user_id,
                                              message_id) or stanza_id
        room = await self._room_jid(group_id, self._nick(group_id, sender))
        for full, (uid, _) in list(self.occupants.get(group_id, {}).items()):
            if uid == user_id:
                m = build(full, stanza_id)
                m["from"] = room.full()
                self.send(m)

    async def _group_message(self, user_id: str, data: dict) -> None:
        info = data["messageInfo"]
        await self._to_occupants(
            user_id, info["recvID"], info["senderID"], info["messageID"],
            lambda full, stanza_id: self._message(info, full, "groupchat", stanza_id, user_id))

    async def _group_recall(self, user_id: str, data: dict) -> None:
        """A room message recalled: a retraction (XEP-0424) to the user's occupants."""
        await self._to_occupants(
            user_id, data["groupID"], data["senderID"], data["messageID"],
            lambda full, stanza_id: _retraction(full, "groupchat", stanza_id))

    async def _group_notify(self, user_id: str, data: dict) -> None:
        group_id, oper = data["groupID"], data.get("operType")
        if oper == OperType.ADD:
            self._learn_names(group_id, data.get("users") or [])
        mine = [full for full, (uid, _) in self.occupants.get(group_id, {}).items()
                if uid == user_id]
        affected = [u.get("userID") for u in data.get("users") or [] if isinstance(u, dict)]
        for full in mine:
            if oper == OperType.UPDATE:
                m = domish.Element((None, "message"))
                m["from"], m["to"], m["type"] = (await self._room_jid(group_id)).full(), \
                    full, "groupchat"
                m.addElement("subject", content=(data.get("groupInfo") or {}).get(
                    "groupName", ""))
                self.send(m)
                continue
            for member in affected if oper != OperType.DISSOLVE else [user_id]:
                p = domish.Element((None, "presence"))
                p["from"] = (await self._room_jid(group_id,
                                                  self._nick(group_id, member))).full()
                p["to"] = full
                if oper == OperType.ADD:
                    self._item(p, "member")
                elif oper in (OperType.REMOVE, OperType.DISSOLVE):
                    p["type"] = "unavailable"
                    self._item(p, "none", ("110", "321") if member == user_id else (),
                               destroy=oper == OperType.DISSOLVE)
                else:
                    continue
                self.send(p)
        if oper == OperType.DISSOLVE or (oper == OperType.REMOVE and user_id in affected):
            for full in mine:
                self.occupants.get(group_id, {}).pop(full, None)


class XmppUsers:
    """The XMPP server's users as a source of users (handlers/sources.py): every phone number
    of the namespace is taken as an account when named, for XMPP servers do not say which
    accounts exist (a message to one that does not is bounced by the XMPP server)."""

    name, authoritative = "the XMPP server", False

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def owns(self, phone: str) -> bool:
        return self.gw.config.owns(phone)

    async def lookup(self, phone: str):
        user_id = "%s@%s" % (phone, self.gw.server_id)
        return await self.gw._user(user_id)


class _Feed(EventFeed):
    """The gateway's users' events, in seq order, to the XMPP server: a batch is confirmed by
    the server's answer to a ping sent after it on the same stream."""

    name, batch = "xmpp", 200

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway.store, 1.0)
        self.gw = gateway

    def ready(self) -> bool:
        return self.gw.link.online

    def owns(self, user_id: str) -> bool:
        return self.gw.mapping.serves(user_id)

    async def hand_over(self, cursor: int, last: int, rows: list) -> bool:
        gw = self.gw
        async with gw.lock:
            for seq, user_id, kind, payload in rows:
                try:
                    await gw.deliver(user_id, kind, json.loads(payload))
                except Offline:
                    return False  # sent again from the cursor once connected
                except Exception:
                    # One event that cannot be shown (a group whose master does not answer,
                    # say) does not hold up the others.
                    log.failure("XMPP gateway: event {seq} ({kind}) of {user} not shown",
                                seq=seq, kind=kind, user=user_id)
        try:
            await gw.link.barrier()
        except Exception as e:
            log.info("XMPP gateway: the XMPP server did not confirm events up to {seq} "
                     "({error}); they are sent again", seq=last, error=e)
            return False
        return True


class _Discard:
    """A body not wanted: read and dropped."""

    def makeConnection(self, transport) -> None:
        transport.stopProducing()

    def dataReceived(self, data) -> None:
        pass

    def connectionLost(self, reason) -> None:
        pass
