"""The client API for this server's own users (JSON over HTTP, token after login).

Documented in docs/client-api.md.  Every answer is ``{"code": 0, "error": "", ...}``; every
failure the profile's JSON error body with a fitting status.  Group calls: client_groups.py,
mounted under ``/api/v1/groups``.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import quote

import attrs
from klein import Klein
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from ...metrics import STREAM_CLIENTS, STREAM_STALLS
from ... import openapi
from ...web import (JSON_TYPE, SESSION, Endpoints, bearer, endpoint, install_errors, int_arg,
                    query_arg, read_json, send_file)
from ...wire import fields
from ...wire.errors import BadRequest, Style, TooMany, Unauthorized, ok_body
from ...wire.message_info import user_id
from ...throttle import SendRates
from ..directory import Directory
from ..handlers.bridge import BridgeAccess
from ..handlers.events import EventsHandler
from ..handlers.files import FilesHandler, image_type
from ..handlers.friends import FriendsHandler
from ..handlers.groups import GroupsHandler
from ..handlers.links import FileLinks
from ..handlers.messages import MessagesHandler
from ..handlers.sessions import Sessions
from ..handlers.users import UsersHandler
from . import webclient
from .client_groups import GroupRoutes

__all__ = ["ClientRoutes", "V1", "Handlers"]

V1 = "/api/v1/"


@attrs.frozen
class Handlers:
    """What the client API calls (and the bridge API will)."""
    sessions: Sessions
    users: UsersHandler
    friends: FriendsHandler
    messages: MessagesHandler
    files: FilesHandler
    groups: GroupsHandler
    events: EventsHandler
    bridge: BridgeAccess | None = None
    links: FileLinks | None = None


class ClientRoutes(Endpoints):
    """Sessions, users, friends, messages, files and events."""

    app = Klein()
    install_errors(app)
    style = Style.INTERCONNECT
    interface = "client"

    def __init__(self, handlers: Handlers, directory: Directory, *, max_body: int,
                 max_file_bytes: int, rates: SendRates | None = None) -> None:
        self.h, self.directory = handlers, directory
        self.server_id = directory.server_id
        self.max_body, self.max_file_bytes = max_body, max_file_bytes
        self.rates = rates
        self.stream_stall_seconds = STREAM_STALL_SECONDS
        self.groups = GroupRoutes(handlers.groups, self.session_user, directory,
                                  max_body=max_body, rate=self.rate)

    def rate(self, request, user, kind: str) -> None:
        """429 ``rate_limited`` when ``user`` (or its address) has sent too much of ``kind``
        this minute; the bridge, acting for many users, is not counted."""
        if self.rates is None:
            return
        if self._bridge(bearer(request)):
            return
        self.rates.check(kind, user.user_id, _source(request))

    def _bridge(self, token: str) -> bool:
        """Whether ``token`` is the bridge's (a bridge is configured and this is its token)."""
        return self.h.bridge is not None and self.h.bridge.presented(token)

    def body_limit(self, method: bytes, path: bytes) -> int:
        """The largest body the client listener reads for a request: a file upload's, or a
        JSON body's (checked by the listener before the body is read)."""
        if method == b"POST" and path.split(b"?", 1)[0].rstrip(b"/") == b"/api/v1/files":
            return max(self.max_file_bytes, self.max_body)
        return self.max_body

    def gate(self, method: bytes, path: bytes, request):
        """The listener asks before it reads a body: a file upload (up to ``max_file_bytes``)
        is read only from a caller with a session (or the bridge), so that nobody can make
        the node spool files to disk without one, and within the user's uploads a minute
        (a :class:`TooMany` answer: 429 unread)."""
        if method != b"POST" or path.split(b"?", 1)[0].rstrip(b"/") != b"/api/v1/files":
            return None
        token = bearer(request)
        if self._bridge(token):
            return succeed(True)

        async def check():
            try:
                user = await self.h.sessions.user(token)
            except Unauthorized:
                return False
            if self.rates is not None:
                try:  # an upload past the user's minute is refused unread
                    self.rates.check("upload", user.user_id, _source(request), count=False)
                except TooMany as refusal:
                    return refusal
            return True

        return Deferred.fromCoroutine(check())

    async def session_user(self, request):
        """The user of a request: its session's, or, with the bridge token, the one named by
        ``?user_id=`` (docs/bridge.md)."""
        token = bearer(request)
        if self._bridge(token):
            return await self.h.bridge.act_as(query_arg(request, "user_id"))
        return await self.h.sessions.user(token)

    def _user_id(self, value, field: str) -> str:
        return self.directory.canonical(user_id(value, field), field)

    @app.route(V1 + "groups", branch=True)
    def group_routes(self, request):
        """Everything under /api/v1/groups, routed by client_groups.py (which sees the rest
        of the path; /api/v1/groups itself is its "/")."""
        if not request.postpath:
            request.postpath = [b""]
        return self.groups.resource()

    # -- the web client (imfed/webclient, docs/webclient.md) --

    @app.route("/", methods=["GET"])
    def web_client(self, request):
        return webclient.serve_page(request)

    @app.route("/static/<name>", methods=["GET"])
    def web_client_file(self, request, name):
        return webclient.serve_file(request, name)

    @app.route("/static/<version>/<name>", methods=["GET"])
    def web_client_versioned(self, request, version, name):
        return webclient.serve_file(request, name, version)

    @app.route("/favicon.ico", methods=["GET"])
    def favicon(self, request):
        return webclient.serve_file(request, "icon.svg")

    @app.route(V1 + "openapi.json", methods=["GET"])
    @endpoint(raw=True)
    def openapi(self, request):
        """This API's OpenAPI 3.1 description (imfed/openapi.py; docs/openapi/)."""
        request.setHeader(b"content-type", JSON_TYPE)
        return _openapi()

    # -- the bridge (docs/bridge.md) --

    @app.route(V1 + "bridge/users", methods=["POST"])
    @endpoint()
    async def bridge_provision(self, request):
        """The bridged system makes one of its users known here (once; again is harmless)."""
        if self.h.bridge is None or not self.h.bridge.presented(bearer(request)):
            raise Unauthorized("the bridge token is required", "bad_bridge_token")
        body = read_json(request, self.max_body)
        phone = fields.text(body, "phoneNumber", max_len=64)
        name = fields.name(body, "name", max_len=64)
        verify_type = fields.optional_int(body, "verifyType", default=2, minimum=1, maximum=2)
        user, made = await self.h.bridge.provision(phone, name, verify_type)
        request.setResponseCode(201 if made else 200)
        return ok_body(self.style, userInfo=user.info(), created=made)

    # -- session --

    @app.route(V1 + "login", methods=["POST"])
    @endpoint()
    async def login(self, request):
        body = read_json(request, self.max_body)
        login = fields.text(body, "login", max_len=128)
        password = fields.text(body, "password", max_len=256)
        token, user = await self.h.sessions.login(login, password, _source(request))
        return ok_body(self.style, token=token, userInfo=user.info())

    @app.route(V1 + "logout", methods=["POST"])
    @endpoint(SESSION)
    async def logout(self, request, user):
        """This session ends."""
        await self.h.sessions.logout(bearer(request))
        return ok_body(self.style)

    @app.route(V1 + "logout/all", methods=["POST"])
    @endpoint(SESSION)
    async def logout_all(self, request, user):
        """Every session of this user ends, this one too."""
        return ok_body(self.style, ended=await self.h.sessions.logout_all(user))

    @app.route(V1 + "me", methods=["GET"])
    @endpoint(SESSION)
    async def me(self, request, user):
        """The user, the settings a client needs, and the seq of the user's newest event (a
        fresh client reads conversations as they are and asks for events after it)."""
        return ok_body(self.style, userInfo=user.info(), verifyType=user.verify_type,
                       acceptStrangers=bool(user.accept_strangers),
                       lastEventSeq=await self.h.events.last(user.user_id),
                       settings={"recallWindowSeconds": self.h.messages.window_ms // 1000,
                                 "maxFileBytes": self.max_file_bytes})

    @app.route(V1 + "me", methods=["PUT"])
    @endpoint(SESSION)
    async def edit_me(self, request, user):
        """``{"name": "...", "portrait": "<fileID>"}``, either or both: the user's name (1-64
        characters people can read), its portrait (an image the user uploaded, at most
        1 MiB; "" for none); the user's other streams get a ``profile`` event."""
        body = read_json(request, self.max_body)
        if "name" not in body and "portrait" not in body:
            raise BadRequest("give name, portrait or both", "missing_name")
        name = fields.name(body, "name", max_len=64).strip() if "name" in body else None
        portrait = fields.text(body, "portrait", required=False, max_len=128) \
            if "portrait" in body else None
        if portrait:
            await self.h.files.check_portrait(user, portrait)
        user = await self.h.users.edit_profile(user, name, portrait)
        self.h.sessions.forget(user.user_id)
        return ok_body(self.style, userInfo=user.info())

    @app.route(V1 + "users/<user_id>/portrait", methods=["GET"])
    @endpoint(SESSION, raw=True)
    async def portrait(self, request, user, user_id):
        """A user's portrait image, of any server (fetched from the user's server once, then
        kept); ``ETag`` is its fileID, a new portrait a new one."""
        uid = self._user_id(user_id, "userID")
        info, _ = await self.h.users.info(uid)
        stored = await self.h.files.portrait(uid, info.get("portrait") or "")
        etag = b'"%s"' % stored.file_id.encode()
        request.setHeader(b"etag", etag)
        request.setHeader(b"cache-control", b"private, no-cache")
        if request.getHeader(b"if-none-match") == etag:
            request.setResponseCode(304)
            return b""
        kind = await deferToThread(image_type, stored.path) or "application/octet-stream"
        return await send_file(request, stored.path, kind.encode())

    @app.route(V1 + "me/password", methods=["POST"])
    @endpoint(SESSION)
    async def change_password(self, request, user):
        """``{"password": <the one it has>, "newPassword": ...}``: every other session ends
        (this one stays); 403 wrong_password, throttled as failed logins are."""
        body = read_json(request, self.max_body)
        ended = await self.h.sessions.change_password(
            user, bearer(request), fields.text(body, "password", max_len=256),
            fields.text(body, "newPassword", max_len=256))
        return ok_body(self.style, ended=ended)

    @app.route(V1 + "me/strangers", methods=["PUT"])
    @endpoint(SESSION)
    async def accept_strangers(self, request, user):
        """``{"acceptStrangers": false}``: one-to-one messages from users who are neither
        friends nor written to first are refused (403 strangers_refused to their server);
        ``true`` takes them again, within the node's daily limits."""
        body = read_json(request, self.max_body)
        accept = fields.flag(body, "acceptStrangers")
        await self.h.messages.accept_strangers(user, accept)
        self.h.sessions.forget(user.user_id)
        return ok_body(self.style, acceptStrangers=accept)

    # -- users --

    @app.route(V1 + "users/search", methods=["GET"])
    @endpoint(SESSION)
    async def search(self, request, user):
        query = fields.search_query(query_arg(request, "q") or "", "q")
        found, servers = await self.h.users.search(query,
                                                   query_arg(request, "remote", "1") != "0")
        return ok_body(self.style, users=found, servers=servers)

    @app.route(V1 + "users/info", methods=["GET"])
    @endpoint(SESSION)
    async def user_info(self, request, user):
        info, verify_type = await self.h.users.info(
            self._user_id(query_arg(request, "userID"), "userID"))
        if verify_type is None:
            return ok_body(self.style, userInfo=info)
        return ok_body(self.style, userInfo=info, verifyType=verify_type)

    # -- friends --

    @app.route(V1 + "friends", methods=["GET"])
    @endpoint(SESSION)
    async def friends(self, request, user):
        return ok_body(self.style, friends=await self.h.friends.list(user))

    @app.route(V1 + "friends/requests", methods=["GET"])
    @endpoint(SESSION)
    async def requests(self, request, user):
        return ok_body(self.style, requests=await self.h.friends.requests(user))

    @app.route(V1 + "friends/requests", methods=["POST"])
    @endpoint(SESSION)
    async def request_friend(self, request, user):
        body = read_json(request, self.max_body)
        target = self._user_id(body.get("userID"), "userID")
        remark = fields.name(body, "remark", required=False, max_len=256, newlines=True)
        return ok_body(self.style, requestID=await self.h.friends.request(user, target, remark))

    @app.route(V1 + "friends/requests/<request_id>/answer", methods=["POST"])
    @endpoint(SESSION)
    async def answer(self, request, user, request_id):
        body = read_json(request, self.max_body)
        await self.h.friends.answer(user, request_id, fields.flag(body, "agree"))
        return ok_body(self.style)

    @app.route(V1 + "friends/delete", methods=["POST"])
    @endpoint(SESSION)
    async def delete_friend(self, request, user):
        body = read_json(request, self.max_body)
        await self.h.friends.delete(user, self._user_id(body.get("userID"), "userID"))
        return ok_body(self.style)

    # -- messages --

    @app.route(V1 + "messages", methods=["POST"])
    @endpoint(SESSION)
    async def send(self, request, user):
        self.rate(request, user, "send")
        body = read_json(request, self.max_body)
        recv = self._user_id(body.get("recvID"), "recvID")
        message = await self.h.messages.send(user, recv, body.get("messageType"),
                                             body.get("content"), fields.txn_id(body))
        return ok_body(self.style, message=message.to_client())

    @app.route(V1 + "messages/search", methods=["GET"])
    @endpoint(SESSION)
    async def search_messages(self, request, user):
        """The user's text messages, one-to-one and in its groups, that contain ``q`` (case
        aside; Chinese as it is), newest first: ``messages`` and ``groupMessages``, at most
        ``limit`` (≤ 100) of each."""
        query = fields.search_query(query_arg(request, "q") or "", "q")
        limit = int_arg(request, "limit", 20, 100) or 20
        found = await self.h.messages.search(user, query, limit)
        in_groups = await self.h.groups.search_messages(user, query, limit)
        return ok_body(self.style, messages=[m.to_client() for m in found],
                       groupMessages=in_groups)

    @app.route(V1 + "messages/<message_id>", methods=["GET"])
    @endpoint(SESSION)
    async def message(self, request, user, message_id):
        message = await self.h.messages.get(user, message_id)
        return ok_body(self.style, message=message.to_client())

    @app.route(V1 + "messages/<message_id>/recall", methods=["POST"])
    @endpoint(SESSION)
    async def recall(self, request, user, message_id):
        await self.h.messages.recall(user, message_id)
        return ok_body(self.style)

    @app.route(V1 + "conversations", methods=["GET"])
    @endpoint(SESSION)
    async def conversations(self, request, user):
        return ok_body(self.style, conversations=await self.h.messages.conversations(user))

    @app.route(V1 + "conversations/<peer_id>/messages", methods=["GET"])
    @endpoint(SESSION)
    async def history(self, request, user, peer_id):
        peer = self._user_id(peer_id, "peerID")
        before = int_arg(request, "before", 0, 2 ** 62) or None
        limit = int_arg(request, "limit", 50, 200) or 50
        page = await self.h.messages.history(user, peer, before, limit)
        return ok_body(self.style, messages=[m.to_client() for m in page],
                       nextBefore=page[-1].seq if len(page) == limit else None)

    @app.route(V1 + "conversations/<peer_id>/read", methods=["POST"])
    @endpoint(SESSION)
    async def read(self, request, user, peer_id):
        """``{"seq": N}``: the user has read the conversation to message ``seq``; its unread
        count is what came after.  The marker only moves forward; every stream of the user
        gets a ``read`` event."""
        peer = self._user_id(peer_id, "peerID")
        body = read_json(request, self.max_body)
        seq = fields.optional_int(body, "seq", default=None, minimum=0)
        return ok_body(self.style, readSeq=await self.h.messages.mark_read(user, peer, seq))

    @app.route(V1 + "conversations/<peer_id>/pins", methods=["PUT"])
    @endpoint(SESSION)
    async def pin_mute(self, request, user, peer_id):
        """``{"pinned": bool, "muted": bool}`` (either may be left out): the conversation
        pinned or muted for the user on every device; every stream of the user gets a
        ``pins`` event.  404 for a conversation without a message."""
        peer = self._user_id(peer_id, "peerID")
        pinned, muted = fields.pin_mute(read_json(request, self.max_body))
        pinned, muted = await self.h.messages.pin_mute(user, peer, pinned, muted)
        return ok_body(self.style, pinned=pinned, muted=muted)

    # -- files --

    @app.route(V1 + "files", methods=["POST"])
    @endpoint(SESSION)
    async def upload(self, request, user):
        """The request body is the file; ``?name=`` its name."""
        self.rate(request, user, "upload")
        name = fields.plain(query_arg(request, "name", "") or "", "name")
        stored = await self.h.files.upload(user, name, request.content)
        return ok_body(self.style, fileID=stored.file_id, size=stored.size, md5=stored.md5,
                       name=stored.name)

    @app.route(V1 + "files/<file_id>", methods=["GET"])
    @endpoint(raw=True)
    async def download(self, request, file_id):
        """The file, from here or relayed from its origin server: for the session's user, or
        for the user a link names (``?user_id=&expires=&link=``, handlers/links.py)."""
        link = query_arg(request, "link")
        if link is not None and self.h.links is not None:
            owner = self.h.links.user_for(file_id, query_arg(request, "user_id"),
                                          query_arg(request, "expires"), link)
            stored = await self.h.files.for_user_id(owner, file_id)
        else:
            stored = await self.h.files.for_user(await self.session_user(request), file_id)
        request.setHeader(b"content-disposition", _disposition(stored.name))
        return await send_file(request, stored.path)

    # -- events --

    @app.route(V1 + "events", methods=["GET"])
    @endpoint(SESSION)
    async def events(self, request, user):
        """Long poll: events after ``since``, waiting up to ``wait`` seconds (max 60) for
        the first one."""
        since = int_arg(request, "since", 0, 2 ** 62)
        wait = int_arg(request, "wait", 0, 60)
        rows = await self.h.events.after(user.user_id, since, wait)
        return ok_body(self.style, events=[_event(r) for r in rows],
                       last=rows[-1][0] if rows else since)

    @app.route(V1 + "events/stream", methods=["GET"])
    @endpoint(SESSION, raw=True)
    async def stream(self, request, user):
        """Server-sent events: every event after ``since`` (or Last-Event-ID), then live."""
        last = request.getHeader(b"last-event-id")
        since = int(last) if last and last.isdigit() else int_arg(request, "since", 0,
                                                                        2 ** 62)
        request.setHeader(b"content-type", b"text/event-stream;charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        gone = []
        clients = STREAM_CLIENTS.labels(self.server_id)
        clients.inc()
        request.notifyFinish().addBoth(lambda _: (gone.append(True), clients.dec()))
        # Flow control: while the client does not read, nothing more is written (the events
        # wait in the store); one that reads nothing for STREAM_STALL_SECONDS is closed, and
        # reconnects with Last-Event-ID when it comes back.  (The connection pauses a producer
        # once its send buffer is full: what waits per stream is that buffer and one batch.)
        flow = _Flow()
        request.registerProducer(flow, True)
        request.write(b": imfed event stream\n\n")
        try:
            while not gone:
                rows = await self.h.events.after(user.user_id, since, 15, limit=100)
                if gone:
                    break
                if flow.paused and not await flow.resumed(self.h.events.clock,
                                                          self.stream_stall_seconds):
                    STREAM_STALLS.labels(self.server_id).inc()
                    request.channel.transport.abortConnection() if request.channel else None
                    break
                if not rows:
                    request.write(b": keep-alive\n\n")
                    continue
                for seq, kind, payload in rows:
                    request.write(b"id: %d\nevent: %s\ndata: %s\n\n"
                                  % (seq, kind.encode(), payload.encode("utf-8")))
                since = rows[-1][0]
        finally:
            if not gone:
                request.unregisterProducer()
        return b""


STREAM_STALL_SECONDS = 60.0
"""An event stream whose client has read nothing for this long, with events waiting, is
closed (what it would have been sent stays in the store)."""


def _fire(d: Deferred, value) -> None:
    if not d.called:
        d.callback(value)


@implementer(IPushProducer)
class _Flow:
    """An event stream's producer: told by the connection to pause when the client stops
    reading, and to resume when it reads again."""

    paused = False
    _resume: Deferred | None = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        d, self._resume = self._resume, None
        if d is not None and not d.called:
            d.callback(True)

    stopProducing = resumeProducing

    async def resumed(self, clock, seconds: float) -> bool:
        """True once the client reads again, False after ``seconds`` without."""
        d: Deferred = Deferred()
        self._resume = d
        timer = clock.callLater(seconds, _fire, d, False)
        try:
            return await d
        finally:
            if timer.active():
                timer.cancel()


@functools.cache
def _openapi() -> bytes:
    return openapi.render("client").encode("utf-8")


def _source(request) -> str:
    return getattr(request.getClientAddress(), "host", "?")


def _disposition(name: str) -> bytes:
    return ("attachment; filename*=UTF-8''%s" % quote(name or "file")).encode("ascii")


def _event(row) -> dict:
    seq, kind, payload = row
    return {"seq": seq, "type": kind, "data": json.loads(payload)}
