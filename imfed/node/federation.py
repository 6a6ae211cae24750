"""The interconnection interface other servers call (§6.2.8, §6.2.9, §6.4.1, PROFILE.md §5).

Every call is signed and mutually authenticated; the access control list is applied to the
calling server; a server may only speak for its own users, and only about ours.
"""

from __future__ import annotations

import attrs
from klein import Klein

from ..web import (Endpoints, endpoint, install_errors, read_json, render_failure,
                   required_arg, send_file, sign_answer, sns_route, verify_signed)
from ..wire import fields
from ..wire.errors import BadRequest, Forbidden, NotFound, Style, ok_body
from ..wire.messages import object_id, parse_message_info, split_id, user_id
from . import files, messaging, users
from .acl import AccessControl
from .directory import Directory
from .events import EventHub

__all__ = ["FederationApi"]


class FederationApi(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.INTERCONNECT

    def __init__(self, *, server_id: str, signing_key, verifier, db, directory: Directory,
                 acl: AccessControl, hub: EventHub, clock, max_body: int) -> None:
        self.server_id, self.signing_key, self.verifier = server_id, signing_key, verifier
        self.db, self.directory, self.acl, self.hub = db, directory, acl, hub
        self.clock, self.max_body = clock, max_body

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def authorize(self, request) -> None:
        origin = request.signed.origin
        if origin == self.directory.management_id:
            return
        if not await self.acl.allows("in", origin):
            raise Forbidden("%s is refused by this server's access control" % origin,
                            "refused_by_policy")

    # -- helpers --

    def _origin_user(self, request, value, field: str) -> str:
        """A user ID that must belong to the calling server (in its serverId form)."""
        uid = self.directory.canonical(user_id(value, field), field)
        if split_id(uid)[1] != request.signed.origin:
            raise Forbidden("%s %s does not belong to the calling server" % (field, uid),
                            "not_your_user")
        return uid

    async def _local_user(self, value, field: str) -> users.User:
        uid = self.directory.canonical(user_id(value, field), field)
        if split_id(uid)[1] != self.server_id:
            raise NotFound("%s %s is not a user of this server" % (field, uid), "unknown_user")
        user = await self.db.runInteraction(users.get_user, uid)
        if user is None:
            raise NotFound("no user %s" % uid, "unknown_user")
        return user

    # -- the directory --

    @sns_route(app, "restApi/imServer/servermgr/receivenotify")
    @endpoint(signed=True)
    async def receivenotify(self, request):
        if request.signed.origin != self.directory.management_id:
            raise Forbidden("only the management server notifies", "not_management")
        body = read_json(request, self.max_body)
        fields.server_id(body.get("serverId"))
        self.directory.request_refresh()
        return {"code": "0", "desc": "OK"}

    # -- users (§6.4.1.3, 6.4.1.4, 6.4.1.8, 6.4.1.9) --

    @sns_route(app, "find/users", methods=("GET",))
    @endpoint(signed=True)
    async def find_users(self, request):
        query = required_arg(request, "queryStr").strip()
        if not query or len(query) > 64:
            raise BadRequest("queryStr must be 1-64 characters", "bad_queryStr")
        found = await self.db.runInteraction(users.search, query)
        return ok_body(self.style, users=[u.info() for u in found])

    @sns_route(app, "verify/users", methods=("GET",))
    @endpoint(signed=True)
    async def verify_users(self, request):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        return ok_body(self.style, verifyType=user.verify_type)

    @sns_route(app, "users", methods=("GET",))
    @endpoint(signed=True)
    async def get_user(self, request):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        return ok_body(self.style, userInfo=user.info())

    @sns_route(app, "query/users", methods=("GET",))
    @endpoint(signed=True)
    async def query_users(self, request):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        owner = self._origin_user(request, required_arg(request, "ownerID"), "ownerID")
        friend = await self.db.runInteraction(messaging.is_friend, user.user_id, owner)
        return ok_body(self.style, isFriend=1 if friend else 2)

    # -- friends (§6.4.1.5-6.4.1.7) --

    @sns_route(app, "add/users")
    @endpoint(signed=True)
    async def add_users(self, request):
        body = read_json(request, self.max_body)
        target = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(request, body.get("ownerID"), "ownerID")
        remark = fields.text(body, "remark", required=False, max_len=256)
        info = body.get("userInfo") or {}
        if not isinstance(info, dict):
            raise BadRequest("userInfo must be an object", "bad_userInfo")
        await self.db.runInteraction(messaging.receive_friend_request, owner, target.user_id,
                                     remark, _user_info(info, owner), self.now_ms())
        self.hub.poke([target.user_id])
        return ok_body(self.style)

    @sns_route(app, "rsp/users")
    @endpoint(signed=True)
    async def rsp_users(self, request):
        body = read_json(request, self.max_body)
        requester = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(request, body.get("ownerID"), "ownerID")
        agree = fields.optional_int(body, "isAgree", default=-1)
        if agree not in (1, 2):
            raise BadRequest("isAgree is 1 (agree) or 2 (refuse)", "bad_isAgree")
        info = body.get("userInfo") or {}
        if not isinstance(info, dict):
            raise BadRequest("userInfo must be an object", "bad_userInfo")
        await self.db.runInteraction(messaging.receive_friend_answer, requester.user_id, owner,
                                     agree == 1, _user_info(info, owner), self.now_ms())
        self.hub.poke([requester.user_id])
        return ok_body(self.style)

    @sns_route(app, "del/users")
    @endpoint(signed=True)
    async def del_users(self, request):
        body = read_json(request, self.max_body)
        friend = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(request, body.get("ownerID"), "ownerID")
        await self.db.runInteraction(messaging.receive_friend_delete, friend.user_id, owner,
                                     self.now_ms())
        self.hub.poke([friend.user_id])
        return ok_body(self.style)

    # -- messages and files (§6.2.8, §6.2.9) --

    @sns_route(app, "chat")
    @endpoint(signed=True)
    async def chat(self, request):
        body = read_json(request, self.max_body)
        info = parse_message_info(body.get("messageInfo"))
        origin = request.signed.origin
        sender = self._origin_user(request, info.sender_id, "senderID")
        opaque, part = split_id(info.message_id)
        if self.directory.resolve(part) != origin:
            raise BadRequest("messageID must be made by the sender's server", "bad_messageID")
        if info.chat_type == 2:
            raise NotFound("no group %s here" % info.recv_id, "unknown_group")
        recv = await self._local_user(info.recv_id, "recvID")
        content = info.content
        if "fileID" in content:
            file_opaque, file_part = split_id(content["fileID"])
            if self.directory.resolve(file_part) != origin:
                raise BadRequest("fileID must name the sender's server", "bad_fileID")
            content = dict(content, fileID="%s@%s" % (file_opaque, origin))
        # Stored and passed on in the serverId form, whichever form it came in (§6.2.2).
        info = attrs.evolve(info, sender_id=sender, recv_id=recv.user_id,
                            message_id="%s@%s" % (opaque, origin), content=content)
        await self.db.runInteraction(messaging.receive_message, info, self.now_ms())
        self.hub.poke([info.recv_id])
        return ok_body(self.style)

    @sns_route(app, "download/file", methods=("GET",))
    async def download_file(self, request):
        """§6.2.9: a file of one of our users, to a server with a user it was sent to.  The
        answer is the file itself, signed over its SM3."""
        try:
            await verify_signed(self, request)
            file_id = object_id(required_arg(request, "fileID"), "fileID")
            stored = None
            opaque, part = split_id(file_id)
            if self.directory.resolve(part) == self.server_id:
                file_id = "%s@%s" % (opaque, self.server_id)
                stored = await self.db.runInteraction(files.get_file, file_id)
            if stored is None or stored.path is None:
                raise NotFound("no file %s" % file_id, "unknown_file")
            if not await self.db.runInteraction(files.server_entitled, file_id,
                                                request.signed.origin):
                raise Forbidden("no user of %s was sent %s" % (request.signed.origin, file_id),
                                "not_entitled")
        except Exception as exc:
            return render_failure(self, request, exc, signed=True)
        sign_answer(self, request, 200, body_sm3=stored.sm3)
        return await send_file(request, stored.path)


def _user_info(info: dict, owner: str) -> dict:
    """A remote user's userInfo as we keep it: known string fields only, userID forced."""
    out = {k: info[k] for k in ("phoneNumber", "remark", "name", "portrait")
           if isinstance(info.get(k), str) and len(info[k]) <= 512}
    if isinstance(info.get("updateTime"), int):
        out["updateTime"] = info["updateTime"]
    out["userID"] = owner
    return out
