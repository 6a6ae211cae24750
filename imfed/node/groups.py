"""Groups across servers (§6.4.2, docs/protocol.md §5): the master server (the owner's) keeps the
group, its members and settings; other servers keep what they are told.  Messages:
group_messages.py.

Functions of a unit of work (imfed/node/unit.py), like messages.py: each change, its events and
the deliveries it owes other servers (one per server with members, in the group's lane) are
written together.
"""

from __future__ import annotations

import json
import secrets

import attrs

from ..storage import like_pattern, transaction
from ..wire.errors import BadRequest, Conflict, Forbidden, NotFound
from ..wire.messages import new_object_id, server_of
from ..wire.queued import InviteGrpRep, InviteGrpReq, NotifyGrpNotify, QuitGrpMember
from ..wire.records import Answer, GroupInfo, GroupSettings, OperType, Setting, UserType
from . import users
from .events import compact_json, emit
from .outbox import enqueue

__all__ = ["Group", "OWNER", "ADMIN", "MEMBER", "get_group", "members", "member_type",
           "create_group", "invite", "receive_invitation", "invitations", "answer_invitation",
           "receive_answer", "quit_group", "receive_quit", "dissolve", "receive_notify",
           "my_groups", "lane", "remove_members", "set_admin", "update_group", "search",
           "request_invitation", "transfer", "master_group", "servers_with_members", "joined"]

MEMBER, ADMIN, OWNER = UserType.MEMBER, UserType.ADMIN, UserType.OWNER
ADD, REMOVE, DISSOLVE = OperType.ADD, OperType.REMOVE, OperType.DISSOLVE
SET_ADMIN, UNSET_ADMIN = OperType.SET_ADMIN, OperType.UNSET_ADMIN
TRANSFER, UPDATE = OperType.TRANSFER, OperType.UPDATE


def lane(group_id: str) -> str:
    return "group:" + group_id


@attrs.frozen
class Group:
    group_id: str
    name: str
    icon: str
    owner_id: str
    is_allow: int
    is_visible: int
    created_at: int
    dissolved: int
    master: int

    def info(self, member_count: int) -> dict:
        """The standard's groupInfo (§6.4.1.2)."""
        return GroupInfo(self.group_id, self.name, self.icon, member_count, self.owner_id,
                         self.created_at).to_wire()

    def gset(self) -> dict:
        return GroupSettings(Setting(self.is_allow), Setting(self.is_visible)).to_wire()


_G = "group_id, name, icon, owner_id, is_allow, is_visible, created_at, dissolved, master"


def get_group(cur, group_id: str) -> Group | None:
    cur.execute("SELECT %s FROM groups WHERE group_id = ?" % _G, (group_id,))
    row = cur.fetchone()
    return Group(*row) if row else None


def members(cur, group_id: str) -> list[dict]:
    cur.execute("SELECT user_id, user_type, user_info FROM group_members WHERE group_id = ? "
                "ORDER BY user_type DESC, joined_at, user_id", (group_id,))
    return [{"userType": t, "userInfo": dict(json.loads(i), userID=u)}
            for u, t, i in cur.fetchall()]


