"""One-to-one messages (§6.2.2-6.2.8): sending, recalling, reading, and what other servers
bring for our users."""

from __future__ import annotations

import attrs

from ...wire.errors import BadRequest
from ...wire.messages import MessageInfo, new_object_id, parse_message_info, split_id
from ...wire.records import ChatType
from .. import messages, users
from ..directory import Directory
from ..reach import Reach
from ..unit import NodeStore
from .files import FilesHandler
from .sources import UserSources

__all__ = ["MessagesHandler", "MEDIA"]

MEDIA = ("image", "voice", "file")


class MessagesHandler:
    def __init__(self, store: NodeStore, directory: Directory, reach: Reach,
                 files: FilesHandler, *, recall_window_seconds: float,
                 recall_grace_seconds: float, sources: UserSources | None = None,
                 strangers: messages.StrangerLimits = messages.StrangerLimits()) -> None:
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
                raise BadRequest("group messages are not recalled", "bad_messageType")
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
        return await self.store.run(messages.send_message, info, self.server_id,
                                    self.store.now_ms(), self.strangers, txn)

    async def recall(self, user, message_id: str) -> None:
        await self.store.run(messages.recall, message_id, user, self.server_id,
                             self.store.now_ms(), self.window_ms)

    async def get(self, user, message_id: str) -> messages.StoredMessage:
        return await self.store.run(messages.message_state, message_id, user.user_id)

    async def conversations(self, user) -> list[dict]:
        return await self.store.run(messages.conversations, user.user_id)

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
        await self.store.run(messages.receive_message, info, self.store.now_ms(),
                             self.limit_ms, self.strangers)

    async def accept_strangers(self, user, accept: bool) -> None:
        """Whether ``user`` takes one-to-one messages from users who are not friends."""
        await self.store.run(users.set_accept_strangers, user.user_id, accept,
                             self.store.now_ms())
