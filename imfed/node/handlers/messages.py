"""One-to-one messages (§6.2.2-6.2.8): sending, recalling, reading, and what other servers
bring for our users."""

from __future__ import annotations

import json

import attrs

from ...storage import like_pattern, transaction
from ...wire.errors import BadRequest, Conflict, Forbidden, NotFound, TooMany
from ...wire.message_info import (MessageInfo, new_object_id, parse_message_info, server_of,
                                  split_id)
from ...wire.queued import Chat
from ...wire.records import ChatType
from ..store import messages, pins_mutes, reads, txns, users
from ..store.outbox import enqueue
from ..directory import Directory
from ..clients.reach import Reach
from ..store.unit import NodeStore
from .files import FilesHandler
from .sources import UserSources

__all__ = ["MessagesHandler", "MEDIA", "StrangerLimits"]

MEDIA = ("image", "voice", "file")


@attrs.frozen
class StrangerLimits:
    """How many one-to-one messages a user takes in a day from one user who is not a friend
    (and whom the user has not written to), and from all such users together."""

    per_sender: int = 200
    per_recipient: int = 1000


DAY_MS = 86_400_000


# -- the rules, each checked in the unit of work that writes what it allows --

def _stranger_check(work, info: MessageInfo, now_ms: int, limits: StrangerLimits) -> None:
    """403 when the recipient takes nothing from strangers, 429 (Retry-After: the sender may
    try again later, and its server does) past either limit; nothing for an acquaintance."""
    recv, sender = info.recv_id, info.sender_id
    if sender == recv or messages.acquainted(work, recv, sender):
        return
    user = users.get_user(work, recv)
    if user is not None and not user.accept_strangers:
        raise Forbidden("%s takes messages from friends only" % recv, "strangers_refused")
    since = now_ms - DAY_MS
    count, oldest = messages.received_from(work, recv, sender, since)
    if count >= limits.per_sender:
        raise TooMany("%s has had %d messages from %s today without being friends"
                      % (recv, count, sender), (oldest + DAY_MS - now_ms) / 1000,
                      "stranger_limit")
    count, oldest = messages.received_from_strangers(work, recv, since)
    if count >= limits.per_recipient:
        raise TooMany("%s has had %d messages from users who are not friends today"
                      % (recv, count), (oldest + DAY_MS - now_ms) / 1000, "stranger_limit")


@transaction
def _send(work, info: MessageInfo, server_id: str, now_ms: int, limits: StrangerLimits,
          txn: str | None) -> messages.StoredMessage:
    """A local user's one-to-one message, once per ``txn`` (the first one again)."""
    first = txns.seen(work, info.sender_id, txn)
    if first is not None:
        return messages.get_message(work, first)
    txns.remember(work, info.sender_id, txn, info.message_id, now_ms)
    local = info.recv_server == server_id
    if local:
        if users.get_user(work, info.recv_id) is None:
            raise NotFound("no user %s" % info.recv_id, "unknown_user")
        _stranger_check(work, info, now_ms, limits)
    return messages.record_sent(work, info, local, now_ms)


@transaction
def _receive(work, info: MessageInfo, now_ms: int, recall_limit_ms: int,
             limits: StrangerLimits) -> bool:
    """A message from another server for a local user; False for a repeat (docs/protocol.md
    §5).  A recall (``repeal``) is taken within ``recall_limit_ms`` of the message's arrival
    (the recall window plus a grace for the recall's own journey), refused after (409)."""
    if users.get_user(work, info.recv_id) is None:
        raise NotFound("no user %s" % info.recv_id, "unknown_user")
    message = messages.get_message(work, info.message_id)
    if info.message_type == "repeal":
        if message is not None and not message.recalled and \
                now_ms - message.created_at > recall_limit_ms:
            raise Conflict("the recall window has passed", "recall_window_passed")
        if message is None:
            raise NotFound("no message %s" % info.message_id, "unknown_message")
        if message.info.sender_id != info.sender_id:
            raise Forbidden("only its sender may recall a message", "not_sender")
        return messages.mark_recalled(work, message, now_ms)
    if message is not None:
        return False  # a repeat: taken before, limits or not
    _stranger_check(work, info, now_ms, limits)
    return messages.record_received(work, info, now_ms)