def member_type(cur, group_id: str, user_id: str) -> int | None:
    cur.execute("SELECT user_type FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, user_id))
    row = cur.fetchone()
    return row[0] if row else None


def _count(cur, group_id: str) -> int:
    cur.execute("SELECT COUNT(*) FROM group_members WHERE group_id = ?", (group_id,))
    return cur.fetchone()[0]


def servers_with_members(cur, group_id: str) -> dict[str, list[str]]:
    """{serverId: [its members' IDs]} of a group."""
    cur.execute("SELECT user_id FROM group_members WHERE group_id = ?", (group_id,))
    out: dict[str, list[str]] = {}
    for (uid,) in cur.fetchall():
        out.setdefault(server_of(uid), []).append(uid)
    return out


def master_group(cur, group_id: str, server_id: str) -> Group:
    """A live group mastered here (``server_id``), or NotFound."""
    g = get_group(cur, group_id)
    if g is None or not g.master or g.dissolved or server_of(group_id) != server_id:
        raise NotFound("no group %s here" % group_id, "unknown_group")
    return g


def my_groups(cur, user_id: str) -> list[dict]:
    cur.execute("SELECT g.group_id, m.user_type FROM groups g JOIN group_members m "
                "ON g.group_id = m.group_id WHERE m.user_id = ? AND g.dissolved = 0 "
                "ORDER BY g.created_at", (user_id,))
    out = []
    for gid, user_type in cur.fetchall():
        g = get_group(cur, gid)
        out.append({"groupInfo": g.info(_count(cur, gid)), "gset": g.gset(),
                    "userType": user_type})
    return out


def _announce(cur, g: Group, oper_type: int, oper_user: dict, affected: list[dict],
              server_id: str, now_ms: int, also: tuple = ()) -> None:
    """notify/grpnotify to every other server with members (and ``also``, servers of users
    who just left); a ``group_notify`` event to the local members and affected users."""
    notice = NotifyGrpNotify(g.group_id, oper_type, oper_user, g.info(_count(cur, g.group_id)),
                             g.gset(), affected)
    targets = servers_with_members(cur, g.group_id)
    for server in set(targets) | set(also):
        if server != server_id:
            enqueue(cur, server, lane(g.group_id), notice, now_ms)
    local = _told(cur, g.group_id, oper_type, targets.get(server_id, []), affected,
                  server_id, notice.group_info["groupMemberNum"])
    for uid in local:
        emit(cur, uid, "group_notify", notice.to_wire(), now_ms)


LARGE_GROUP = 200
"""From this many members on, a member joining or leaving is told to the members concerned,
the owner and the admins only, not as an event to every member: n members joining one by one
would otherwise store n²/2 events (4,345 joins once wrote 9.4 million).  Other changes (a
rename, settings, admins, a transfer, the end of the group) still reach every member."""

_MEMBERSHIP = (ADD, REMOVE)


def _told(cur, group_id: str, oper_type: int, members: list[str], affected: list[dict],
          server_id: str, count: int) -> set[str]:
    """Which of this server's users a change is told to as an event: every member (of those
    here, ``members``) of a group below LARGE_GROUP (``count`` in all), or for any change but
    a membership one; else the users it names and the group's owner and admins here."""
    named = {u["userID"] for u in affected if server_of(u["userID"]) == server_id}
    if oper_type not in _MEMBERSHIP or count < LARGE_GROUP:
        return set(members) | named
    cur.execute("SELECT user_id FROM group_members WHERE group_id = ? AND user_type IN (?, ?)",
                (group_id, OWNER, ADMIN))
    return named | {uid for uid, in cur.fetchall() if server_of(uid) == server_id}


@transaction
def create_group(cur, owner: users.User, name: str, server_id: str, now_ms: int,
                 icon: str = "") -> Group:
    if not name.strip() or len(name) > 64:
        raise BadRequest("groupName must be 1-64 characters", "bad_groupName")
    group_id = new_object_id(server_id)
    g = Group(group_id, name, icon, owner.user_id, 1, 1, now_ms, 0, 1)
    cur.execute("INSERT INTO groups (%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)" % _G,
                attrs.astuple(g))
    cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?)",
                (group_id, owner.user_id, OWNER, compact_json(owner.info()), now_ms))
    return g


@transaction
def invite(cur, group_id: str, inviter_id: str, inviter_info: dict, invitees: list[str],
           server_id: str, now_ms: int) -> int:
    """Invite users (§6.4.2.4) at the master, for a member here or on another server (who
    asked with invite/grpreq); answer how many invitations went out."""
    g = master_group(cur, group_id, server_id)
    role = member_type(cur, group_id, inviter_id)
    if role is None:
        raise Forbidden("only members invite", "not_member")
    if role == MEMBER and g.is_allow == Setting.NO:
        raise Forbidden("members may not invite to this group", "invites_closed")
    remote: dict[str, list[str]] = {}
    sent = 0
    for invitee in dict.fromkeys(invitees):
        if member_type(cur, group_id, invitee) is not None:
            continue
        if server_of(invitee) == server_id and users.get_user(cur, invitee) is None:
            raise NotFound("no user %s" % invitee, "unknown_user")
        iid = _new_invitation(cur, group_id, g.name, inviter_id, invitee, now_ms)
        if iid is None:
            continue
        sent += 1
        if server_of(invitee) == server_id:
            _tell_invited(cur, iid, group_id, g.name, inviter_info, invitee, now_ms)
        else:
            remote.setdefault(server_of(invitee), []).append(invitee)
    for server, ids in remote.items():
        enqueue(cur, server, lane(group_id),
                InviteGrpReq(group_id, g.name, inviter_id, inviter_info, ids), now_ms)
    return sent


