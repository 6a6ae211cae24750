"""The client API's group calls (§6.4.2, docs/groups.md): a mixin of ClientApi, whose
session check, remote calls and wake-ups they use."""

from __future__ import annotations

from ..peer import PeerError
from ..web import endpoint, int_arg, query_arg, read_json
from ..wire import fields
from ..wire.errors import BadRequest, Forbidden, NotFound, Unavailable, ok_body
from ..wire.messages import new_object_id, object_id, parse_message_info, server_of, user_id
from . import group_messages, groups
from .client_app import V1, app

__all__ = ["GroupRoutes"]


class GroupRoutes:
    @app.route(V1 + "groups", methods=["POST"])
    @endpoint()
    async def create_group(self, request):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        name = fields.text(body, "groupName", max_len=64)
        icon = fields.text(body, "groupIcon", required=False, max_len=512)
        g = await self.db.runInteraction(groups.create_group, user, name, self.server_id,
                                         self.now_ms(), icon)
        return ok_body(self.style, groupInfo=g.info(1), gset=g.gset())

    @app.route(V1 + "groups", methods=["GET"])
    @endpoint()
    async def list_groups(self, request):
        user = await self.user(request)
        return ok_body(self.style, groups=await self.db.runInteraction(groups.my_groups,
                                                                       user.user_id))

    @app.route(V1 + "groups/search", methods=["GET"])
    @endpoint()
    async def search_groups(self, request):
        """Visible groups of this server by name (groups live on their masters; the standard
        has no call to search other servers' groups)."""
        await self.user(request)
        query = (query_arg(request, "q") or "").strip()
        if not query or len(query) > 64:
            raise BadRequest("q must be 1-64 characters", "bad_q")
        return ok_body(self.style, groups=await self.db.runInteraction(groups.search, query))

    def _group(self, group_id: str) -> str:
        return self.role.directory.canonical(object_id(group_id, "groupID"), "groupID")

    def _managed_here(self, group_id: str) -> str:
        """A group changed by its owner or admins, who are users of its master (§6.4.2.1):
        from any other server, refused."""
        gid = self._group(group_id)
        if server_of(gid) != self.server_id:
            raise Forbidden("only the owner and admins, users of %s, manage %s"
                            % (server_of(gid), gid), "not_admin")
        return gid

    @app.route(V1 + "groups/<group_id>", methods=["GET"])
    @endpoint()
    async def group_info(self, request, group_id):
        """The group as its master knows it: from here, or asked of the master."""
        user = await self.user(request)
        gid = self._group(group_id)
        if server_of(gid) == self.server_id:
            g = await self.db.runInteraction(groups.get_group, gid)
            found = await self.db.runInteraction(groups.members, gid) if g else []
            if g is None or g.dissolved or user.user_id not in [
                    m["userInfo"]["userID"] for m in found]:
                raise NotFound("no group %s for you" % gid, "unknown_group")
            return ok_body(self.style, groupInfo=g.info(len(found)), gset=g.gset(),
                           members=found)
        server = server_of(gid)
        info = await self._remote(server, "GET", "/sns/grpinfo",
                                  query={"groupID": gid, "userID": user.user_id})
        listed = await self._remote(server, "GET", "/sns/grpmembers",
                                    query={"groupID": gid, "userID": user.user_id})
        if not info.ok or not listed.ok:
            raise NotFound("no group %s for you" % gid, "unknown_group")
        return ok_body(self.style, groupInfo=info.body.get("groupInfo"),
                       gset=info.body.get("gset"), members=listed.body.get("members"))

    @app.route(V1 + "groups/<group_id>/invite", methods=["POST"])
    @endpoint()
    async def invite(self, request, group_id):
        user = await self.user(request)
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        ids = body.get("userIDs")
        if not isinstance(ids, list) or not ids or len(ids) > 500:
            raise BadRequest("userIDs must list 1-500 user IDs", "bad_userIDs")
        invitees = [self.role.directory.canonical(user_id(u, "userIDs"), "userIDs")
                    for u in ids]
        for server in {server_of(u) for u in invitees} - {self.server_id}:
            await self._destination(server, queue=True)
        if server_of(gid) == self.server_id:
            sent = await self.db.runInteraction(groups.invite, gid, user.user_id, user.info(),
                                                invitees, self.server_id, self.now_ms())
        else:
            await self._destination(server_of(gid), queue=True)
            await self.db.runInteraction(groups.request_invitation, gid, user, invitees,
                                         self.now_ms())
            sent = None  # the master sends them
        self._after_write(None)
        return ok_body(self.style, invited=sent)

    @app.route(V1 + "groups/invitations", methods=["GET"])
    @endpoint()
    async def group_invitations(self, request):
        user = await self.user(request)
        return ok_body(self.style, invitations=await self.db.runInteraction(
            groups.invitations, user.user_id))

    @app.route(V1 + "groups/invitations/<invitation_id>/answer", methods=["POST"])
    @endpoint()
    async def answer_invitation(self, request, invitation_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        agree = body.get("agree")
        if not isinstance(agree, bool):
            raise BadRequest("agree must be true or false", "bad_agree")
        gid = await self.db.runInteraction(groups.answer_invitation, invitation_id, user, agree,
                                           self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style, groupID=gid)

    @app.route(V1 + "groups/<group_id>/messages", methods=["POST"])
    @endpoint()
    async def group_send(self, request, group_id):
        """A group message: ordered by the master, which shows it to every member (the
        sender too: its ``group_message`` event carries the master's order)."""
        user = await self.user(request)
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        message_type = body.get("messageType")
        if isinstance(message_type, str) and message_type.lower() == "repeal":
            raise BadRequest("group messages are not recalled", "bad_messageType")
        content = body.get("content")
        if isinstance(message_type, str) and message_type.lower() in ("image", "voice", "file"):
            content = await self._media_content(user, content)
        info = parse_message_info({
            "senderID": user.user_id, "recvID": gid, "messageType": message_type, "type": 2,
            "messageID": new_object_id(self.server_id), "content": content})
        if server_of(gid) == self.server_id:
            await self.db.runInteraction(group_messages.post_message, info, self.server_id,
                                         self.now_ms())
        else:
            await self._destination(server_of(gid), queue=True)
            await self.db.runInteraction(group_messages.send_to_master, info, self.now_ms())
        self._after_write(None)
        return ok_body(self.style, messageID=info.message_id)

    @app.route(V1 + "groups/<group_id>/messages", methods=["GET"])
    @endpoint()
    async def group_history(self, request, group_id):
        """What this server holds of the group, oldest first, after ``after`` (a
        messageID)."""
        user = await self.user(request)
        gid = self._group(group_id)
        if await self.db.runInteraction(groups.member_type, gid, user.user_id) is None:
            raise NotFound("no group %s for you" % gid, "unknown_group")
        after = query_arg(request, "after", "") or ""
        limit = int_arg(request, "limit", 100, 500) or 100
        page, newest = await self.db.runInteraction(group_messages.history, gid, after, limit)
        return ok_body(self.style, messages=page, newestMessageID=newest)

    @app.route(V1 + "groups/<group_id>/sync", methods=["POST"])
    @endpoint()
    async def group_sync(self, request, group_id):
        """Check this server's copy of a group mastered elsewhere against the master now
        (grpchat, §6.4.2.12) and fill what it misses, in the master's order (the node also
        does this at start and every ``group_sync_seconds``)."""
        user = await self.user(request)
        gid = self._group(group_id)
        if await self.db.runInteraction(groups.member_type, gid, user.user_id) is None:
            raise NotFound("no group %s for you" % gid, "unknown_group")
        try:
            fetched = await self.role.group_sync.sync_now(gid)
        except PeerError as e:
            raise Unavailable(str(e), "peer_unreachable") from None
        return ok_body(self.style, fetched=fetched)

    @app.route(V1 + "groups/<group_id>/quit", methods=["POST"])
    @endpoint()
    async def group_quit(self, request, group_id):
        user = await self.user(request)
        await self.db.runInteraction(groups.quit_group, self._group(group_id), user,
                                     self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "groups/<group_id>/remove", methods=["POST"])
    @endpoint()
    async def group_remove(self, request, group_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        ids = body.get("delateMembers", body.get("deleteMembers"))
        if not isinstance(ids, list) or not ids or len(ids) > 500:
            raise BadRequest("delateMembers must list 1-500 user IDs", "bad_delateMembers")
        members = [self.role.directory.canonical(user_id(u, "delateMembers"), "delateMembers")
                   for u in ids]
        await self.db.runInteraction(groups.remove_members, self._managed_here(group_id), user,
                                     members, self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "groups/<group_id>/admins", methods=["POST"])
    @endpoint()
    async def group_admin(self, request, group_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        member = self.role.directory.canonical(user_id(body.get("userID"), "userID"),
                                               "userID")
        admin = body.get("admin")
        if not isinstance(admin, bool):
            raise BadRequest("admin must be true or false", "bad_admin")
        await self.db.runInteraction(groups.set_admin, self._managed_here(group_id), user, member,
                                     admin, self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "groups/<group_id>/transfer", methods=["POST"])
    @endpoint()
    async def group_transfer(self, request, group_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        new_owner = self.role.directory.canonical(user_id(body.get("userID"), "userID"),
                                                  "userID")
        await self.db.runInteraction(groups.transfer, self._managed_here(group_id), user,
                                     new_owner, self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)

    @app.route(V1 + "groups/<group_id>/info", methods=["POST"])
    @endpoint()
    async def group_update(self, request, group_id):
        user = await self.user(request)
        body = read_json(request, self.max_body)
        info = body.get("groupInfo") or {}
        gset = body.get("gset") or {}
        if not isinstance(info, dict) or not isinstance(gset, dict):
            raise BadRequest("groupInfo and gset must be objects", "bad_groupInfo")
        name = fields.text(info, "groupName", required=False, max_len=64) or None
        icon = info.get("groupIcon")
        if icon is not None and (not isinstance(icon, str) or len(icon) > 512):
            raise BadRequest("groupIcon must be a string", "bad_groupIcon")
        settings = {}
        for key, column in (("isAllow", "is_allow"), ("isVisible", "is_visible")):
            if key in gset:
                value = fields.optional_int(gset, key)
                if value not in (1, 2):
                    raise BadRequest("%s is 1 (yes) or 2 (no)" % key, "bad_" + key)
                settings[column] = value
        g = await self.db.runInteraction(groups.update_group, self._managed_here(group_id), user,
                                         self.server_id, self.now_ms(), name=name, icon=icon,
                                         **settings)
        self._after_write(None)
        return ok_body(self.style, gset=g.gset())

    @app.route(V1 + "groups/<group_id>/dissolve", methods=["POST"])
    @endpoint()
    async def group_dissolve(self, request, group_id):
        user = await self.user(request)
        await self.db.runInteraction(groups.dissolve, self._managed_here(group_id), user,
                                     self.server_id, self.now_ms())
        self._after_write(None)
        return ok_body(self.style)
