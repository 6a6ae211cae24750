"""The interconnection interface other servers call (§6.2.8-9, §6.4.1, docs/protocol.md §5).

Every call is signed and mutually authenticated; the access control list is applied to the
calling server; a server may only speak for its own users, and only about ours.
"""

from __future__ import annotations

import os

import attrs
from klein import Klein

from ..web import (Endpoints, endpoint, install_errors, int_arg, query_arg, read_json,
                   render_failure, required_arg, send_file, sign_answer, sns_route,
                   verify_signed)
from ..wire import fields
from ..peer import PeerError
from ..wire.errors import BadRequest, Forbidden, NotFound, Style, TooLarge, Unavailable, ok_body
from ..wire.messages import new_object_id, object_id, parse_message_info, split_id, user_id
from . import files, group_messages, groups, messaging, users
from .acl import AccessControl
from .directory import Directory
from .events import EventHub

__all__ = ["FederationApi"]


class FederationApi(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.INTERCONNECT

    def __init__(self, *, server_id: str, signing_key, verifier, db, directory: Directory,
                 acl: AccessControl, hub: EventHub, outbox, client, clock, max_body: int,
                 file_dir: str, max_file_bytes: int, recall_limit_ms: int) -> None:
        self.server_id, self.signing_key, self.verifier = server_id, signing_key, verifier
        self.db, self.directory, self.acl, self.hub = db, directory, acl, hub
        self.outbox, self.client, self.clock, self.max_body = outbox, client, clock, max_body
        self.file_dir, self.max_file_bytes = file_dir, max_file_bytes
        self.recall_limit_ms = recall_limit_ms

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
        query = fields.search_query(required_arg(request, "queryStr"), "queryStr")
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
            group_id = self._group_id(info.recv_id, "recvID")
            if split_id(group_id)[1] != self.server_id:
                raise NotFound("no group %s here" % group_id, "unknown_group")
            info = attrs.evolve(info, sender_id=sender, recv_id=group_id,
                                message_id="%s@%s" % (opaque, origin))
            if await self.db.runInteraction(group_messages.has_message, info.message_id):
                return ok_body(self.style)  # a repeat (docs/protocol.md §5)
            if "fileID" in info.content:
                info = await self._copy_group_file(info, origin)
            await self.db.runInteraction(group_messages.post_message, info, self.server_id,
                                         self.now_ms())
            self._wrote()
            return ok_body(self.style)
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
        await self.db.runInteraction(messaging.receive_message, info, self.now_ms(),
                                     self.recall_limit_ms)
        self.hub.poke([info.recv_id])
        return ok_body(self.style)

    # -- groups (§6.4.2) --

    def _group_id(self, value, field: str = "groupID") -> str:
        opaque, part = split_id(object_id(value, field))
        server_id = self.directory.resolve(part)
        if server_id is None:
            raise NotFound("%s %s: no server of the federation there" % (field, value),
                           "unknown_server")
        return "%s@%s" % (opaque, server_id)

    async def _master(self, request, group_id: str | None = None) -> groups.Group:
        group_id = group_id or self._group_id(required_arg(request, "groupID"))
        g = await self.db.runInteraction(groups.get_group, group_id)
        if g is None or not g.master or g.dissolved:
            raise NotFound("no group %s here" % group_id, "unknown_group")
        return g

    def _from_master(self, request, group_id: str) -> None:
        if split_id(group_id)[1] != request.signed.origin:
            raise Forbidden("only the master of %s speaks for it" % group_id, "not_master")

    async def _member_of(self, request, g: groups.Group, value, field: str) -> str:
        uid = self._origin_user(request, value, field)
        if await self.db.runInteraction(groups.member_type, g.group_id, uid) is None:
            raise Forbidden("%s is not a member of %s" % (uid, g.group_id), "not_member")
        return uid

    async def _copy_group_file(self, info, origin: str):
        """§6.4.2.10: the master copies a member's file from the member's server, checks it
        against the announced size and MD5, and announces its own fileID instead."""
        content = info.content
        opaque, part = split_id(content["fileID"])
        if self.directory.resolve(part) != origin:
            raise BadRequest("fileID must name the sender's server", "bad_fileID")
        if content["size"] > self.max_file_bytes:
            raise TooLarge("file over %d bytes" % self.max_file_bytes, "too_large")
        peer = self.directory.active(origin)
        file_id = new_object_id(self.server_id)
        path = os.path.join(self.file_dir, file_id.split("@")[0])
        try:
            sm3 = await files.fetch_checked(
                self.client, origin, peer.address, "%s@%s" % (opaque, origin), path,
                content["size"], content["md5"], content["size"])
        except PeerError as e:
            raise Unavailable("copying %s failed: %s" % (content["fileID"], e),
                              "peer_unreachable") from None
        except files.FileMismatch:
            raise BadRequest("the file does not match its size and md5",
                             "file_mismatch") from None
        await self.db.runInteraction(files.add_file, files.StoredFile(
            file_id, info.sender_id, content.get("name", ""), content["size"],
            content["md5"], sm3, path, self.now_ms()))
        return attrs.evolve(info, content=dict(content, fileID=file_id))

    def _wrote(self) -> None:
        self.hub.poke()
        self.outbox.wake()

    @sns_route(app, "invite/grpreq")
    @endpoint(signed=True)
    async def invite_grpreq(self, request):
        body = read_json(request, self.max_body)
        req = body.get("reqInfo")
        if not isinstance(req, dict) or not isinstance(req.get("groupInfo"), dict):
            raise BadRequest("reqInfo.groupInfo is required", "bad_reqInfo")
        group_id = self._group_id(req["groupInfo"].get("groupID"))
        name = req["groupInfo"].get("groupName", "")
        if not isinstance(name, str) or len(name) > 64:
            raise BadRequest("groupName must be a string", "bad_groupName")
        invitees = req.get("inviteUsers")
        if not isinstance(invitees, list) or not invitees or len(invitees) > 500:
            raise BadRequest("inviteUsers must list 1-500 user IDs", "bad_inviteUsers")
        info = req.get("userInfo") if isinstance(req.get("userInfo"), dict) else {}
        if split_id(group_id)[1] == self.server_id:
            # A member on the calling server invites: we are the master, we invite.
            inviter = self._origin_user(request, body.get("userID"), "userID")
            await self._master(request, group_id)
            wanted = [self.directory.canonical(user_id(u, "inviteUsers"), "inviteUsers")
                      for u in invitees]
            await self.db.runInteraction(groups.invite, group_id, inviter,
                                         _user_info(info, inviter), wanted, self.server_id,
                                         self.now_ms())
            self._wrote()
            return ok_body(self.style)
        # From the master: the inviter is any member, on any server; the master vouches.
        self._from_master(request, group_id)
        inviter = self.directory.canonical(user_id(body.get("userID"), "userID"), "userID")
        local = [(await self._local_user(u, "inviteUsers")).user_id for u in invitees]
        await self.db.runInteraction(groups.receive_invitation, group_id, name, inviter,
                                     _user_info(info, inviter), local, self.now_ms())
        self.hub.poke(local)
        return ok_body(self.style)

    @sns_route(app, "invite/grprep")
    @endpoint(signed=True)
    async def invite_grprep(self, request):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        invitee = self._origin_user(request, body.get("ownerID"), "ownerID")
        result = fields.optional_int(body, "respResult", default=-1)
        if result not in (1, 2):
            raise BadRequest("respResult is 1 (agree) or 2 (refuse)", "bad_respResult")
        info = body.get("userInfo") if isinstance(body.get("userInfo"), dict) else {}
        await self.db.runInteraction(groups.receive_answer, g.group_id, invitee, result == 1,
                                     _user_info(info, invitee), self.server_id, self.now_ms())
        self._wrote()
        return ok_body(self.style)

    @sns_route(app, "quit/grpmember")
    @endpoint(signed=True)
    async def quit_grpmember(self, request):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        uid = await self._member_of(request, g, body.get("ownerID"), "ownerID")
        await self.db.runInteraction(groups.receive_quit, g.group_id, uid, self.server_id,
                                     self.now_ms())
        self._wrote()
        return ok_body(self.style)

    @sns_route(app, "remove/grpmembers")
    @endpoint(signed=True)
    async def remove_grpmembers(self, request):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        self._origin_user(request, body.get("ownerID"), "ownerID")
        # Only the owner removes members (§6.4.2.6), and the owner is a user of the master
        # (§6.4.2.1): no call from another server can be the owner's.
        raise Forbidden("only the owner of %s removes members" % g.group_id, "not_owner")

    @sns_route(app, "update/grpinfo")
    @endpoint(signed=True)
    async def update_grpinfo(self, request):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        uid = await self._member_of(request, g, body.get("ownerID"), "ownerID")
        # Owner and admins are users of the master server (§6.4.2.1): nobody calling from
        # another server may change the group.
        raise Forbidden("%s is neither the owner nor an admin" % uid, "not_admin")

    @sns_route(app, "grpinfo", methods=("GET",))
    @endpoint(signed=True)
    async def grpinfo(self, request):
        g = await self._master(request)
        await self._member_of(request, g, required_arg(request, "userID"), "userID")
        count = len(await self.db.runInteraction(groups.members, g.group_id))
        return ok_body(self.style, gset=g.gset(), groupInfo=g.info(count))

    @sns_route(app, "grpmembers", methods=("GET",))
    @endpoint(signed=True)
    async def grpmembers(self, request):
        g = await self._master(request)
        await self._member_of(request, g, required_arg(request, "userID"), "userID")
        return ok_body(self.style,
                       members=await self.db.runInteraction(groups.members, g.group_id))

    @sns_route(app, "grpchat", methods=("GET",))
    @endpoint(signed=True)
    async def grpchat(self, request):
        """History newer than messageID (§6.4.2.12), to a server with a member."""
        g = await self._master(request)
        by_server = await self.db.runInteraction(groups.servers_with_members, g.group_id)
        if request.signed.origin not in by_server:
            raise Forbidden("%s has no member in %s" % (request.signed.origin, g.group_id),
                            "not_member")
        after = query_arg(request, "messageID", "") or ""
        limit = int_arg(request, "limit", 100, 100) or 100
        page, newest = await self.db.runInteraction(group_messages.history, g.group_id, after,
                                                    limit)
        return ok_body(self.style, newestMessageID=newest,
                       messages=[m["messageInfo"] for m in page])

    @sns_route(app, "notify/grpchat")
    @endpoint(signed=True)
    async def notify_grpchat(self, request):
        group_id = self._group_id(required_arg(request, "groupID"))
        self._from_master(request, group_id)
        body = read_json(request, self.max_body)
        info = parse_message_info(body.get("messageInfo"))
        ids = body.get("userIDs")
        if not isinstance(ids, list) or not ids or len(ids) > 5000:
            raise BadRequest("userIDs must list the members on this server", "bad_userIDs")
        local = [(await self._local_user(u, "userIDs")).user_id for u in ids]
        sender = self.directory.canonical(info.sender_id, "senderID")
        info = attrs.evolve(info, sender_id=sender, recv_id=group_id)
        shown = await self.db.runInteraction(group_messages.receive_group_chat, group_id,
                                             local, info, self.now_ms())
        self.hub.poke(shown)
        return ok_body(self.style)

    @sns_route(app, "notify/grpnotify")
    @endpoint(signed=True)
    async def notify_grpnotify(self, request):
        group_id = self._group_id(required_arg(request, "groupID"))
        self._from_master(request, group_id)
        body = read_json(request, self.max_body)
        oper = fields.optional_int(body, "operType", default=0)
        if oper not in range(1, 8):
            raise BadRequest("operType is 1 to 7", "bad_operType")
        if body.get("users") is not None and not isinstance(body.get("users"), list):
            raise BadRequest("users must be a list of userInfo", "bad_users")
        await self.db.runInteraction(groups.receive_notify, group_id, dict(body, operType=oper),
                                     self.server_id, self.now_ms())
        self.hub.poke()
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
            return await render_failure(self, request, exc, signed=True)
        await sign_answer(self, request, 200, body_sm3=stored.sm3)
        return await send_file(request, stored.path)


def _user_info(info: dict, owner: str) -> dict:
    """A remote user's userInfo as we keep it: known string fields only, userID forced."""
    out = {k: info[k] for k in ("phoneNumber", "remark", "name", "portrait")
           if isinstance(info.get(k), str) and len(info[k]) <= 512}
    if isinstance(info.get("updateTime"), int):
        out["updateTime"] = info["updateTime"]
    out["userID"] = owner
    return out