def _new_invitation(cur, group_id: str, group_name: str, inviter_id: str, invitee: str,
                    now_ms: int) -> str | None:
    """A pending invitation recorded for ``invitee``: its ID, or None when one is pending
    already."""
    cur.execute("SELECT 1 FROM group_invitations WHERE group_id = ? AND invitee_id = ? "
                "AND status = 'pending'", (group_id, invitee))
    if cur.fetchone():
        return None
    iid = secrets.token_hex(12)
    cur.execute("INSERT INTO group_invitations VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                (iid, group_id, group_name, inviter_id, invitee, now_ms))
    return iid


def _tell_invited(cur, iid: str, group_id: str, group_name: str, inviter_info: dict,
                  invitee: str, now_ms: int) -> None:
    emit(cur, invitee, "group_invitation", {
        "invitationID": iid, "groupInfo": {"groupID": group_id, "groupName": group_name},
        "inviter": inviter_info}, now_ms)


@transaction
def request_invitation(cur, group_id: str, inviter: users.User, invitees: list[str],
                       now_ms: int) -> None:
    """A member of a group mastered elsewhere invites: the request goes to the master as
    invite/grpreq, which checks it and sends the invitations (so the master knows every
    invitation it will accept an answer to)."""
    g = get_group(cur, group_id)
    if g is None or g.dissolved or member_type(cur, group_id, inviter.user_id) is None:
        raise Forbidden("%s is not a member of %s" % (inviter.user_id, group_id), "not_member")
    if g.is_allow == Setting.NO and member_type(cur, group_id, inviter.user_id) == MEMBER:
        raise Forbidden("members may not invite to this group", "invites_closed")
    enqueue(cur, server_of(group_id), lane(group_id),
            InviteGrpReq(group_id, g.name, inviter.user_id, inviter.info(), invitees), now_ms)


@transaction
def receive_invitation(cur, group_id: str, group_name: str, inviter_id: str,
                       inviter_info: dict, invitees: list[str], now_ms: int) -> list[str]:
    """invite/grpreq from a group's master: the invitations wait for our users."""
    told = []
    for invitee in invitees:
        iid = _new_invitation(cur, group_id, group_name, inviter_id, invitee, now_ms)
        if iid is None:
            continue
        _tell_invited(cur, iid, group_id, group_name, inviter_info, invitee, now_ms)
        told.append(invitee)
    return told


def invitations(cur, user_id: str) -> list[dict]:
    cur.execute("SELECT invitation_id, group_id, group_name, inviter_id, created_at FROM "
                "group_invitations WHERE invitee_id = ? AND status = 'pending' "
                "ORDER BY created_at", (user_id,))
    return [{"invitationID": i, "groupInfo": {"groupID": g, "groupName": n}, "inviter": w,
             "createTime": c} for i, g, n, w, c in cur.fetchall()]


@transaction
def answer_invitation(cur, invitation_id: str, user: users.User, agree: bool, server_id: str,
                      now_ms: int) -> str:
    cur.execute("SELECT group_id FROM group_invitations WHERE invitation_id = ? AND "
                "invitee_id = ? AND status = 'pending'", (invitation_id, user.user_id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("no pending invitation %s" % invitation_id, "unknown_invitation")
    group_id = row[0]
    if server_of(group_id) == server_id:
        _answered(cur, group_id, user.user_id, agree, user.info(), server_id, now_ms)
    else:
        cur.execute("UPDATE group_invitations SET status = ? WHERE invitation_id = ?",
                    ("accepted" if agree else "refused", invitation_id))
        enqueue(cur, server_of(group_id), lane(group_id),
                InviteGrpRep(group_id, user.user_id, agree, user.info()), now_ms)
    return group_id


def _answered(cur, group_id: str, invitee: str, agree: bool, info: dict, server_id: str,
              now_ms: int) -> None:
    g = master_group(cur, group_id, server_id)
    cur.execute("UPDATE group_invitations SET status = ? WHERE group_id = ? AND invitee_id = ? "
                "AND status = 'pending'", ("accepted" if agree else "refused", group_id,
                                           invitee))
    if cur.rowcount == 0:
        raise Conflict("%s was not invited to %s" % (invitee, group_id), "not_invited")
    if not agree:
        return
    cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (group_id, invitee, MEMBER, compact_json(info), now_ms))
    _announce(cur, g, ADD, dict(info, userID=invitee), [dict(info, userID=invitee)],
              server_id, now_ms)


@transaction
def receive_answer(cur, group_id: str, invitee: str, agree: bool, info: dict, server_id: str,
                   now_ms: int) -> None:
    """invite/grprep at the master (§6.4.2.5)."""
    _answered(cur, group_id, invitee, agree, info, server_id, now_ms)


def _leave(cur, g: Group, user_id: str, oper_user: dict, server_id: str, now_ms: int) -> None:
    cur.execute("SELECT user_info FROM group_members WHERE group_id = ? AND user_id = ?",
                (g.group_id, user_id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("%s is not a member of %s" % (user_id, g.group_id), "not_member")
    cur.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                (g.group_id, user_id))
    _announce(cur, g, REMOVE, oper_user, [dict(json.loads(row[0]), userID=user_id)],
              server_id, now_ms, also=(server_of(user_id),))


@transaction
def quit_group(cur, group_id: str, user: users.User, server_id: str, now_ms: int) -> None:
    """A member leaves (§6.4.2.7); the owner dissolves instead."""
    if server_of(group_id) == server_id:
        g = master_group(cur, group_id, server_id)
        if g.owner_id == user.user_id:
            raise Conflict("the owner cannot quit; dissolve the group instead", "owner_quits")
        _leave(cur, g, user.user_id, user.info(), server_id, now_ms)
        return
    if member_type(cur, group_id, user.user_id) is None:
        raise NotFound("%s is not a member of %s" % (user.user_id, group_id), "not_member")
    cur.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, user.user_id))
    enqueue(cur, server_of(group_id), lane(group_id), QuitGrpMember(group_id, user.user_id),
            now_ms)


@transaction
def receive_quit(cur, group_id: str, user_id: str, server_id: str, now_ms: int) -> None:
    g = master_group(cur, group_id, server_id)
    if g.owner_id == user_id:
        raise Conflict("the owner cannot quit", "owner_quits")
    _leave(cur, g, user_id, {"userID": user_id}, server_id, now_ms)


@transaction
def dissolve(cur, group_id: str, user: users.User, server_id: str, now_ms: int) -> None:
    """The owner dissolves the group on its master (§6.4.2.8), announced with operType 3."""
    g = master_group(cur, group_id, server_id)
    if g.owner_id != user.user_id:
        raise Forbidden("only the owner dissolves a group", "not_owner")
    _announce(cur, g, DISSOLVE, user.info(), [], server_id, now_ms)
    cur.execute("UPDATE groups SET dissolved = 1 WHERE group_id = ?", (group_id,))
    cur.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
    cur.execute("UPDATE group_invitations SET status = 'refused' WHERE group_id = ? AND "
                "status = 'pending'", (group_id,))


@transaction
def receive_notify(cur, group_id: str, body: dict, server_id: str, now_ms: int) -> None:
    """notify/grpnotify from the master (§6.4.2.16): our view of the group follows it and our
    members (and our users it names) are told."""
    oper_type = body["operType"]
    info = body.get("groupInfo") or {}
    gset = body.get("grpset") or {}
    affected = [u for u in body.get("users") or [] if isinstance(u, dict)
                and isinstance(u.get("userID"), str)]
    if get_group(cur, group_id) is None and not _invited_here(cur, group_id):
        # A view is kept only of a group one of our users was invited to.
        raise NotFound("no group %s here" % group_id, "unknown_group")
    if get_group(cur, group_id) is None:
        cur.execute("INSERT INTO groups (%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)" % _G,
                    (group_id, str(info.get("groupName", "")), str(info.get("groupIcon", "")),
                     str(info.get("createUser", "")), 1, 1, now_ms, 0))
    else:
        cur.execute("UPDATE groups SET name = ?, icon = ? WHERE group_id = ?",
                    (str(info.get("groupName", "")), str(info.get("groupIcon", "")), group_id))
    if gset.get("isAllow") in tuple(Setting) and gset.get("isVisible") in tuple(Setting):
        cur.execute("UPDATE groups SET is_allow = ?, is_visible = ? WHERE group_id = ?",
                    (gset["isAllow"], gset["isVisible"], group_id))
    local_before = [uid for uid, in cur.execute(
        "SELECT user_id FROM group_members WHERE group_id = ?", (group_id,)).fetchall()]
    for u in affected:
        uid = u["userID"]
        if server_of(uid) != server_id:
            continue
        if oper_type == ADD:
            if not _accepted(cur, group_id, uid):
                continue  # a master cannot add our user without the user's agreement
            cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (group_id, uid, MEMBER, compact_json(u), now_ms))
        elif oper_type == REMOVE:
            cur.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                        (group_id, uid))
        elif oper_type in (SET_ADMIN, UNSET_ADMIN):
            cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND "
                        "user_id = ?", (ADMIN if oper_type == SET_ADMIN else MEMBER,
                                        group_id, uid))
    if oper_type == TRANSFER and affected:
        cur.execute("UPDATE groups SET owner_id = ? WHERE group_id = ?",
                    (affected[0]["userID"], group_id))
    if oper_type == DISSOLVE:
        cur.execute("UPDATE groups SET dissolved = 1 WHERE group_id = ?", (group_id,))
        cur.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
    count = info.get("groupMemberNum")  # the whole group's, as the master counts it
    told = _told(cur, group_id, oper_type, local_before, affected, server_id,
                 count if isinstance(count, int) else len(local_before))
    for uid in told:
        if users.get_user(cur, uid) is not None:
            emit(cur, uid, "group_notify", dict(body, groupID=group_id), now_ms)


