"""Groups (§6.4.2, docs/groups.md): what members do, here or through the master, and what
other servers bring: a member's request at the master, or the master's news at a member's
server."""

from __future__ import annotations

import attrs

from ...storage import transaction
from ...wire.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from ...wire.message_info import MessageInfo, announced_by, server_of
from ...wire.queued import Chat, NotifyGrpChat
from ...wire.records import ChatType, Setting, UserInfo
from ..store import group_log, group_messages, groups, pins_mutes, reads, txns, users
from ..store.outbox import enqueue
from ..store.groups import ADMIN, MEMBER, OWNER, Group
from ..services.groupsync import GroupSync
from ..clients.reach import Reach
from ..clients.remote import FederationClient, PeerFailed
from ..store.unit import NodeStore
from .files import FilesHandler
from .messages import MessagesHandler, find_texts

__all__ = ["GroupsHandler", "remove_members", "dissolve"]


# -- the rules, each checked in the unit of work that writes what it allows --

def _mastered(work, group_id: str, server_id: str) -> Group:
    """A live group mastered here (``server_id``); 404 otherwise."""
    g = groups.get_group(work, group_id)
    if g is None or not g.master or g.dissolved or server_of(group_id) != server_id:
        raise NotFound("no group %s here" % group_id, "unknown_group")
    return g


def _require_role(work, g: Group, user_id: str, allowed: tuple, errcode: str) -> int:
    role = groups.member_type(work, g.group_id, user_id)
    if role not in allowed:
        raise Forbidden("%s may not do that in %s" % (user_id, g.group_id), errcode)
    return role


def _role(work, group_id: str, user_id: str) -> int:
    """The user's role in a group it is a member of (in this server's view); 404 for
    another, as though there were no such group."""
    role = groups.member_type(work, group_id, user_id)
    if role is None:
        raise NotFound("no group %s for you" % group_id, "unknown_group")
    return role


def _require_member(work, group_id: str, user_id: str) -> None:
    """403 for a user (a message's sender, one another server names) who is not a member."""
    if groups.member_type(work, group_id, user_id) is None:
        raise Forbidden("%s is not a member of %s" % (user_id, group_id), "not_member")


def _view(work, group_id: str) -> Group:
    """This server's view of a live group mastered elsewhere; 404 otherwise."""
    g = groups.get_group(work, group_id)
    if g is None or g.master or g.dissolved:
        raise NotFound("no group %s here" % group_id, "unknown_group")
    return g


def _member_info(work, g: Group, user_id: str) -> dict:
    info = groups.member_info(work, g.group_id, user_id)
    if info is None:
        raise NotFound("%s is not a member of %s" % (user_id, g.group_id), "not_member")
    return info


@transaction
def _create(work, owner: users.User, name: str, server_id: str, now_ms: int,
            icon: str = "") -> Group:
    if not name.strip() or len(name) > 64:
        raise BadRequest("groupName must be 1-64 characters", "bad_groupName")
    return groups.create_group(work, owner, name, server_id, now_ms, icon)


@transaction
def _invite(work, group_id: str, inviter_id: str, inviter_info: dict, invitees: list[str],
            server_id: str, now_ms: int) -> int:
    """Invite users (§6.4.2.4) at the master, for a member here or on another server (who
    asked with invite/grpreq); answer how many invitations went out."""
    g = _mastered(work, group_id, server_id)
    role = groups.member_type(work, group_id, inviter_id)
    if role is None:
        raise Forbidden("only members invite", "not_member")
    if role == MEMBER and g.is_allow == Setting.NO:
        raise Forbidden("members may not invite to this group", "invites_closed")
    for invitee in dict.fromkeys(invitees):
        if server_of(invitee) == server_id and \
                groups.member_type(work, group_id, invitee) is None and \
                users.get_user(work, invitee) is None:
            raise NotFound("no user %s" % invitee, "unknown_user")
    return groups.add_invitations(work, g, inviter_id, inviter_info, invitees, server_id,
                                  now_ms)