def _of(work, message_id: str, user_id: str) -> messages.StoredMessage:
    """A message of a conversation ``user_id`` is in; 404 otherwise."""
    message = messages.get_message(work, message_id)
    if message is None or user_id not in (message.info.sender_id, message.info.recv_id):
        raise NotFound("no message %s" % message_id, "unknown_message")
    return message


@transaction
def _recall(work, message_id: str, user_id: str, server_id: str, now_ms: int,
            window_ms: int) -> None:
    """The sender takes a message back within the window; the recipient's server hears of it
    through a ``repeal`` message (§6.2.2)."""
    message = _of(work, message_id, user_id)
    if message.info.sender_id != user_id:
        raise Forbidden("only its sender may recall a message", "not_sender")
    if now_ms - message.created_at > window_ms:
        raise Conflict("the recall window has passed", "recall_window_passed")
    if not messages.mark_recalled(work, message, now_ms):
        return
    recv = message.info.recv_id
    if server_of(recv) != server_id:
        repeal = MessageInfo(user_id, recv, "repeal", ChatType.ONE_TO_ONE, message_id, {})
        enqueue(work, server_of(recv), messages.conversation_key(user_id, recv),
                Chat(repeal), now_ms)


@transaction
def _mark_read(work, user_id: str, peer_id: str, seq: int, now_ms: int) -> int:
    """The user has read the conversation with ``peer_id`` to ``seq`` (no further than its
    newest message); the user's every stream hears of it (a ``read`` event), so another tab
    or device clears it too.  The marker as it now stands."""
    seq = min(seq, messages.newest_seq(work, user_id, peer_id))
    return reads.read_to(work, user_id, peer_id, seq, {"peerID": peer_id, "seq": seq}, now_ms)


@transaction
def _conversations(cur, user_id: str) -> list[dict]:
    flags = pins_mutes.all_of(cur, user_id)
    return [dict(c.to_client(), **pins_mutes.shown(flags, c.peer_id))
            for c in messages.conversations(cur, user_id)]


@transaction
def _pin_mute(work, user_id: str, peer_id: str, pinned: bool | None, muted: bool | None,
              now_ms: int) -> tuple[bool, bool]:
    """A conversation is pinned or muted only once it has a message: 404 before."""
    if not messages.newest_seq(work, user_id, peer_id):
        raise NotFound("no conversation with %s" % peer_id, "unknown_conversation")
    return pins_mutes.set_flags(work, user_id, peer_id, pinned, muted, {"peerID": peer_id},
                                now_ms)


def _text_has(content: dict, query: str) -> bool:
    text = content.get("message")
    return isinstance(text, str) and query.casefold() in text.casefold()


async def find_texts(store: NodeStore, search, user_id: str, query: str, limit: int) -> list:
    """The user's text messages that ``search`` (a store query by LIKE pattern, newest first)
    finds and whose text holds ``query``, case aside: at most ``limit``.  The pattern matches
    the content as stored (compact JSON, not ASCII-escaped: Chinese as it is), so a match in
    the JSON's key is read and dropped; more rows than ``limit`` are read for that."""
    pattern = like_pattern(json.dumps(query, ensure_ascii=False)[1:-1])
    found = await store.run(search, user_id, pattern, limit * 4)
    return [m for m in found if _text_has(m.info.content, query)][:limit]


