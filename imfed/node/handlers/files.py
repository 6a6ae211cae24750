"""Files (§6.2.4-6.2.6, §6.2.9, §6.4.1.11, §6.4.2.10): uploads, what a user or a server may
fetch, other servers' files fetched once and kept, and a member's file copied by the master of
a group."""

from __future__ import annotations

import os

import attrs
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from ...storage import transaction
from ...wire.errors import BadRequest, Forbidden, NotFound, TooLarge, Unavailable
from ...wire.message_info import MessageInfo, new_object_id, server_of, split_id
from ..clients import downloads
from ..store import blobs, files, users
from ..directory import Directory
from ..clients.reach import Reach
from ..clients.remote import NOT_FOUND, FederationClient, PeerFailed
from ..store.unit import NodeStore

__all__ = ["FilesHandler", "PORTRAIT_MAX", "image_type"]

PORTRAIT_MAX = 1 << 20
"""A portrait is an image of at most this many bytes."""

_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
           (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def image_type(path: str) -> str | None:
    """The image type of a file by its first bytes (PNG, JPEG, GIF, WebP), or None."""
    with open(path, "rb") as f:
        head = f.read(16)
    for magic, kind in _IMAGES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class FilesHandler:
    def __init__(self, store: NodeStore, directory: Directory, reach: Reach,
                 remote: FederationClient, *, file_dir: str, max_file_bytes: int) -> None:
        self.store, self.directory, self.reach, self.remote = store, directory, reach, remote
        self.server_id = directory.server_id
        self.file_dir, self.max_file_bytes = file_dir, max_file_bytes
        self._relays: dict[str, Deferred] = {}

    def _path(self, file_id: str, prefix: str = "") -> str:
        return os.path.join(self.file_dir, prefix + file_id.split("@")[0])

    async def upload(self, user, name: str, source) -> files.StoredFile:
        """``source`` (a file object, spooled to disk by Twisted) copied with its size, MD5
        and SM3 in a thread: never whole in memory."""
        if len(name) > 255 or "/" in name or "\x00" in name:
            raise BadRequest("name must be a file name", "bad_name")
        file_id = new_object_id(self.server_id)
        path = self._path(file_id)
        try:
            size, md5, sm3 = await deferToThread(blobs.hash_copy, source, path,
                                                 self.max_file_bytes)
        except ValueError:
            raise TooLarge("file over %d bytes" % self.max_file_bytes, "too_large") from None
        if size == 0:
            os.unlink(path)
            raise BadRequest("the file is empty", "empty_file")
        stored = files.StoredFile(file_id, user.user_id, name, size, md5, sm3, path,
                                  self.store.now_ms())
        await self.store.run(files.add_file, stored)
        return stored

    async def media_content(self, user, content) -> dict:
        """A media message names a file the sender uploaded; size and md5 come from it."""
        if not isinstance(content, dict):
            raise BadRequest("content must be an object", "bad_content")
        file_id = content.get("fileID")
        stored = await self.store.run(files.get_file, file_id) \
            if isinstance(file_id, str) else None
        if stored is None or stored.owner_id != user.user_id or stored.path is None:
            raise NotFound("no uploaded file %s of yours" % file_id, "unknown_file")
        out = dict(content, size=stored.size, md5=stored.md5)
        out.setdefault("name", stored.name)
        return out

    async def for_user(self, user, file_id: str) -> files.StoredFile:
        """A file the user may fetch, on disk here: relayed from its origin server the first
        time (§6.4.1.11), checked against the size and MD5 its message announced, then
        kept."""
        stored = await self.store.run(files.get_file, file_id)
        if stored is None or not await self.store.run(files.user_entitled, file_id,
                                                      user.user_id):
            raise NotFound("no file %s for you" % file_id, "unknown_file")
        if stored.path is None:
            stored = await self._relay(stored)
        return stored

    async def for_user_id(self, user_id: str, file_id: str) -> files.StoredFile:
        """As for_user, for a user named by a file link (handlers/links.py)."""
        user = await self.store.run(users.get_user, user_id)
        if user is None:
            raise NotFound("no file %s for you" % file_id, "unknown_file")
        return await self.for_user(user, file_id)

    async def check_portrait(self, user, file_id: str) -> files.StoredFile:
        """An upload of the user's that can be a portrait: an image, PORTRAIT_MAX bytes at
        most."""
        stored = await self.store.run(files.get_file, file_id)
        if stored is None or stored.owner_id != user.user_id or stored.path is None:
            raise NotFound("no uploaded file %s of yours" % file_id, "unknown_file")
        if stored.size > PORTRAIT_MAX:
            raise TooLarge("a portrait has at most %d bytes" % PORTRAIT_MAX, "too_large")
        if await deferToThread(image_type, stored.path) is None:
            raise BadRequest("a portrait is a PNG, JPEG, GIF or WebP image", "bad_portrait")
        return stored

    async def portrait(self, user_id: str, portrait: str) -> files.StoredFile:
        """The portrait ``portrait`` (a fileID, from the userInfo of ``user_id``) on disk
        here: fetched once from the user's server, whose public file it must be, then kept
        (a new portrait is a new fileID)."""
        if not portrait or "@" not in portrait or server_of(portrait) != server_of(user_id):
            raise NotFound("%s has no portrait" % user_id, "no_portrait")
        stored = await self.store.run(files.get_file, portrait)
        if server_of(portrait) == self.server_id:
            if stored is None or stored.path is None or not await self.store.run(
                    files.user_entitled, portrait, files.PUBLIC):
                raise NotFound("%s has no portrait" % user_id, "no_portrait")
            return stored
        if stored is not None and stored.path is not None:
            return stored
        pending = self._relays.get(portrait)
        if pending is None:
            pending = self._relays[portrait] = ensureDeferred(
                self._fetch_portrait(user_id, portrait))
            pending.addBoth(lambda r: (self._relays.pop(portrait, None), r)[1])
        return await _share(pending)

    async def _fetch_portrait(self, user_id: str, portrait: str) -> files.StoredFile:
        peer = await self.reach.require_now(server_of(portrait))
        path = self._path(portrait, "cache-")
        try:
            size, md5, sm3 = await downloads.fetch_public(self.remote, peer, portrait, path,
                                                          PORTRAIT_MAX)
        except PeerFailed as e:
            if e.kind == NOT_FOUND:
                raise NotFound("%s has no portrait" % user_id, "no_portrait") from None
            raise Unavailable("fetching %s failed: %s" % (portrait, e),
                              "peer_unreachable") from None
        stored = files.StoredFile(portrait, user_id, "portrait", size, md5, sm3, path,
                                  self.store.now_ms())
        await self.store.run(_keep_portrait, stored)
        return stored

    async def for_server(self, file_id: str, origin: str) -> files.StoredFile:
        """§6.2.9: a file of ours, to a server with a user it was sent to."""
        stored = None
        opaque, part = split_id(file_id)
        if self.directory.resolve(part) == self.server_id:
            file_id = "%s@%s" % (opaque, self.server_id)
            stored = await self.store.run(files.get_file, file_id)
        if stored is None or stored.path is None:
            raise NotFound("no file %s" % file_id, "unknown_file")
        if not await self.store.run(files.server_entitled, file_id, origin):
            raise Forbidden("no user of %s was sent %s" % (origin, file_id), "not_entitled")
        return stored

    async def _relay(self, stored: files.StoredFile) -> files.StoredFile:
        pending = self._relays.get(stored.file_id)
        if pending is None:
            pending = self._relays[stored.file_id] = ensureDeferred(self._fetch(stored))
            pending.addBoth(lambda r: (self._relays.pop(stored.file_id, None), r)[1])
        return await _share(pending)

    async def _fetch(self, stored: files.StoredFile) -> files.StoredFile:
        origin = server_of(stored.file_id)
        peer = await self.reach.require_now(origin)
        path = self._path(stored.file_id, "cache-")
        try:
            sm3 = await downloads.fetch_checked(self.remote, peer, stored.file_id, path,
                                                stored.size, stored.md5,
                                                min(stored.size, self.max_file_bytes))
        except PeerFailed as e:
            if e.kind == NOT_FOUND:
                raise NotFound("%s is no longer kept by its server" % stored.file_id,
                               "unknown_file") from None
            raise Unavailable("fetching %s failed: %s" % (stored.file_id, e),
                              "peer_unreachable") from None
        except downloads.FileMismatch as e:
            raise Unavailable(str(e), "file_mismatch") from None
        await self.store.run(files.set_cached, stored.file_id, path, sm3)
        return attrs.evolve(stored, path=path, sm3=sm3)

    async def copy_from_member(self, info: MessageInfo, origin: str) -> MessageInfo:
        """§6.4.2.10: the master copies a member's file from the member's server, checks it
        against the announced size and MD5, and announces its own fileID instead."""
        content = info.content
        opaque, part = split_id(content["fileID"])
        if self.directory.resolve(part) != origin:
            raise BadRequest("fileID must name the sender's server", "bad_fileID")
        if content["size"] > self.max_file_bytes:
            raise TooLarge("file over %d bytes" % self.max_file_bytes, "too_large")
        peer = await self.reach.require_now(origin)
        file_id = new_object_id(self.server_id)
        path = self._path(file_id)
        try:
            sm3 = await downloads.fetch_checked(self.remote, peer, "%s@%s" % (opaque, origin),
                                                path, content["size"], content["md5"],
                                                content["size"])
        except PeerFailed as e:
            raise Unavailable("copying %s failed: %s" % (content["fileID"], e),
                              "peer_unreachable") from None
        except downloads.FileMismatch:
            raise BadRequest("the file does not match its size and md5",
                             "file_mismatch") from None
        await self.store.run(files.add_file, files.StoredFile(
            file_id, info.sender_id, content.get("name", ""), content["size"],
            content["md5"], sm3, path, self.store.now_ms()))
        return attrs.evolve(info, content=dict(content, fileID=file_id))


@transaction
def _keep_portrait(work, stored: files.StoredFile) -> None:
    """Another server's portrait, kept here for every user to see (again, when housekeeping
    let its bytes go)."""
    if files.get_file(work, stored.file_id) is None:
        files.add_file(work, stored)
    else:
        files.set_cached(work, stored.file_id, stored.path, stored.sm3)
    files.grant(work, stored.file_id, files.PUBLIC)


def _share(d: Deferred) -> Deferred:
    """A Deferred of its own for each waiter on one shared result."""
    mine: Deferred = Deferred()

    def fire(result):
        if isinstance(result, Failure):
            mine.errback(result)
        else:
            mine.callback(result)
        return result

    d.addBoth(fire)
    d.addErrback(lambda f: None)
    return mine