@transaction
def _request_invitations(work, group_id: str, inviter: users.User, invitees: list[str],
                         now_ms: int) -> None:
    """A member of a group mastered elsewhere invites: asked of the master."""
    g = groups.get_group(work, group_id)
    role = groups.member_type(work, group_id, inviter.user_id)
    if g is None or g.dissolved or role is None:
        raise Forbidden("%s is not a member of %s" % (inviter.user_id, group_id), "not_member")
    if g.is_allow == Setting.NO and role == MEMBER:
        raise Forbidden("members may not invite to this group", "invites_closed")
    groups.request_invitations(work, g, inviter, invitees, now_ms)


def _answered(work, group_id: str, invitee: str, agree: bool, info: dict, server_id: str,
              now_ms: int) -> None:
    """An invitee's answer at the master: a member from now on if it agreed."""
    g = _mastered(work, group_id, server_id)
    if not groups.close_invitations(work, group_id, invitee, agree):
        raise Conflict("%s was not invited to %s" % (invitee, group_id), "not_invited")
    if agree:
        groups.add_member(work, g, invitee, info, server_id, now_ms)


@transaction
def _answer(work, invitation_id: str, user: users.User, agree: bool, server_id: str,
            now_ms: int) -> str:
    group_id = groups.pending_invitation(work, invitation_id, user.user_id)
    if group_id is None:
        raise NotFound("no pending invitation %s" % invitation_id, "unknown_invitation")
    if server_of(group_id) == server_id:
        _answered(work, group_id, user.user_id, agree, user.info(), server_id, now_ms)
    else:
        groups.set_invitation(work, invitation_id, agree)
        groups.queue_answer(work, user, group_id, agree, now_ms)
    return group_id


@transaction
def _receive_answer(work, group_id: str, invitee: str, agree: bool, info: dict,
                    server_id: str, now_ms: int) -> None:
    """invite/grprep at the master (§6.4.2.5)."""
    _answered(work, group_id, invitee, agree, info, server_id, now_ms)


@transaction
def _quit(work, group_id: str, user: users.User, server_id: str, now_ms: int) -> None:
    """A member leaves (§6.4.2.7); the owner dissolves instead."""
    if server_of(group_id) == server_id:
        g = _mastered(work, group_id, server_id)
        if g.owner_id == user.user_id:
            raise Conflict("the owner cannot quit; dissolve the group instead", "owner_quits")
        groups.remove_member(work, g, _member_info(work, g, user.user_id), user.info(),
                             server_id, now_ms)
        return
    if groups.member_type(work, group_id, user.user_id) is None:
        raise NotFound("%s is not a member of %s" % (user.user_id, group_id), "not_member")
    groups.leave_view(work, group_id, user.user_id, now_ms)


@transaction
def _receive_quit(work, group_id: str, user_id: str, server_id: str, now_ms: int) -> None:
    g = _mastered(work, group_id, server_id)
    if g.owner_id == user_id:
        raise Conflict("the owner cannot quit", "owner_quits")
    groups.remove_member(work, g, _member_info(work, g, user_id), {"userID": user_id},
                         server_id, now_ms)


@transaction
def dissolve(work, group_id: str, user: users.User, server_id: str, now_ms: int) -> None:
    """The owner dissolves the group on its master (§6.4.2.8), announced with operType 3."""
    g = _mastered(work, group_id, server_id)
    if g.owner_id != user.user_id:
        raise Forbidden("only the owner dissolves a group", "not_owner")
    groups.dissolve(work, g, user.info(), server_id, now_ms)


@transaction
def _receive_notify(work, group_id: str, body: dict, server_id: str, now_ms: int) -> None:
    """notify/grpnotify from the master: a view is kept only of a group one of our users
    was invited to."""
    if groups.get_group(work, group_id) is None and not groups.invited_here(work, group_id):
        raise NotFound("no group %s here" % group_id, "unknown_group")
    groups.apply_notify(work, group_id, body, server_id, now_ms)


@transaction
def remove_members(work, group_id: str, owner: users.User, user_ids: list[str],
                   server_id: str, now_ms: int) -> None:
    """Only the owner removes members (§6.4.2.6), each announced with operType 2."""
    g = _mastered(work, group_id, server_id)
    _require_role(work, g, owner.user_id, (OWNER,), "not_owner")
    for uid in dict.fromkeys(user_ids):
        if uid == owner.user_id:
            raise BadRequest("the owner cannot remove itself", "bad_delateMembers")
        groups.remove_member(work, g, _member_info(work, g, uid), owner.info(), server_id,
                             now_ms)