def _invited_here(cur, group_id: str) -> bool:
    cur.execute("SELECT 1 FROM group_invitations WHERE group_id = ? LIMIT 1", (group_id,))
    return cur.fetchone() is not None


def _accepted(cur, group_id: str, user_id: str) -> bool:
    cur.execute("SELECT 1 FROM group_invitations WHERE group_id = ? AND invitee_id = ? AND "
                "status = 'accepted'", (group_id, user_id))
    return cur.fetchone() is not None


def joined(cur, item, state: str, error: str, now_ms: int) -> None:
    """Outbox hook for ``invite_grprep``: the master answered code 0 to our user's agreement,
    so the user is a member from now on, whether or not a grpnotify follows (the standard does
    not oblige the master to send one)."""
    if state != "sent" or item.payload.get("respResult") != Answer.AGREE:
        return
    _join(cur, item.payload.get("groupID"), item.payload.get("ownerID"), now_ms)


def _join(cur, group_id: str, user_id: str, now_ms: int) -> None:
    cur.execute("SELECT group_name FROM group_invitations WHERE group_id = ? AND "
                "invitee_id = ? AND status = 'accepted'", (group_id, user_id))
    row = cur.fetchone()
    user = users.get_user(cur, user_id)
    if row is None or user is None:
        return
    g = get_group(cur, group_id)
    if g is None:
        cur.execute("INSERT INTO groups (%s) VALUES (?, ?, '', '', 1, 1, ?, 0, 0)" % _G,
                    (group_id, row[0], now_ms))
    elif g.dissolved:
        return
    cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (group_id, user_id, MEMBER, compact_json(user.info()), now_ms))
    if cur.rowcount != 1:
        return
    emit(cur, user_id, "group_joined", {"groupID": group_id, "groupName": row[0]}, now_ms)