class MessagesHandler:
    def __init__(self, store: NodeStore, directory: Directory, reach: Reach,
                 files: FilesHandler, *, recall_window_seconds: float,
                 recall_grace_seconds: float, sources: UserSources | None = None,
                 strangers: StrangerLimits = StrangerLimits()) -> None:
        self.store, self.directory, self.reach, self.files = store, directory, reach, files
        self.strangers = strangers
        self.sources = sources or UserSources(store, directory.server_id)
        self.server_id = directory.server_id
        self.window_ms = int(recall_window_seconds * 1000)
        self.limit_ms = int((recall_window_seconds + recall_grace_seconds) * 1000)

    async def compose(self, user, recv_id: str, message_type, content,
                      chat_type: ChatType) -> MessageInfo:
        """A new message of ``user``'s, checked as any message from another server is
        (recalls have their own call); a media message's file is the sender's upload."""
        if isinstance(message_type, str) and message_type.lower() == "repeal":
            if chat_type == ChatType.GROUP:
                raise BadRequest("recall with POST /api/v1/groups/<groupID>/messages/"
                                 "<messageID>/recall", "bad_messageType")
            raise BadRequest("recall with POST /api/v1/messages/<messageID>/recall",
                             "bad_messageType")
        if isinstance(message_type, str) and message_type.lower() in MEDIA:
            content = await self.files.media_content(user, content)
        return parse_message_info({
            "senderID": user.user_id, "recvID": recv_id, "messageType": message_type,
            "type": int(chat_type), "messageID": new_object_id(self.server_id),
            "content": content})

    async def send(self, user, recv_id: str, message_type, content,
                   txn: str | None = None) -> messages.StoredMessage:
        """A one-to-one message, once per ``txn`` (the first one again for a repeat)."""
        info = await self.compose(user, recv_id, message_type, content, ChatType.ONE_TO_ONE)
        if info.recv_server != self.server_id:
            await self.reach.require(info.recv_server, queue=True)
        else:
            await self.sources.ensure(info.recv_id)
        return await self.store.run(_send, info, self.server_id, self.store.now_ms(),
                                    self.strangers, txn)

    async def recall(self, user, message_id: str) -> None:
        await self.store.run(_recall, message_id, user.user_id, self.server_id,
                             self.store.now_ms(), self.window_ms)

    async def get(self, user, message_id: str) -> messages.StoredMessage:
        return await self.store.run(_of, message_id, user.user_id)

    async def conversations(self, user) -> list[dict]:
        return await self.store.run(_conversations, user.user_id)

    async def pin_mute(self, user, peer_id: str, pinned: bool | None,
                       muted: bool | None) -> tuple[bool, bool]:
        """Pin or mute the conversation for the user (None: as it was), on every device."""
        return await self.store.run(_pin_mute, user.user_id, peer_id, pinned, muted,
                                    self.store.now_ms())

    async def history(self, user, peer_id: str, before: int | None,
                      limit: int) -> list[messages.StoredMessage]:
        return await self.store.run(messages.history, user.user_id, peer_id, before, limit)

    async def receive(self, info: MessageInfo, origin: str) -> None:
        """A one-to-one message from ``origin`` (whose it is, the route has checked) for the
        local user ``info.recv_id``: stored and passed on in the serverId form, whichever
        form it came in (§6.2.2); a file must be the sending server's."""
        content = info.content
        if "fileID" in content:
            file_opaque, file_part = split_id(content["fileID"])
            if self.directory.resolve(file_part) != origin:
                raise BadRequest("fileID must name the sender's server", "bad_fileID")
            content = dict(content, fileID="%s@%s" % (file_opaque, origin))
        info = attrs.evolve(info, content=content)
        await self.sources.ensure(info.recv_id)
        await self.store.run(_receive, info, self.store.now_ms(), self.limit_ms,
                             self.strangers)

    async def mark_read(self, user, peer_id: str, seq: int) -> int:
        return await self.store.run(_mark_read, user.user_id, peer_id, seq,
                                    self.store.now_ms())

    async def search(self, user, query: str, limit: int) -> list[messages.StoredMessage]:
        """The user's one-to-one text messages that contain ``query`` (case aside), newest
        first."""
        return await find_texts(self.store, messages.search, user.user_id, query, limit)

    async def accept_strangers(self, user, accept: bool) -> None:
        """Whether ``user`` takes one-to-one messages from users who are not friends."""
        await self.store.run(users.set_accept_strangers, user.user_id, accept,
                             self.store.now_ms())