@transaction
def _set_admin(work, group_id: str, owner: users.User, user_id: str, admin: bool,
               server_id: str, now_ms: int) -> None:
    """The owner makes a member an admin, or a member again (operType 4 / 5).  Admins are
    users of the master server (§6.4.2.1)."""
    g = _mastered(work, group_id, server_id)
    _require_role(work, g, owner.user_id, (OWNER,), "not_owner")
    role = groups.member_type(work, group_id, user_id)
    if role is None or role == OWNER:
        raise NotFound("%s is not a member of %s" % (user_id, group_id), "not_member")
    if admin and server_of(user_id) != server_id:
        raise Forbidden("admins are users of the group's master server", "not_master_user")
    groups.set_member_type(work, g, user_id, admin, owner.info(), server_id, now_ms)


@transaction
def _update(work, group_id: str, user: users.User, server_id: str, now_ms: int,
            name: str | None = None, icon: str | None = None,
            is_allow: int | None = None, is_visible: int | None = None) -> Group:
    """The owner or an admin changes the group's info or settings (§6.4.2.13, operType 7)."""
    g = _mastered(work, group_id, server_id)
    _require_role(work, g, user.user_id, (OWNER, ADMIN), "not_admin")
    g = attrs.evolve(g, name=g.name if name is None else name,
                     icon=g.icon if icon is None else icon,
                     is_allow=g.is_allow if is_allow is None else is_allow,
                     is_visible=g.is_visible if is_visible is None else is_visible)
    groups.update_group(work, g, user.info(), server_id, now_ms)
    return g


@transaction
def _set_notice(work, group_id: str, user: users.User, text: str, server_id: str,
                now_ms: int) -> Group:
    """The owner or an admin sets the group's announcement (operType 7 tells every server)."""
    g = _mastered(work, group_id, server_id)
    _require_role(work, g, user.user_id, (OWNER, ADMIN), "not_admin")
    return groups.set_notice(work, g, text, user, server_id, now_ms)


@transaction
def _transfer(work, group_id: str, owner: users.User, new_owner: str, server_id: str,
              now_ms: int) -> None:
    """The owner hands the group to another member who is a user of the master server (never
    to another server's member, §6.4.2.1); the old owner stays as an admin (operType 6)."""
    g = _mastered(work, group_id, server_id)
    _require_role(work, g, owner.user_id, (OWNER,), "not_owner")
    if groups.member_type(work, group_id, new_owner) is None or new_owner == owner.user_id:
        raise NotFound("%s is not another member of %s" % (new_owner, group_id), "not_member")
    if server_of(new_owner) != server_id:
        raise Forbidden("a group is never transferred to another server's member",
                        "not_master_user")
    groups.transfer(work, g, owner, new_owner, server_id, now_ms)


@transaction
def _post(work, info: MessageInfo, server_id: str, now_ms: int) -> bool:
    """A member's message at the master; False for a repeat."""
    g = _mastered(work, info.recv_id, server_id)
    _require_member(work, g.group_id, info.sender_id)
    return group_messages.post_message(work, g, info, server_id, now_ms)


@transaction
def _send(work, info: MessageInfo, server_id: str, now_ms: int, txn: str | None) -> str:
    """A local member's group message, once per ``txn``: to the group here or to its master
    elsewhere; its message ID (the first one's, for a repeated ``txn``)."""
    first = txns.seen(work, info.sender_id, txn)
    if first is not None:
        return first
    txns.remember(work, info.sender_id, txn, info.message_id, now_ms)
    if server_of(info.recv_id) == server_id:
        _post(work, info, server_id, now_ms)
    else:
        _require_member(work, info.recv_id, info.sender_id)
        group_messages.send_to_master(work, info, now_ms)
    return info.message_id