def _require_role(cur, g: Group, user_id: str, allowed: tuple, errcode: str) -> int:
    role = member_type(cur, g.group_id, user_id)
    if role not in allowed:
        raise Forbidden("%s may not do that in %s" % (user_id, g.group_id), errcode)
    return role


@transaction
def remove_members(cur, group_id: str, owner: users.User, user_ids: list[str],
                   server_id: str, now_ms: int) -> None:
    """Only the owner removes members (§6.4.2.6), each announced with operType 2."""
    g = master_group(cur, group_id, server_id)
    _require_role(cur, g, owner.user_id, (OWNER,), "not_owner")
    for uid in dict.fromkeys(user_ids):
        if uid == owner.user_id:
            raise BadRequest("the owner cannot remove itself", "bad_delateMembers")
        _leave(cur, g, uid, owner.info(), server_id, now_ms)


@transaction
def set_admin(cur, group_id: str, owner: users.User, user_id: str, admin: bool,
              server_id: str, now_ms: int) -> None:
    """The owner makes a member an admin, or a member again (operType 4 / 5).  Admins are
    users of the master server (§6.4.2.1)."""
    g = master_group(cur, group_id, server_id)
    _require_role(cur, g, owner.user_id, (OWNER,), "not_owner")
    role = member_type(cur, group_id, user_id)
    if role is None or role == OWNER:
        raise NotFound("%s is not a member of %s" % (user_id, group_id), "not_member")
    if admin and server_of(user_id) != server_id:
        raise Forbidden("admins are users of the group's master server", "not_master_user")
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (ADMIN if admin else MEMBER, group_id, user_id))
    cur.execute("SELECT user_info FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, user_id))
    info = dict(json.loads(cur.fetchone()[0]), userID=user_id)
    _announce(cur, g, SET_ADMIN if admin else UNSET_ADMIN, owner.info(), [info], server_id,
              now_ms)


@transaction
def update_group(cur, group_id: str, user: users.User, server_id: str, now_ms: int,
                 name: str | None = None, icon: str | None = None,
                 is_allow: int | None = None, is_visible: int | None = None) -> Group:
    """The owner or an admin changes the group's info or settings (§6.4.2.13, operType 7)."""
    g = master_group(cur, group_id, server_id)
    _require_role(cur, g, user.user_id, (OWNER, ADMIN), "not_admin")
    g = attrs.evolve(g, name=g.name if name is None else name,
                     icon=g.icon if icon is None else icon,
                     is_allow=g.is_allow if is_allow is None else is_allow,
                     is_visible=g.is_visible if is_visible is None else is_visible)
    cur.execute("UPDATE groups SET name = ?, icon = ?, is_allow = ?, is_visible = ? "
                "WHERE group_id = ?", (g.name, g.icon, g.is_allow, g.is_visible, group_id))
    _announce(cur, g, UPDATE, user.info(), [], server_id, now_ms)
    return g


def search(cur, query: str, limit: int = 50) -> list[dict]:
    """Visible groups of this server whose name contains ``query``."""
    like = like_pattern(query)
    cur.execute("SELECT group_id FROM groups WHERE master = 1 AND dissolved = 0 AND "
                "is_visible = 1 AND name LIKE ? ESCAPE '\\' ORDER BY created_at LIMIT ?",
                (like, limit))
    out = []
    for (gid,) in cur.fetchall():
        g = get_group(cur, gid)
        out.append({"groupInfo": g.info(_count(cur, gid)), "gset": g.gset()})
    return out


@transaction
def transfer(cur, group_id: str, owner: users.User, new_owner: str, server_id: str,
             now_ms: int) -> None:
    """The owner hands the group to another member who is a user of the master server (never
    to another server's member, §6.4.2.1); the old owner stays as an admin (operType 6)."""
    g = master_group(cur, group_id, server_id)
    _require_role(cur, g, owner.user_id, (OWNER,), "not_owner")
    if member_type(cur, group_id, new_owner) is None or new_owner == owner.user_id:
        raise NotFound("%s is not another member of %s" % (new_owner, group_id), "not_member")
    if server_of(new_owner) != server_id:
        raise Forbidden("a group is never transferred to another server's member",
                        "not_master_user")
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (ADMIN, group_id, owner.user_id))
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (OWNER, group_id, new_owner))
    cur.execute("UPDATE groups SET owner_id = ? WHERE group_id = ?", (new_owner, group_id))
    cur.execute("SELECT user_info FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, new_owner))
    info = dict(json.loads(cur.fetchone()[0]), userID=new_owner)
    _announce(cur, get_group(cur, group_id), TRANSFER, owner.info(), [info], server_id, now_ms)
