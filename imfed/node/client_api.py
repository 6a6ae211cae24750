"""The client API for this server's own users (JSON over HTTP, token after login).

Documented in docs/client-api.md.  Every answer is ``{"code": 0, "error": "", ...}``; every
failure the profile's JSON error body with a fitting status.
"""

from __future__ import annotations

import json
import os

import attrs
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from ..peer import PeerError
from ..throttle import Throttle
from ..web import (JSON_TYPE, Endpoints, endpoint, int_arg, query_arg, read_json,
                   render_failure, send_file)
from ..wire import fields
from ..wire.errors import (BadRequest, Forbidden, NotFound, Style, TooLarge, TooMany,
                           Unauthorized, Unavailable, ok_body)
from ..wire.messages import new_object_id, parse_message_info, server_of, user_id
from . import files, messaging, users
from .client_app import V1, app
from .client_groups import GroupRoutes

__all__ = ["ClientApi"]


class ClientApi(GroupRoutes, Endpoints):
    """Sessions, users, friends, messages, files and events here; groups in
    client_groups.py."""

    app = app
    style = Style.INTERCONNECT

    def __init__(self, *, role) -> None:
        self.role = role
        self.server_id = role.config.server_id
        self.db, self.hub, self.clock = role.db, role.hub, role.clock
        self.max_body = role.config.max_body
        self._relays: dict = {}
        c = role.config
        self.login_throttle = Throttle(self.clock, c.login_max_failures, c.login_window_seconds)
        self.source_throttle = Throttle(self.clock, 5 * c.login_max_failures,
                                        c.login_window_seconds)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def body_limit(self, method: bytes, path: bytes) -> int:
        """The largest body the client listener reads for a request: a file upload's, or a
        JSON body's (checked by the listener before the body is read)."""
        if method == b"POST" and path.split(b"?", 1)[0].rstrip(b"/") == b"/api/v1/files":
            return max(self.role.config.max_file_bytes, self.max_body)
        return self.max_body

    async def user(self, request) -> users.User:
        token = _bearer(request)
        if not token:
            raise Unauthorized("log in first: Authorization: Bearer <token>", "no_session")
        user = await self.db.runInteraction(users.session_user, token, self.now_ms())
        if user is None:
            raise Unauthorized("the session is unknown or has expired", "no_session")
        return user

    # -- session --

    @app.route(V1 + "login", methods=["POST"])
    @endpoint()
    async def login(self, request):
        """Throttled per account and per source address (429 with Retry-After); the hash is
        checked on a thread, and against a dummy when the account does not exist, so that
        neither the reactor nor the answer's timing tells anything."""
        body = read_json(request, self.max_body)
        login = fields.text(body, "login", max_len=128)
        password = fields.text(body, "password", max_len=256)
        keys = ("account:" + login.strip().lower(), "source:" + _source(request))
        for key, throttle in zip(keys, (self.login_throttle, self.source_throttle)):
            wait = throttle.retry_after(key)
            if wait is not None:
                raise TooMany("too many failed logins; try again later", wait, "throttled")
        user = await self.db.runInteraction(users.find_user, login)
        stored = user.password_hash if user is not None else None
        if not await deferToThread(users.check_password, password, stored):
            self.login_throttle.hit(keys[0])
            self.source_throttle.hit(keys[1])
            raise Unauthorized("wrong login or password", "bad_login")
        self.login_throttle.clear(keys[0])
        if users.needs_rehash(stored):
            new_hash = await deferToThread(users.hash_password, password)
            await self.db.runInteraction(users.set_password, user.user_id, new_hash,
                                         self.now_ms(), keep_sessions=True)
        token = await self.db.runInteraction(
            users.new_session, user.user_id, self.now_ms(),
            int(self.role.config.session_seconds * 1000))
        return ok_body(self.style, token=token, userInfo=user.info())

    @app.route(V1 + "logout", methods=["POST"])
    @endpoint()
    async def logout(self, request):
        """This session ends."""
        await self.user(request)
        await self.db.runInteraction(users.end_session, _bearer(request))
        return ok_body(self.style)

    @app.route(V1 + "logout/all", methods=["POST"])
    @endpoint()
    async def logout_all(self, request):
        """Every session of this user ends, this one too."""
        user = await self.user(request)
        ended = await self.db.runInteraction(users.end_sessions, user.user_id)
        return ok_body(self.style, ended=ended)

    @app.route(V1 + "me", methods=["GET"])
    @endpoint()
    async def me(self, request):
        user = await self.user(request)
        return ok_body(self.style, userInfo=user.info(), verifyType=user.verify_type)

    # -- users --

    @app.route(V1 + "users/search", methods=["GET"])
    @endpoint()
    async def search(self, request):
        await self.user(request)
        query = fields.search_query(query_arg(request, "q") or "", "q")
        local = await self.db.runInteraction(users.search, query)
        found = [u.info() for u in local]
        servers = {self.server_id: "ok"}
        if query_arg(request, "remote", "1") != "0":
            remote, servers_remote = await self._search_remote(query)
            found += remote
            servers.update(servers_remote)
        return ok_body(self.style, users=found, servers=servers)

    async def _search_remote(self, query: str) -> tuple[list, dict]:
        """§6.4.1.3 fanned out to every reachable permitted server at once, each bounded by
        the search timeout; the answers merged, and which server said what."""
        peers = [p for p in self.role.directory.peers.values()
                 if p.active and p.server_id != self.server_id]
        allowed = [p for p in peers if await self.role.acl.allows("out", p.server_id)]
        timeout = self.role.config.search_timeout_seconds

        async def ask(peer):
            d = ensureDeferred(self.role.client.call(peer.server_id, peer.address, "GET",
                                                     "/sns/find/users",
                                                     query={"queryStr": query}))
            d.addTimeout(timeout, self.clock)
            return await d

        results = await DeferredList([ensureDeferred(ask(p)) for p in allowed],
                                     consumeErrors=True)
        found, servers = [], {}
        for peer, (ok, result) in zip(allowed, results):
            if not ok:
                servers[peer.server_id] = "unreachable: %s" % result.getErrorMessage()
            elif not result.ok:
                servers[peer.server_id] = "error: %s" % result.body.get("error")
            else:
                servers[peer.server_id] = "ok"
                for info in result.body.get("users") or []:
                    if isinstance(info, dict) and isinstance(info.get("userID"), str) and \
                            info["userID"].endswith("@" + peer.server_id):
                        found.append(info)
        return found, servers

    @app.route(V1 + "users/info", methods=["GET"])
    @endpoint()
    async def user_info(self, request):
        await self.user(request)
        uid = self.role.directory.canonical(user_id(query_arg(request, "userID"), "userID"),
                                            "userID")
        server = server_of(uid)
        if server == self.server_id:
            user = await self.db.runInteraction(users.get_user, uid)
            if user is None:
                raise NotFound("no user %s" % uid, "unknown_user")
            return ok_body(self.style, userInfo=user.info(), verifyType=user.verify_type)
        answer = await self._remote(server, "GET", "/sns/users", query={"userID": uid})
        if not answer.ok:
            raise NotFound("no user %s" % uid, "unknown_user")
        return ok_body(self.style, userInfo=answer.body.get("userInfo"))

    async def _destination(self, server: str, queue: bool = False):
        """Another server this user may reach: an active member (or, for what is queued, any
        member not deregistered: a suspended one is waited for) that our access control lets
        us deliver to.  404 / 403 otherwise."""
        peer = self.role.directory.get(server)
        usable = peer is not None and (peer.status != 2 if queue else peer.active)
        if not usable:
            raise NotFound("server %s is not an active member of the federation" % server,
                           "unknown_server")
        if not await self.role.acl.allows("out", server):
            raise Forbidden("%s is refused by this server's access control" % server,
                            "refused_by_policy")
        return peer

    async def _remote(self, server: str, method: str, path: str, **kwargs):
        peer = await self._destination(server)
        try:
            return await self.role.client.call(server, peer.address, method, path, **kwargs)
        except PeerError as e:
            raise Unavailable(str(e), "peer_unreachable") from None

    # -- friends --

    @app.route(V1 + "friends", methods=["GET"])
    @endpoint()
    async def friends(self, request):
        user = await self.user(request)
        return ok_body(self.style,
                       friends=await self.db.runInteraction(messaging.friends, user.user_id))

    @app.route(V1 + "friends/requests", methods=["GET"])
    @endpoint()
    async def requests(self, request):
        user = await self.user(request)
        return ok_body(self.style, requests=await self.db.runInteraction(
            messaging.friend_requests, user.user_id))

    @app.route(V1 + "friends/requests", methods=["POST"])
    @endpoint()
    async def request_friend(self, request):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        target = self.role.directory.canonical(user_id(body.get("userID"), "userID"),
                                               "userID")
        remark = fields.text(body, "remark", required=False, max_len=256)
        server = server_of(target)
        if server != self.server_id:
            await self._destination(server)
        rid = await self.db.runInteraction(messaging.request_friend, user, target, remark,
                                           self.server_id, self.now_ms())
        self._after_write([user.user_id, target])
        return ok_body(self.style, requestID=rid)

    @app.route(V1 + "friends/requests/<request_id>/answer", methods=["POST"])
    @endpoint()
    async def answer(self, request, request_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        agree = body.get("agree")
        if not isinstance(agree, bool):
            raise BadRequest("agree must be true or false", "bad_agree")
        await self.db.runInteraction(messaging.answer_request, request_id, user, agree,
                                     self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "friends/delete", methods=["POST"])
    @endpoint()
    async def delete_friend(self, request):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        friend = self.role.directory.canonical(user_id(body.get("userID"), "userID"),
                                               "userID")
        await self.db.runInteraction(messaging.delete_friend, user, friend, self.server_id,
                                     self.now_ms())
        self._after_write([user.user_id, friend])
        return ok_body(self.style)

    def _after_write(self, user_ids) -> None:
        self.hub.poke(user_ids)
        self.role.outbox.wake()

    # -- messages --

    @app.route(V1 + "messages", methods=["POST"])
    @endpoint()
    async def send(self, request):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        recv = self.role.directory.canonical(user_id(body.get("recvID"), "recvID"), "recvID")
        message_type = body.get("messageType")
        if isinstance(message_type, str) and message_type.lower() == "repeal":
            raise BadRequest("recall with POST /api/v1/messages/<messageID>/recall",
                             "bad_messageType")
        content = body.get("content")
        if isinstance(message_type, str) and message_type.lower() in ("image", "voice", "file"):
            content = await self._media_content(user, content)
        info = parse_message_info({
            "senderID": user.user_id, "recvID": recv, "messageType": message_type,
            "type": 1, "messageID": new_object_id(self.server_id), "content": content})
        server = server_of(recv)
        if server != self.server_id:
            await self._destination(server, queue=True)
        message = await self.db.runInteraction(messaging.send_message, info, self.server_id,
                                               self.now_ms())
        self._after_write([user.user_id, recv])
        return ok_body(self.style, message=message.to_client())

    async def _media_content(self, user: users.User, content) -> dict:
        """A media message names a file the sender uploaded; size and md5 come from it."""
        if not isinstance(content, dict):
            raise BadRequest("content must be an object", "bad_content")
        file_id = content.get("fileID")
        stored = await self.db.runInteraction(files.get_file, file_id) \
            if isinstance(file_id, str) else None
        if stored is None or stored.owner_id != user.user_id or stored.path is None:
            raise NotFound("no uploaded file %s of yours" % file_id, "unknown_file")
        out = dict(content, size=stored.size, md5=stored.md5)
        out.setdefault("name", stored.name)
        return out

    # -- files --

    @app.route(V1 + "files", methods=["POST"])
    @endpoint()
    async def upload(self, request):
        """The request body is the file; ``?name=`` its name.  Spooled to disk by Twisted,
        copied with its size, MD5 and SM3 in a thread: never whole in memory."""
        user = await self.user(request)
        limit = self.role.config.max_file_bytes
        name = query_arg(request, "name", "") or ""
        if len(name) > 255 or "/" in name or "\x00" in name:
            raise BadRequest("name must be a file name", "bad_name")
        file_id = new_object_id(self.server_id)
        path = os.path.join(self.role.file_dir, file_id.split("@")[0])
        try:
            size, md5, sm3 = await deferToThread(files.hash_copy, request.content, path, limit)
        except ValueError:
            raise TooLarge("file over %d bytes" % limit, "too_large") from None
        if size == 0:
            os.unlink(path)
            raise BadRequest("the file is empty", "empty_file")
        await self.db.runInteraction(files.add_file, files.StoredFile(
            file_id, user.user_id, name, size, md5, sm3, path, self.now_ms()))
        return ok_body(self.style, fileID=file_id, size=size, md5=md5, name=name)

    @app.route(V1 + "files/<file_id>", methods=["GET"])
    async def download(self, request, file_id):
        """The file, from here or relayed from its origin server (§6.4.1.11), checked against
        the size and MD5 its message announced, then kept."""
        try:
            user = await self.user(request)
            stored = await self.db.runInteraction(files.get_file, file_id)
            if stored is None or not await self.db.runInteraction(
                    files.user_entitled, file_id, user.user_id):
                raise NotFound("no file %s for you" % file_id, "unknown_file")
            if stored.path is None:
                stored = await self._relay(stored)
        except Exception as exc:
            return await render_failure(self, request, exc, signed=False)
        request.setHeader(b"content-disposition", _disposition(stored.name))
        return await send_file(request, stored.path)

    async def _relay(self, stored: files.StoredFile) -> files.StoredFile:
        pending = self._relays.get(stored.file_id)
        if pending is None:
            pending = self._relays[stored.file_id] = ensureDeferred(self._fetch(stored))
            pending.addBoth(lambda r: (self._relays.pop(stored.file_id, None), r)[1])
        return await _share(pending)

    async def _fetch(self, stored: files.StoredFile) -> files.StoredFile:
        origin = server_of(stored.file_id)
        peer = await self._destination(origin, queue=True)
        if not peer.active:
            raise Unavailable("server %s is not reachable now" % origin, "peer_unreachable")
        path = os.path.join(self.role.file_dir, "cache-" + stored.file_id.split("@")[0])
        try:
            sm3 = await files.fetch_checked(
                self.role.client, origin, peer.address, stored.file_id, path, stored.size,
                stored.md5, min(stored.size, self.role.config.max_file_bytes))
        except PeerError as e:
            raise Unavailable("fetching %s failed: %s" % (stored.file_id, e),
                              "peer_unreachable") from None
        except files.FileMismatch as e:
            raise Unavailable(str(e), "file_mismatch") from None
        await self.db.runInteraction(files.set_cached, stored.file_id, path, sm3)
        return attrs.evolve(stored, path=path, sm3=sm3)

    @app.route(V1 + "messages/<message_id>", methods=["GET"])
    @endpoint()
    async def message(self, request, message_id):
        user = await self.user(request)
        message = await self.db.runInteraction(messaging.message_state, message_id,
                                               user.user_id)
        return ok_body(self.style, message=message.to_client())

    @app.route(V1 + "messages/<message_id>/recall", methods=["POST"])
    @endpoint()
    async def recall(self, request, message_id):
        user = await self.user(request)
        await self.db.runInteraction(messaging.recall, message_id, user, self.server_id,
                                     self.now_ms(),
                                     int(self.role.config.recall_window_seconds * 1000))
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "conversations", methods=["GET"])
    @endpoint()
    async def conversations(self, request):
        user = await self.user(request)
        return ok_body(self.style, conversations=await self.db.runInteraction(
            messaging.conversations, user.user_id))

    @app.route(V1 + "conversations/<peer_id>/messages", methods=["GET"])
    @endpoint()
    async def history(self, request, peer_id):
        user = await self.user(request)
        peer = self.role.directory.canonical(user_id(peer_id, "peerID"), "peerID")
        before = int_arg(request, "before", 0, 2 ** 62) or None
        limit = int_arg(request, "limit", 50, 200) or 50
        page = await self.db.runInteraction(messaging.history, user.user_id, peer, before,
                                            limit)
        return ok_body(self.style, messages=[m.to_client() for m in page],
                       nextBefore=page[-1].seq if len(page) == limit else None)

    # -- events --

    @app.route(V1 + "events", methods=["GET"])
    @endpoint()
    async def events(self, request):
        """Long poll: events after ``since``, waiting up to ``wait`` seconds (max 60) for
        the first one."""
        user = await self.user(request)
        since = int_arg(request, "since", 0, 2 ** 62)
        wait = int_arg(request, "wait", 0, 60)
        rows = await self._events_after(user.user_id, since, wait)
        return ok_body(self.style, events=[_event(r) for r in rows],
                       last=rows[-1][0] if rows else since)

    async def _events_after(self, user_id: str, since: int, wait: float) -> list:
        deadline = self.clock.seconds() + wait
        while True:
            waiter = self.hub.wait(user_id)
            rows = await self.db.runInteraction(messaging.events_since, user_id, since)
            left = deadline - self.clock.seconds()
            if rows or left <= 0:
                waiter.addErrback(lambda _: None)  # nobody waits on it: a quiet cancel
                waiter.cancel()
                return rows
            timer = self.clock.callLater(left, lambda w=waiter: w.called or w.callback(None))
            await waiter
            if timer.active():
                timer.cancel()

    @app.route(V1 + "events/stream", methods=["GET"])
    async def stream(self, request):
        """Server-sent events: every event after ``since`` (or Last-Event-ID), then live."""
        try:
            user = await self.user(request)
        except Unauthorized as e:
            request.setResponseCode(401)
            request.setHeader(b"content-type", JSON_TYPE)
            return json.dumps({"code": 1, "error": e.message, "errcode": e.errcode}).encode()
        last = request.getHeader(b"last-event-id")
        since = int(last) if last and last.isdigit() else int_arg(request, "since", 0,
                                                                        2 ** 62)
        request.setHeader(b"content-type", b"text/event-stream;charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        gone = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))
        request.write(b": imfed event stream\n\n")
        while not gone:
            rows = await self._events_after(user.user_id, since, 15)
            if gone:
                break
            if not rows:
                request.write(b": keep-alive\n\n")
                continue
            for seq, kind, payload in rows:
                request.write(b"id: %d\nevent: %s\ndata: %s\n\n"
                              % (seq, kind.encode(), payload.encode("utf-8")))
            since = rows[-1][0]
        return b""


def _bearer(request) -> str:
    raw = request.getHeader(b"authorization") or b""
    scheme, _, token = raw.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _source(request) -> str:
    return getattr(request.getClientAddress(), "host", "?")


def _disposition(name: str) -> bytes:
    from urllib.parse import quote

    return ("attachment; filename*=UTF-8''%s" % quote(name or "file")).encode("ascii")


def _share(d):
    """A Deferred of its own for each waiter on one shared result."""
    from twisted.internet.defer import Deferred

    mine = Deferred()

    def fire(result):
        if isinstance(result, Failure):
            mine.errback(result)
        else:
            mine.callback(result)
        return result

    d.addBoth(fire)
    d.addErrback(lambda f: None)
    return mine


def _event(row) -> dict:
    seq, kind, payload = row
    return {"seq": seq, "type": kind, "data": json.loads(payload)}