@transaction
def _receive_group_chat(work, group_id: str, user_ids: list[str], info: MessageInfo,
                        now_ms: int) -> list[str]:
    """notify/grpchat from the master: kept, shown to the members it lists who are members
    in our view (one who quit here meanwhile is left out); the users shown it.  Refused for
    a group we hold no view of, or when none of them is a member."""
    _view(work, group_id)
    members = [uid for uid in dict.fromkeys(user_ids)
               if groups.member_type(work, group_id, uid) is not None]
    if not members:
        raise Forbidden("none of userIDs is a member of %s here" % group_id, "not_member")
    group_messages.keep(work, group_id, members, info, now_ms)
    return members


@transaction
def _mark_read(work, user_id: str, group_id: str, gseq: int, now_ms: int) -> int:
    """A member has read the group to ``gseq`` (no further than its newest message here);
    the member's every stream hears of it.  The marker as it now stands."""
    _role(work, group_id, user_id)
    gseq = min(gseq, group_messages.newest_gseq(work, group_id))
    return reads.read_to(work, user_id, group_id, gseq, {"groupID": group_id, "gseq": gseq},
                         now_ms)


def _recalled(work, g: Group, message: group_messages.GroupMessage, by: str, server_id: str,
              now_ms: int) -> None:
    """At the master: the message recalled here, and every other server with members told
    with a ``repeal`` of it from ``by`` (notify/grpchat, in the group's lane)."""
    targets = groups.servers_with_members(work, g.group_id)
    if not group_messages.mark_recalled(work, message, by, targets.get(server_id, []), now_ms):
        return
    repeal = MessageInfo(by, g.group_id, "repeal", ChatType.GROUP, message.info.message_id, {})
    for server, ids in targets.items():
        if server != server_id:
            enqueue(work, server, groups.lane(g.group_id),
                    NotifyGrpChat(g.group_id, ids, info=repeal), now_ms)


@transaction
def _recall_here(work, group_id: str, message_id: str, user_id: str, server_id: str,
                 now_ms: int, window_ms: int) -> None:
    """The master's rule: a member recalls its own message within the recall window; the
    owner and admins (users of the master) recall any message, at any time."""
    g = _mastered(work, group_id, server_id)
    role = _role(work, group_id, user_id)
    message = group_messages.get(work, group_id, message_id)
    if message is None:
        raise NotFound("no message %s in %s" % (message_id, group_id), "unknown_message")
    if role not in (OWNER, ADMIN):
        if message.info.sender_id != user_id:
            raise Forbidden("only its sender, the owner and admins recall a message",
                            "not_sender")
        if not message.recalled and now_ms - message.created_at > window_ms:
            raise Conflict("the recall window has passed", "recall_window_passed")
    _recalled(work, g, message, user_id, server_id, now_ms)


@transaction
def _ask_recall(work, group_id: str, message_id: str, user_id: str, now_ms: int,
                window_ms: int) -> None:
    """A member here recalls its own message of a group mastered elsewhere: asked of the
    master (a ``repeal`` through /sns/chat, in the group's lane), which decides and tells
    every server, this one too.  What this server can see the master would refuse is
    refused here, to the user: another's message, or one kept here longer ago than the
    window (the master counts from its own, earlier, time)."""
    _role(work, group_id, user_id)
    message = group_messages.get(work, group_id, message_id)
    if message is not None and message.info.sender_id != user_id:
        raise Forbidden("only its sender, the owner and admins recall a message",
                        "not_sender")
    if message is not None and now_ms - message.created_at > window_ms:
        raise Conflict("the recall window has passed", "recall_window_passed")
    repeal = MessageInfo(user_id, group_id, "repeal", ChatType.GROUP, message_id, {})
    enqueue(work, server_of(group_id), groups.lane(group_id), Chat(repeal), now_ms)


@transaction
def _receive_group_repeal(work, group_id: str, user_ids: list[str], info: MessageInfo,
                          now_ms: int) -> None:
    """notify/grpchat with a ``repeal`` from the master: the message recalled in our copy
    (if we hold it), the members it lists told."""
    _view(work, group_id)
    message = group_messages.get(work, group_id, info.message_id)
    if message is not None:
        group_messages.mark_recalled(work, message, info.sender_id, user_ids, now_ms)


