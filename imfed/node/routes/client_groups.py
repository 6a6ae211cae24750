"""The client API's group calls (§6.4.2, docs/groups.md), mounted by ClientRoutes under
``/api/v1/groups``: paths here are relative to it."""

from __future__ import annotations

from klein import Klein

from ...web import SESSION, Endpoints, endpoint, install_errors, int_arg, query_arg, read_json
from ...wire import fields
from ...wire.errors import BadRequest, Style, ok_body
from ...wire.message_info import object_id, user_id
from ...wire.records import Setting
from ..directory import Directory

__all__ = ["GroupRoutes"]


class GroupRoutes(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.INTERCONNECT
    interface = "client"

    def __init__(self, groups, session_user, directory: Directory, *, max_body: int,
                 rate=lambda request, user, kind: None) -> None:
        """``session_user(request)``: the client API's (a session, or the bridge);
        ``rate(request, user, kind)``: its rate limits."""
        self.groups, self._session_user, self.directory = groups, session_user, directory
        self.rate = rate
        self.server_id = directory.server_id
        self.max_body = max_body

    async def session_user(self, request):
        return await self._session_user(request)

    def _group(self, group_id) -> str:
        return self.directory.canonical(object_id(group_id, "groupID"), "groupID")

    def _users(self, ids, field: str) -> list[str]:
        if not isinstance(ids, list) or not ids or len(ids) > 500:
            raise BadRequest("%s must list 1-500 user IDs" % field, "bad_" + field)
        return [self._user(u, field) for u in ids]

    def _user(self, value, field: str) -> str:
        return self.directory.canonical(user_id(value, field), field)

    @app.route("/", methods=["POST"])
    @endpoint(SESSION)
    async def create_group(self, request, user):
        body = read_json(request, self.max_body)
        name = fields.name(body, "groupName", max_len=64)
        icon = fields.text(body, "groupIcon", required=False, max_len=512)
        g = await self.groups.create(user, name, icon)
        return ok_body(self.style, groupInfo=g.info(1), gset=g.gset())

    @app.route("/", methods=["GET"])
    @endpoint(SESSION)
    async def list_groups(self, request, user):
        return ok_body(self.style, groups=await self.groups.mine(user))

    @app.route("/search", methods=["GET"])
    @endpoint(SESSION)
    async def search_groups(self, request, user):
        """Visible groups of this server by name (groups live on their masters; the standard
        has no call to search other servers' groups)."""
        query = (query_arg(request, "q") or "").strip()
        if not query or len(query) > 64:
            raise BadRequest("q must be 1-64 characters", "bad_q")
        return ok_body(self.style, groups=await self.groups.search(query))

    @app.route("/invitations", methods=["GET"])
    @endpoint(SESSION)
    async def group_invitations(self, request, user):
        return ok_body(self.style, invitations=await self.groups.invitations(user))

    @app.route("/invitations/<invitation_id>/answer", methods=["POST"])
    @endpoint(SESSION)
    async def answer_invitation(self, request, user, invitation_id):
        body = read_json(request, self.max_body)
        gid = await self.groups.answer(user, invitation_id, fields.flag(body, "agree"))
        return ok_body(self.style, groupID=gid)

    @app.route("/<group_id>", methods=["GET"])
    @endpoint(SESSION)
    async def group_info(self, request, user, group_id):
        """The group as its master knows it: from here, or asked of the master."""
        return ok_body(self.style, **await self.groups.info(user, self._group(group_id)))

    @app.route("/<group_id>/invite", methods=["POST"])
    @endpoint(SESSION)
    async def invite(self, request, user, group_id):
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        sent = await self.groups.invite(user, gid, self._users(body.get("userIDs"), "userIDs"))
        return ok_body(self.style, invited=sent)

    @app.route("/<group_id>/messages", methods=["POST"])
    @endpoint(SESSION)
    async def group_send(self, request, user, group_id):
        self.rate(request, user, "send")
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        message_id = await self.groups.send(user, gid, body.get("messageType"),
                                            body.get("content"), fields.txn_id(body))
        return ok_body(self.style, messageID=message_id)

    @app.route("/<group_id>/messages", methods=["GET"])
    @endpoint(SESSION)
    async def group_history(self, request, user, group_id):
        """What this server holds of the group, oldest first: after ``after`` (a messageID),
        or going back from ``before`` (a messageID; empty: from the newest) a page at a
        time, ``nextBefore`` the next page's, ``lines`` what happened to the group among
        them (docs/groups.md)."""
        gid = self._group(group_id)
        limit = int_arg(request, "limit", 100, 500) or 100
        before = query_arg(request, "before")
        if before is not None:
            page, next_before, lines = await self.groups.history_before(user, gid, before,
                                                                        limit)
            return ok_body(self.style, messages=page, nextBefore=next_before, lines=lines)
        after = query_arg(request, "after", "") or ""
        page, newest = await self.groups.history(user, gid, after, limit)
        return ok_body(self.style, messages=page, newestMessageID=newest)

    @app.route("/<group_id>/messages/<message_id>/recall", methods=["POST"])
    @endpoint(SESSION)
    async def group_recall(self, request, user, group_id, message_id):
        """Recall a group message, by the master's rule: one's own within the recall window;
        any, at any time, for the owner and admins.  Every member gets a ``group_recall``
        event (through the master, for a group mastered elsewhere)."""
        gid = self._group(group_id)
        await self.groups.recall(user, gid, object_id(message_id, "messageID"))
        return ok_body(self.style)

    @app.route("/<group_id>/read", methods=["POST"])
    @endpoint(SESSION)
    async def group_read(self, request, user, group_id):
        """``{"gseq": N}``: the member has read the group to ``gseq``; its unread count is
        what came after.  The marker only moves forward; a ``read`` event to every stream of
        the member."""
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        gseq = fields.optional_int(body, "gseq", default=None, minimum=0)
        return ok_body(self.style, readGseq=await self.groups.mark_read(user, gid, gseq))

    @app.route("/<group_id>/pins", methods=["PUT"])
    @endpoint(SESSION)
    async def group_pin_mute(self, request, user, group_id):
        """``{"pinned": bool, "muted": bool}`` (either may be left out): the group pinned or
        muted for the member on every device (a ``pins`` event to each)."""
        gid = self._group(group_id)
        pinned, muted = fields.pin_mute(read_json(request, self.max_body))
        pinned, muted = await self.groups.pin_mute(user, gid, pinned, muted)
        return ok_body(self.style, pinned=pinned, muted=muted)

    @app.route("/<group_id>/sync", methods=["POST"])
    @endpoint(SESSION)
    async def group_sync(self, request, user, group_id):
        """Check this server's copy of a group mastered elsewhere against the master now
        (grpchat, §6.4.2.12) and fill what it misses, in the master's order (the node also
        does this at start and every ``group_sync_seconds``)."""
        fetched = await self.groups.sync_now(user, self._group(group_id))
        return ok_body(self.style, fetched=fetched)

    @app.route("/<group_id>/quit", methods=["POST"])
    @endpoint(SESSION)
    async def group_quit(self, request, user, group_id):
        await self.groups.quit(user, self._group(group_id))
        return ok_body(self.style)

    @app.route("/<group_id>/remove", methods=["POST"])
    @endpoint(SESSION)
    async def group_remove(self, request, user, group_id):
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        members = self._users(body.get("delateMembers", body.get("deleteMembers")),
                              "delateMembers")
        await self.groups.remove(user, gid, members)
        return ok_body(self.style)

    @app.route("/<group_id>/admins", methods=["POST"])
    @endpoint(SESSION)
    async def group_admin(self, request, user, group_id):
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        member = self._user(body.get("userID"), "userID")
        await self.groups.set_admin(user, gid, member, fields.flag(body, "admin"))
        return ok_body(self.style)

    @app.route("/<group_id>/transfer", methods=["POST"])
    @endpoint(SESSION)
    async def group_transfer(self, request, user, group_id):
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        await self.groups.transfer(user, gid, self._user(body.get("userID"), "userID"))
        return ok_body(self.style)

    @app.route("/<group_id>/info", methods=["POST"])
    @endpoint(SESSION)
    async def group_update(self, request, user, group_id):
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        info = body.get("groupInfo") or {}
        gset = body.get("gset") or {}
        if not isinstance(info, dict) or not isinstance(gset, dict):
            raise BadRequest("groupInfo and gset must be objects", "bad_groupInfo")
        name = fields.name(info, "groupName", required=False, max_len=64) or None
        icon = info.get("groupIcon")
        if icon is not None and (not isinstance(icon, str) or len(icon) > 512):
            raise BadRequest("groupIcon must be a string", "bad_groupIcon")
        settings = {}
        for key, column in (("isAllow", "is_allow"), ("isVisible", "is_visible")):
            if key in gset:
                value = fields.optional_int(gset, key)
                if value not in tuple(Setting):
                    raise BadRequest("%s is 1 (yes) or 2 (no)" % key, "bad_" + key)
                settings[column] = value
        g = await self.groups.update(user, gid, name=name, icon=icon, **settings)
        return ok_body(self.style, gset=g.gset())

    @app.route("/<group_id>/announcement", methods=["PUT"])
    @endpoint(SESSION)
    async def group_announcement(self, request, user, group_id):
        """``{"text": "..."}`` (at most 2,000 characters, lines allowed; "" clears it): the
        group's announcement, by the owner or an admin; every member gets a group_notify
        (operType 7) whose groupInfo carries it."""
        gid = self._group(group_id)
        body = read_json(request, self.max_body)
        text = fields.name(body, "text", required=False, max_len=fields.NOTICE_MAX, newlines=True)
        g = await self.groups.set_notice(user, gid, text.strip())
        return ok_body(self.style, groupNotice={"text": g.notice, "userID": g.notice_by,
                                                "time": g.notice_at})

    @app.route("/<group_id>/dissolve", methods=["POST"])
    @endpoint(SESSION)
    async def group_dissolve(self, request, user, group_id):
        await self.groups.dissolve(user, self._group(group_id))
        return ok_body(self.style)
