"""The interconnection interface other servers call (§6.2.8-9, §6.4.1, docs/protocol.md §5).

Every call is signed and mutually authenticated; the access control list is applied to the
calling server; a server may only speak for its own users, and only about ours.  Each route
checks exactly that (who the IDs belong to) and hands the rest to a handler.
"""

from __future__ import annotations

from typing import Callable

import attrs
from klein import Klein

from ...web import (SIGNED, Endpoints, endpoint, install_errors, int_arg, query_arg, read_json,
                    required_arg, send_file, sign_answer, sns_route)
from ...wire import fields, paths
from ...wire.errors import BadRequest, Forbidden, NotFound, Style, ok_body
from ...wire.message_info import object_id, parse_message_info, split_id, user_id
from ...wire.records import Answer, ChatType, OperType
from ..handlers.access import AccessControl
from ..directory import Directory
from ..services.refresher import Refresher
from ..handlers.files import FilesHandler
from ..handlers.friends import FriendsHandler
from ..handlers.groups import GroupsHandler
from ..handlers.messages import MessagesHandler
from ..handlers.users import UsersHandler

__all__ = ["FederationRoutes"]

_ANSWERS = tuple(Answer)


class FederationRoutes(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.INTERCONNECT

    def __init__(self, *, directory: Directory, refresher: Refresher, acl: AccessControl,
                 verifier, signing_key, users: UsersHandler, friends: FriendsHandler,
                 messages: MessagesHandler, groups: GroupsHandler, files: FilesHandler,
                 max_body: int) -> None:
        self.directory, self.refresher, self.acl = directory, refresher, acl
        self.server_id = directory.server_id
        self.verifier, self.signing_key = verifier, signing_key
        self.users, self.friends, self.messages = users, friends, messages
        self.groups, self.files = groups, files
        self.max_body = max_body

    peer_answered: Callable[[str], None] | None = None
    """Told each server whose signed call came in (the outbox tries what it owes it now)."""

    async def authorize(self, request) -> None:
        origin = request.signed.origin
        if origin == self.directory.management_id:
            return
        if not await self.acl.allows("in", origin):
            raise Forbidden("%s is refused by this server's access control" % origin,
                            "refused_by_policy")
        if self.peer_answered is not None:
            self.peer_answered(origin)

    # -- who an ID belongs to --

    def _origin_user(self, origin: str, value, field: str) -> str:
        """A user ID that must belong to the calling server (in its serverId form)."""
        uid = self.directory.canonical(user_id(value, field), field)
        if split_id(uid)[1] != origin:
            raise Forbidden("%s %s does not belong to the calling server" % (field, uid),
                            "not_your_user")
        return uid

    def _ours(self, value, field: str) -> str:
        """A user ID of this server (canonical), not yet looked up; 404 for another's."""
        uid = self.directory.canonical(user_id(value, field), field)
        if split_id(uid)[1] != self.server_id:
            raise NotFound("%s %s is not a user of this server" % (field, uid), "unknown_user")
        return uid

    async def _local_user(self, value, field: str):
        return await self.users.local(self._ours(value, field))

    def _group_id(self, value, field: str = "groupID") -> str:
        opaque, part = split_id(object_id(value, field))
        server_id = self.directory.resolve(part)
        if server_id is None:
            raise NotFound("%s %s: no server of the federation there" % (field, value),
                           "unknown_server")
        return "%s@%s" % (opaque, server_id)

    async def _master(self, request, group_id: str | None = None):
        return await self.groups.mastered(group_id or
                                          self._group_id(required_arg(request, "groupID")))

    def _from_master(self, origin: str, group_id: str) -> None:
        if split_id(group_id)[1] != origin:
            raise Forbidden("only the master of %s speaks for it" % group_id, "not_master")

    async def _member_of(self, origin: str, g, value, field: str) -> str:
        uid = self._origin_user(origin, value, field)
        await self.groups.require_member(g, uid)
        return uid

    # -- the directory --

    @sns_route(app, paths.RECEIVENOTIFY)
    @endpoint(SIGNED)
    async def receivenotify(self, request, origin):
        if origin != self.directory.management_id:
            raise Forbidden("only the management server notifies", "not_management")
        body = read_json(request, self.max_body)
        fields.server_id(body.get("serverId"))
        self.refresher.request_refresh()
        return {"code": "0", "desc": "OK"}

    # -- users (§6.4.1.3, 6.4.1.4, 6.4.1.8, 6.4.1.9) --

    @sns_route(app, paths.FIND_USERS)
    @endpoint(SIGNED)
    async def find_users(self, request, origin):
        query = fields.search_query(required_arg(request, "queryStr"), "queryStr")
        found = await self.users.find_local(query)
        return ok_body(self.style, users=[u.info() for u in found])

    @sns_route(app, paths.VERIFY_USERS)
    @endpoint(SIGNED)
    async def verify_users(self, request, origin):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        return ok_body(self.style, verifyType=user.verify_type)

    @sns_route(app, paths.USERS)
    @endpoint(SIGNED)
    async def get_user(self, request, origin):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        return ok_body(self.style, userInfo=user.info())

    @sns_route(app, paths.QUERY_USERS)
    @endpoint(SIGNED)
    async def query_users(self, request, origin):
        user = await self._local_user(required_arg(request, "userID"), "userID")
        owner = self._origin_user(origin, required_arg(request, "ownerID"), "ownerID")
        friend = await self.users.is_friend(user.user_id, owner)
        return ok_body(self.style, isFriend=Answer.of(friend))

    # -- friends (§6.4.1.5-6.4.1.7) --

    @sns_route(app, paths.ADD_USERS)
    @endpoint(SIGNED)
    async def add_users(self, request, origin):
        body = read_json(request, self.max_body)
        target = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(origin, body.get("ownerID"), "ownerID")
        remark = fields.name(body, "remark", required=False, max_len=256, newlines=True)
        await self.friends.receive_request(owner, target.user_id, remark,
                                           _user_info(body.get("userInfo")))
        return ok_body(self.style)

    @sns_route(app, paths.RSP_USERS)
    @endpoint(SIGNED)
    async def rsp_users(self, request, origin):
        body = read_json(request, self.max_body)
        requester = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(origin, body.get("ownerID"), "ownerID")
        agree = fields.optional_int(body, "isAgree", default=-1)
        if agree not in _ANSWERS:
            raise BadRequest("isAgree is 1 (agree) or 2 (refuse)", "bad_isAgree")
        await self.friends.receive_answer(requester.user_id, owner, agree == Answer.AGREE,
                                          _user_info(body.get("userInfo")))
        return ok_body(self.style)

    @sns_route(app, paths.DEL_USERS)
    @endpoint(SIGNED)
    async def del_users(self, request, origin):
        body = read_json(request, self.max_body)
        friend = await self._local_user(body.get("userID"), "userID")
        owner = self._origin_user(origin, body.get("ownerID"), "ownerID")
        await self.friends.receive_delete(friend.user_id, owner)
        return ok_body(self.style)

    # -- messages and files (§6.2.8, §6.2.9) --

    @sns_route(app, paths.CHAT)
    @endpoint(SIGNED)
    async def chat(self, request, origin):
        body = read_json(request, self.max_body)
        info = parse_message_info(body.get("messageInfo"))
        sender = self._origin_user(origin, info.sender_id, "senderID")
        opaque, part = split_id(info.message_id)
        if self.directory.resolve(part) != origin:
            raise BadRequest("messageID must be made by the sender's server", "bad_messageID")
        message_id = "%s@%s" % (opaque, origin)
        if info.chat_type == ChatType.GROUP:
            group_id = self._group_id(info.recv_id, "recvID")
            if split_id(group_id)[1] != self.server_id:
                raise NotFound("no group %s here" % group_id, "unknown_group")
            await self.groups.receive_message(attrs.evolve(
                info, sender_id=sender, recv_id=group_id, message_id=message_id), origin)
            return ok_body(self.style)
        # Whether the user exists is checked in the message's own transaction (404 then).
        recv = self._ours(info.recv_id, "recvID")
        await self.messages.receive(attrs.evolve(info, sender_id=sender, recv_id=recv,
                                                 message_id=message_id), origin)
        return ok_body(self.style)

    @sns_route(app, paths.DOWNLOAD_FILE)
    @endpoint(SIGNED, raw=True)
    async def download_file(self, request, origin):
        """§6.2.9: a file of one of our users, to a server with a user it was sent to.  The
        answer is the file itself, signed over its SM3."""
        stored = await self.files.for_server(object_id(required_arg(request, "fileID"),
                                                       "fileID"), origin)
        await sign_answer(self, request, 200, body_sm3=stored.sm3)
        return await send_file(request, stored.path)

    # -- groups (§6.4.2) --

    @sns_route(app, paths.INVITE_GRPREQ)
    @endpoint(SIGNED)
    async def invite_grpreq(self, request, origin):
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
        info = req.get("userInfo")
        if split_id(group_id)[1] == self.server_id:
            # A member on the calling server invites: we are the master, we invite.
            inviter = self._origin_user(origin, body.get("userID"), "userID")
            await self.groups.mastered(group_id)
            wanted = [self.directory.canonical(user_id(u, "inviteUsers"), "inviteUsers")
                      for u in invitees]
            await self.groups.invite_for_member(group_id, inviter, info, wanted)
            return ok_body(self.style)
        # From the master: the inviter is any member, on any server; the master vouches.
        self._from_master(origin, group_id)
        inviter = self.directory.canonical(user_id(body.get("userID"), "userID"), "userID")
        local = [(await self._local_user(u, "inviteUsers")).user_id for u in invitees]
        await self.groups.receive_invitation(group_id, name, inviter, info, local)
        return ok_body(self.style)

    @sns_route(app, paths.INVITE_GRPREP)
    @endpoint(SIGNED)
    async def invite_grprep(self, request, origin):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        invitee = self._origin_user(origin, body.get("ownerID"), "ownerID")
        result = fields.optional_int(body, "respResult", default=-1)
        if result not in _ANSWERS:
            raise BadRequest("respResult is 1 (agree) or 2 (refuse)", "bad_respResult")
        await self.groups.receive_answer(g, invitee, result == Answer.AGREE,
                                         body.get("userInfo"))
        return ok_body(self.style)

    @sns_route(app, paths.QUIT_GRPMEMBER)
    @endpoint(SIGNED)
    async def quit_grpmember(self, request, origin):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        uid = await self._member_of(origin, g, body.get("ownerID"), "ownerID")
        await self.groups.receive_quit(g, uid)
        return ok_body(self.style)

    @sns_route(app, paths.REMOVE_GRPMEMBERS)
    @endpoint(SIGNED)
    async def remove_grpmembers(self, request, origin):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        self._origin_user(origin, body.get("ownerID"), "ownerID")
        # Only the owner removes members (§6.4.2.6), and the owner is a user of the master
        # (§6.4.2.1): no call from another server can be the owner's.
        raise Forbidden("only the owner of %s removes members" % g.group_id, "not_owner")

    @sns_route(app, paths.UPDATE_GRPINFO)
    @endpoint(SIGNED)
    async def update_grpinfo(self, request, origin):
        g = await self._master(request)
        body = read_json(request, self.max_body)
        uid = await self._member_of(origin, g, body.get("ownerID"), "ownerID")
        # Owner and admins are users of the master server (§6.4.2.1): nobody calling from
        # another server may change the group.
        raise Forbidden("%s is neither the owner nor an admin" % uid, "not_admin")

    @sns_route(app, paths.GRPINFO)
    @endpoint(SIGNED)
    async def grpinfo(self, request, origin):
        g = await self._master(request)
        await self._member_of(origin, g, required_arg(request, "userID"), "userID")
        gset, info = await self.groups.group_info(g)
        return ok_body(self.style, gset=gset, groupInfo=info)

    @sns_route(app, paths.GRPMEMBERS)
    @endpoint(SIGNED)
    async def grpmembers(self, request, origin):
        g = await self._master(request)
        await self._member_of(origin, g, required_arg(request, "userID"), "userID")
        return ok_body(self.style, members=await self.groups.members(g))

    @sns_route(app, paths.GRPCHAT)
    @endpoint(SIGNED)
    async def grpchat(self, request, origin):
        """History newer than messageID (§6.4.2.12), to a server with a member."""
        g = await self._master(request)
        after = query_arg(request, "messageID", "") or ""
        limit = int_arg(request, "limit", 100, 100) or 100
        page, newest = await self.groups.history_for(g, origin, after, limit)
        return ok_body(self.style, newestMessageID=newest,
                       messages=[m["messageInfo"] for m in page])

    @sns_route(app, paths.NOTIFY_GRPCHAT)
    @endpoint(SIGNED)
    async def notify_grpchat(self, request, origin):
        group_id = self._group_id(required_arg(request, "groupID"))
        self._from_master(origin, group_id)
        body = read_json(request, self.max_body)
        info = parse_message_info(body.get("messageInfo"))
        ids = body.get("userIDs")
        if not isinstance(ids, list) or not ids or len(ids) > 5000:
            raise BadRequest("userIDs must list the members on this server", "bad_userIDs")
        local = [(await self._local_user(u, "userIDs")).user_id for u in ids]
        sender = self.directory.canonical(info.sender_id, "senderID")
        await self.groups.receive_group_chat(group_id, local,
                                             attrs.evolve(info, sender_id=sender))
        return ok_body(self.style)

    @sns_route(app, paths.NOTIFY_GRPNOTIFY)
    @endpoint(SIGNED)
    async def notify_grpnotify(self, request, origin):
        group_id = self._group_id(required_arg(request, "groupID"))
        self._from_master(origin, group_id)
        body = read_json(request, self.max_body)
        oper = fields.optional_int(body, "operType", default=0)
        if oper not in tuple(OperType):
            raise BadRequest("operType is 1 to 7", "bad_operType")
        if body.get("users") is not None and not isinstance(body.get("users"), list):
            raise BadRequest("users must be a list of userInfo", "bad_users")
        await self.groups.receive_notify(group_id, dict(body, operType=oper))
        return ok_body(self.style)


def _user_info(info) -> dict:
    """The userInfo of a friend request or answer: an object, or nothing."""
    info = info or {}
    if not isinstance(info, dict):
        raise BadRequest("userInfo must be an object", "bad_userInfo")
    return info