def _before(work, group_id: str, before: str, limit: int) -> tuple[list, str | None, list]:
    """A page of messages going back from ``before``; the next page's ``before`` (its first
    message when the page is full, None at the beginning); the group's lines among them."""
    page = group_messages.before(work, group_id, before, limit)
    if page is None:
        raise NotFound("no message %s in %s" % (before, group_id), "unknown_message")
    next_before = page[0].info.message_id if len(page) == limit else None
    lines = group_log.for_page(work, group_id, next_before, before or None)
    return [m.to_wire() for m in page], next_before, lines


def _history(work, group_id: str, after: str, limit: int) -> tuple[list, str]:
    page = group_messages.history(work, group_id, after, limit)
    if page is None:
        raise NotFound("no message %s in %s" % (after, group_id), "unknown_message")
    messages, newest = page
    return [m.to_wire() for m in messages], newest



@transaction
def _mine(cur, user_id: str) -> list[dict]:
    out = []
    flags = pins_mutes.all_of(cur, user_id)
    for membership in groups.my_groups(cur, user_id):
        gid = membership.group.group_id
        newest = group_messages.recent(cur, gid, 1)
        out.append(dict(membership.to_wire(), last=newest[0].to_wire() if newest else None,
                        **pins_mutes.shown(flags, gid)))
    return out


@transaction
def _pin_mute(work, user_id: str, group_id: str, pinned: bool | None, muted: bool | None,
              now_ms: int) -> tuple[bool, bool]:
    _role(work, group_id, user_id)
    return pins_mutes.set_flags(work, user_id, group_id, pinned, muted, {"groupID": group_id},
                                now_ms)

class GroupsHandler:
    def __init__(self, store: NodeStore, reach: Reach, remote: FederationClient,
                 files: FilesHandler, messages: MessagesHandler, sync: GroupSync,
                 server_id: str) -> None:
        self.store, self.reach, self.remote = store, reach, remote
        self.files, self.messages, self.sync = files, messages, sync
        self.server_id = server_id

    def now_ms(self) -> int:
        return self.store.now_ms()

    def _managed_here(self, group_id: str) -> str:
        """A group changed by its owner or admins, who are users of its master (§6.4.2.1):
        from any other server, refused."""
        if server_of(group_id) != self.server_id:
            raise Forbidden("only the owner and admins, users of %s, manage %s"
                            % (server_of(group_id), group_id), "not_admin")
        return group_id

    async def _member(self, user, group_id: str) -> None:
        await self.store.run(_role, group_id, user.user_id)

    # -- what a local user does --

    async def create(self, user, name: str, icon: str) -> groups.Group:
        return await self.store.run(_create, user, name, self.server_id, self.now_ms(), icon)

    async def mine(self, user) -> list[dict]:
        """The user's groups, each with its newest message kept here (``last``, or None), so
        that a client orders them by activity as it does conversations."""
        return await self.store.run(_mine, user.user_id)

    async def search(self, query: str) -> list[dict]:
        return [m.to_wire() for m in await self.store.run(groups.search, query)]

    async def info(self, user, group_id: str) -> dict:
        """groupInfo, gset and members as the master knows them: from here, or asked of
        the master."""
        if server_of(group_id) == self.server_id:
            g = await self.store.run(groups.get_group, group_id)
            found = await self.store.run(groups.members, group_id) if g else []
            if g is None or g.dissolved or user.user_id not in [m.user_id for m in found]:
                raise NotFound("no group %s for you" % group_id, "unknown_group")
            return {"groupInfo": g.info(len(found)), "gset": g.gset(),
                    "members": [m.to_wire() for m in found]}
        peer = await self.reach.require(server_of(group_id))
        try:
            view = await self.remote.group(peer, group_id, user.user_id)
        except PeerFailed as e:
            raise e.api_error("group %s for you" % group_id, "unknown_group") from None
        return {"groupInfo": view.info, "gset": view.gset, "members": view.members}

    async def invite(self, user, group_id: str, invitees: list[str]) -> int | None:
        """How many invitations went out, or None when the master sends them."""
        for server in {server_of(u) for u in invitees} - {self.server_id}:
            await self.reach.require(server, queue=True)
        for uid in invitees:
            if server_of(uid) == self.server_id:
                await self.messages.sources.ensure(uid)
        if server_of(group_id) == self.server_id:
            return await self.store.run(_invite, group_id, user.user_id, user.info(),
                                        invitees, self.server_id, self.now_ms())
        await self.reach.require(server_of(group_id), queue=True)
        await self.store.run(_request_invitations, group_id, user, invitees, self.now_ms())
        return None

    async def invitations(self, user) -> list[dict]:
        return [i.to_client() for i in
                await self.store.run(groups.invitations, user.user_id)]

    async def answer(self, user, invitation_id: str, agree: bool) -> str:
        return await self.store.run(_answer, invitation_id, user, agree, self.server_id,
                                    self.now_ms())

    async def send(self, user, group_id: str, message_type, content,
                   txn: str | None = None) -> str:
        """A group message: ordered by the master, which shows it to every member (the
        sender too: its ``group_message`` event carries the master's order).  Once per
        ``txn``: again, the first one's ID."""
        info = await self.messages.compose(user, group_id, message_type, content,
                                           ChatType.GROUP)
        if server_of(group_id) != self.server_id:
            await self.reach.require(server_of(group_id), queue=True)
        return await self.store.run(_send, info, self.server_id, self.now_ms(), txn)

    async def history(self, user, group_id: str, after: str, limit: int) -> tuple[list, str]:
        await self._member(user, group_id)
        return await self.store.run(_history, group_id, after, limit)

    async def history_before(self, user, group_id: str, before: str,
                             limit: int) -> tuple[list, str | None, list]:
        """A page of the group's history held here, going back from ``before`` (a messageID;
        the newest when empty), oldest first; the ``before`` of the page that precedes it
        (None at the beginning); and the group's lines (joins, renames, ...) among them
        (group_log.for_page)."""
        await self._member(user, group_id)
        return await self.store.run(_before, group_id, before, limit)

    async def pin_mute(self, user, group_id: str, pinned: bool | None,
                       muted: bool | None) -> tuple[bool, bool]:
        """Pin or mute the group for the user (None: as it was), on every device."""
        return await self.store.run(_pin_mute, user.user_id, group_id, pinned, muted,
                                    self.now_ms())

    async def mark_read(self, user, group_id: str, gseq: int) -> int:
        return await self.store.run(_mark_read, user.user_id, group_id, gseq, self.now_ms())

    async def search_messages(self, user, query: str, limit: int) -> list[dict]:
        """Text messages of the user's groups that contain ``query`` (case aside), newest
        first, each with its group."""
        return [dict(m.to_wire(), groupID=m.info.recv_id) for m in await find_texts(
            self.store, group_messages.search, user.user_id, query, limit)]

    async def recent(self, user, group_id: str, limit: int) -> list:
        """A member's view of the group's newest ``limit`` messages, oldest first."""
        await self._member(user, group_id)
        return [m.to_wire() for m in
                await self.store.run(group_messages.recent, group_id, limit)]

    async def sync_now(self, user, group_id: str) -> int:
        await self._member(user, group_id)
        try:
            return await self.sync.sync_now(group_id)
        except PeerFailed as e:
            raise Unavailable(e.message, "peer_unreachable") from None

    async def quit(self, user, group_id: str) -> None:
        await self.store.run(_quit, group_id, user, self.server_id, self.now_ms())

    async def remove(self, user, group_id: str, members: list[str]) -> None:
        await self.store.run(remove_members, self._managed_here(group_id), user,
                             members, self.server_id, self.now_ms())

    async def set_admin(self, user, group_id: str, member: str, admin: bool) -> None:
        await self.store.run(_set_admin, self._managed_here(group_id), user, member,
                             admin, self.server_id, self.now_ms())

    async def transfer(self, user, group_id: str, new_owner: str) -> None:
        await self.store.run(_transfer, self._managed_here(group_id), user, new_owner,
                             self.server_id, self.now_ms())

    async def update(self, user, group_id: str, **changes) -> Group:
        return await self.store.run(_update, self._managed_here(group_id), user,
                                    self.server_id, self.now_ms(), **changes)

    async def set_notice(self, user, group_id: str, text: str) -> Group:
        return await self.store.run(_set_notice, self._managed_here(group_id), user, text,
                                    self.server_id, self.now_ms())

    async def dissolve(self, user, group_id: str) -> None:
        await self.store.run(dissolve, self._managed_here(group_id), user,
                             self.server_id, self.now_ms())

    # -- what other servers bring; the route has checked who speaks for whom --

    async def mastered(self, group_id: str) -> Group:
        """A live group mastered here; 404 otherwise."""
        return await self.store.run(_mastered, group_id, self.server_id)

    async def require_member(self, g: Group, uid: str) -> None:
        await self.store.run(_require_member, g.group_id, uid)

    async def recall(self, user, group_id: str, message_id: str) -> None:
        """Recall a group message: at the master by its rule (docs/groups.md), or asked of
        the master for a group mastered elsewhere."""
        if server_of(group_id) == self.server_id:
            await self.store.run(_recall_here, group_id, message_id, user.user_id,
                                 self.server_id, self.now_ms(), self.messages.window_ms)
            return
        await self.reach.require(server_of(group_id), queue=True)
        await self.store.run(_ask_recall, group_id, message_id, user.user_id, self.now_ms(),
                             self.messages.window_ms)

    async def receive_message(self, info: MessageInfo, origin: str) -> None:
        """A member's message from its server, at the master (§6.4.2.9-10); a repeat is
        taken and ignored (docs/protocol.md §5); a ``repeal`` is a recall, by the master's
        rule."""
        if info.message_type == "repeal":
            # A member's recall from its server: its own message, within the window and the
            # grace for the recall's journey.
            await self.store.run(_recall_here, info.recv_id, info.message_id, info.sender_id,
                                 self.server_id, self.now_ms(), self.messages.limit_ms)
            return
        if await self.store.run(group_messages.has_message, info.message_id):
            return
        if "fileID" in info.content:
            info = await self.files.copy_from_member(info, origin)
        await self.store.run(_post, info, self.server_id, self.now_ms())

    async def invite_for_member(self, group_id: str, inviter: str, info, invitees: list[str]
                                ) -> None:
        """invite/grpreq at the master: a member on the calling server invites."""
        await self.mastered(group_id)
        await self.store.run(_invite, group_id, inviter,
                             UserInfo.from_wire(info, inviter).to_wire(), invitees,
                             self.server_id, self.now_ms())

    async def receive_invitation(self, group_id: str, name: str, inviter: str, info,
                                 invitees: list[str]) -> None:
        """invite/grpreq from the master: invitations for our users."""
        await self.store.run(groups.receive_invitation, group_id, name, inviter,
                             UserInfo.from_wire(info, inviter).to_wire(), invitees,
                             self.now_ms())

    async def receive_answer(self, g: Group, invitee: str, agree: bool, info) -> None:
        await self.store.run(_receive_answer, g.group_id, invitee, agree,
                             UserInfo.from_wire(info, invitee).to_wire(), self.server_id,
                             self.now_ms())

    async def receive_quit(self, g: Group, uid: str) -> None:
        await self.store.run(_receive_quit, g.group_id, uid, self.server_id, self.now_ms())

    async def group_info(self, g: Group) -> tuple[dict, dict]:
        count = len(await self.store.run(groups.members, g.group_id))
        return g.gset(), g.info(count)

    async def members(self, g: Group) -> list[dict]:
        return [m.to_wire() for m in await self.store.run(groups.members, g.group_id)]

    async def history_for(self, g: Group, origin: str, after: str,
                          limit: int) -> tuple[list, str]:
        """grpchat (§6.4.2.12): history to a server with a member."""
        if origin not in await self.store.run(groups.servers_with_members, g.group_id):
            raise Forbidden("%s has no member in %s" % (origin, g.group_id), "not_member")
        return await self.store.run(_history, g.group_id, after, limit)

    async def receive_group_chat(self, group_id: str, user_ids: list[str],
                                 info: MessageInfo) -> None:
        info = attrs.evolve(info, recv_id=group_id)
        if info.message_type == "repeal":
            await self.store.run(_receive_group_repeal, group_id, user_ids, info,
                                 self.now_ms())
            return
        if not announced_by(info, server_of(group_id)):
            raise BadRequest("a group message's fileID names the group's master", "bad_fileID")
        await self.store.run(_receive_group_chat, group_id, user_ids, info, self.now_ms())

    async def receive_notify(self, group_id: str, body: dict) -> None:
        await self.store.run(_receive_notify, group_id, body, self.server_id, self.now_ms())
