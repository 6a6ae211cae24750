"""Groups across servers (§6.4.2, docs/protocol.md §5) as stored: the master server (the
owner's) keeps the group, its members and settings; other servers keep what they are told.
Messages: group_messages.py.

Functions of a unit of work (imfed/node/store/unit.py), like messages.py: each change, its
events and the deliveries it owes other servers (one per server with members, in the group's
lane) are written together.  Who may invite, remove, rename or dissolve is decided by
imfed/node/handlers/groups.py, in the same unit.
"""

from __future__ import annotations

import json
import secrets

import attrs

from ...storage import like_pattern, transaction
from ...wire.fields import NOTICE_MAX
from ...wire.message_info import new_object_id, server_of
from ...wire.queued import InviteGrpRep, InviteGrpReq, NotifyGrpNotify, QuitGrpMember
from ...wire.records import Answer, GroupInfo, GroupSettings, OperType, Setting, UserType
from . import group_log, reads, users
from .events import compact_json, emit
from .outbox import enqueue

__all__ = ["Group", "Member", "Membership", "Invitation", "OWNER", "ADMIN", "MEMBER", "lane",
           "get_group", "live_groups", "members", "member_type", "member_info",
           "servers_with_members", "my_groups", "search", "invitations", "announce", "create_group",
           "add_invitations", "receive_invitation", "request_invitations", "queue_answer",
           "pending_invitation", "set_invitation", "close_invitations", "add_member",
           "remove_member", "leave_view", "set_member_type", "set_notice", "update_group",
           "transfer", "dissolve", "invited_here", "apply_notify", "joined", "LARGE_GROUP"]

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
    notice: str = ""
    notice_by: str = ""
    notice_at: int = 0

    def info(self, member_count: int) -> dict:
        """The standard's groupInfo (§6.4.1.2), and for a group that has had an announcement
        (set or cleared) imfed's ``groupNotice`` (docs/groups.md): a group that never had one
        is described exactly as the standard does."""
        out = GroupInfo(self.group_id, self.name, self.icon, member_count, self.owner_id,
                        self.created_at).to_wire()
        if self.notice_at:
            out["groupNotice"] = {"text": self.notice, "userID": self.notice_by,
                                  "time": self.notice_at}
        return out

    def gset(self) -> dict:
        return GroupSettings(Setting(self.is_allow), Setting(self.is_visible)).to_wire()


_G = "group_id, name, icon, owner_id, is_allow, is_visible, created_at, dissolved, master"
_GN = _G + ", notice, notice_by, notice_at"  # what a Group is read from


def get_group(cur, group_id: str) -> Group | None:
    cur.execute("SELECT %s FROM groups WHERE group_id = ?" % _GN, (group_id,))
    row = cur.fetchone()
    return Group(*row) if row else None


@attrs.frozen
class Member:
    user_id: str
    user_type: int
    info: dict  # the userInfo the member joined with (userID included)

    def to_wire(self) -> dict:
        """An entry of the standard's member list (§6.4.2.14)."""
        return {"userType": self.user_type, "userInfo": self.info}


def members(cur, group_id: str) -> list[Member]:
    """Owner first, then admins, then members, each in the order they joined."""
    cur.execute("SELECT user_id, user_type, user_info FROM group_members WHERE group_id = ? "
                "ORDER BY user_type DESC, joined_at, user_id", (group_id,))
    return [Member(u, t, dict(json.loads(i), userID=u)) for u, t, i in cur.fetchall()]


def live_groups(cur) -> list[Group]:
    """Every group not dissolved: those mastered here first, each by age."""
    cur.execute("SELECT %s FROM groups WHERE dissolved = 0 ORDER BY master DESC, created_at"
                % _GN)
    return [Group(*row) for row in cur.fetchall()]


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


@attrs.frozen
class Membership:
    """A group as one of its members (or a searcher: ``user_type`` None) sees it in a list."""

    group: Group
    count: int
    user_type: int | None = None
    read_gseq: int = 0  # the member's read marker (reads.py)
    unread: int = 0  # messages of others kept here after it

    def to_wire(self) -> dict:
        out: dict = {"groupInfo": self.group.info(self.count), "gset": self.group.gset()}
        if self.user_type is not None:
            out.update(userType=self.user_type, readGseq=self.read_gseq, unread=self.unread)
        return out


def my_groups(cur, user_id: str) -> list[Membership]:
    cur.execute("SELECT g.group_id, m.user_type FROM groups g JOIN group_members m "
                "ON g.group_id = m.group_id WHERE m.user_id = ? AND g.dissolved = 0 "
                "ORDER BY g.created_at", (user_id,))
    found = cur.fetchall()
    read = reads.markers(cur, user_id)
    out = []
    for gid, user_type in found:
        cur.execute("SELECT COUNT(*) FROM group_messages WHERE group_id = ? AND gseq > ? AND "
                    "sender_id != ? AND recalled = 0", (gid, read.get(gid, 0), user_id))
        unread = cur.fetchone()[0]
        out.append(Membership(get_group(cur, gid), _count(cur, gid), user_type,
                              read.get(gid, 0), unread))
    return out


def member_info(cur, group_id: str, user_id: str) -> dict | None:
    """The userInfo a member joined with (userID included), or None for a non-member."""
    cur.execute("SELECT user_info FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, user_id))
    row = cur.fetchone()
    return dict(json.loads(row[0]), userID=user_id) if row else None


def announce(cur, g: Group, oper_type: int, oper_user: dict, affected: list[dict],
              server_id: str, now_ms: int, also: tuple = (), changed: tuple = ()) -> None:
    """notify/grpnotify to every other server with members (and ``also``, servers of users
    who just left); a ``group_notify`` event to the local members and affected users; the
    line in the group's log (``changed``: what an update changed, group_log.record)."""
    notice = NotifyGrpNotify(g.group_id, oper_type, oper_user, g.info(_count(cur, g.group_id)),
                             g.gset(), affected)
    line = None
    if oper_type != UPDATE or changed:  # an update changing nothing is no line
        line = group_log.record(cur, g.group_id, oper_type, oper_user, affected,
                                notice.group_info, changed, now_ms)
    targets = servers_with_members(cur, g.group_id)
    for server in set(targets) | set(also):
        if server != server_id:
            enqueue(cur, server, lane(g.group_id), notice, now_ms)
    local = _told(cur, g.group_id, oper_type, targets.get(server_id, []), affected,
                  server_id, notice.group_info["groupMemberNum"])
    event = _event(notice.to_wire(), changed, line)
    for uid in local:
        emit(cur, uid, "group_notify", event, now_ms)


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


def create_group(cur, owner: users.User, name: str, server_id: str, now_ms: int,
                 icon: str = "") -> Group:
    """A new group mastered here, ``owner`` its first member."""
    group_id = new_object_id(server_id)
    g = Group(group_id, name, icon, owner.user_id, 1, 1, now_ms, 0, 1)
    cur.execute("INSERT INTO groups (%s) VALUES (%s)"
                % (_GN, ", ".join("?" * len(attrs.fields(Group)))), attrs.astuple(g))
    cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?)",
                (group_id, owner.user_id, OWNER, compact_json(owner.info()), now_ms))
    return g


def add_invitations(cur, g: Group, inviter_id: str, inviter_info: dict, invitees: list[str],
                    server_id: str, now_ms: int) -> int:
    """Invitations at the master (§6.4.2.4) for whoever is neither a member nor invited
    already: our users are told, other servers' owed invite/grpreq; how many went out."""
    remote: dict[str, list[str]] = {}
    sent = 0
    for invitee in dict.fromkeys(invitees):
        if member_type(cur, g.group_id, invitee) is not None:
            continue
        iid = new_invitation(cur, g.group_id, g.name, inviter_id, invitee, now_ms)
        if iid is None:
            continue
        sent += 1
        if server_of(invitee) == server_id:
            tell_invited(cur, iid, g.group_id, g.name, inviter_info, invitee, now_ms)
        else:
            remote.setdefault(server_of(invitee), []).append(invitee)
    for server, ids in remote.items():
        enqueue(cur, server, lane(g.group_id),
                InviteGrpReq(g.group_id, g.name, inviter_id, inviter_info, ids), now_ms)
    return sent


def new_invitation(cur, group_id: str, group_name: str, inviter_id: str, invitee: str,
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


def tell_invited(cur, iid: str, group_id: str, group_name: str, inviter_info: dict,
                  invitee: str, now_ms: int) -> None:
    emit(cur, invitee, "group_invitation", {
        "invitationID": iid, "groupInfo": {"groupID": group_id, "groupName": group_name},
        "inviter": inviter_info}, now_ms)


def request_invitations(cur, g: Group, inviter: users.User, invitees: list[str],
                        now_ms: int) -> None:
    """A member's invitations for a group mastered elsewhere: asked of the master as
    invite/grpreq, which checks them and sends the invitations (so the master knows every
    invitation it will accept an answer to)."""
    enqueue(cur, server_of(g.group_id), lane(g.group_id),
            InviteGrpReq(g.group_id, g.name, inviter.user_id, inviter.info(), invitees), now_ms)


@transaction
def receive_invitation(cur, group_id: str, group_name: str, inviter_id: str,
                       inviter_info: dict, invitees: list[str], now_ms: int) -> list[str]:
    """invite/grpreq from a group's master: the invitations wait for our users."""
    told = []
    for invitee in invitees:
        iid = new_invitation(cur, group_id, group_name, inviter_id, invitee, now_ms)
        if iid is None:
            continue
        tell_invited(cur, iid, group_id, group_name, inviter_info, invitee, now_ms)
        told.append(invitee)
    return told


@attrs.frozen
class Invitation:
    invitation_id: str
    group_id: str
    group_name: str
    inviter_id: str
    created_at: int

    def to_client(self) -> dict:
        return {"invitationID": self.invitation_id,
                "groupInfo": {"groupID": self.group_id, "groupName": self.group_name},
                "inviter": self.inviter_id, "createTime": self.created_at}


def invitations(cur, user_id: str) -> list[Invitation]:
    cur.execute("SELECT invitation_id, group_id, group_name, inviter_id, created_at FROM "
                "group_invitations WHERE invitee_id = ? AND status = 'pending' "
                "ORDER BY created_at", (user_id,))
    return [Invitation(*row) for row in cur.fetchall()]


def pending_invitation(cur, invitation_id: str, user_id: str) -> str | None:
    """The group of ``user_id``'s pending invitation ``invitation_id``, or None."""
    cur.execute("SELECT group_id FROM group_invitations WHERE invitation_id = ? AND "
                "invitee_id = ? AND status = 'pending'", (invitation_id, user_id))
    row = cur.fetchone()
    return row[0] if row else None


def set_invitation(cur, invitation_id: str, agree: bool) -> None:
    cur.execute("UPDATE group_invitations SET status = ? WHERE invitation_id = ?",
                ("accepted" if agree else "refused", invitation_id))


def queue_answer(cur, user: users.User, group_id: str, agree: bool, now_ms: int) -> None:
    """Our user's answer owed to the group's master (invite/grprep)."""
    enqueue(cur, server_of(group_id), lane(group_id),
            InviteGrpRep(group_id, user.user_id, agree, user.info()), now_ms)


def close_invitations(cur, group_id: str, invitee: str, agree: bool) -> bool:
    """``invitee``'s pending invitations to the group answered; False when there were none."""
    cur.execute("UPDATE group_invitations SET status = ? WHERE group_id = ? AND invitee_id = ? "
                "AND status = 'pending'", ("accepted" if agree else "refused", group_id,
                                           invitee))
    return cur.rowcount > 0


def add_member(cur, g: Group, user_id: str, info: dict, server_id: str, now_ms: int) -> None:
    """A member joins at the master, announced with operType 1."""
    cur.execute("INSERT INTO group_members VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (g.group_id, user_id, MEMBER, compact_json(info), now_ms))
    joined = dict(info, userID=user_id)
    announce(cur, g, ADD, joined, [joined], server_id, now_ms)


def remove_member(cur, g: Group, info: dict, oper_user: dict, server_id: str,
                  now_ms: int) -> None:
    """A member (``info``, its userInfo) leaves the group at the master, announced with
    operType 2 (to its server too)."""
    user_id = info["userID"]
    cur.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                (g.group_id, user_id))
    announce(cur, g, REMOVE, oper_user, [info], server_id, now_ms, also=(server_of(user_id),))


def leave_view(cur, group_id: str, user_id: str, now_ms: int) -> None:
    """Our user leaves a group mastered elsewhere: out of our view now, the master told
    (quit/grpmember)."""
    cur.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                (group_id, user_id))
    enqueue(cur, server_of(group_id), lane(group_id), QuitGrpMember(group_id, user_id), now_ms)


def dissolve(cur, g: Group, oper_user: dict, server_id: str, now_ms: int) -> None:
    """The group ends at the master, announced with operType 3."""
    announce(cur, g, DISSOLVE, oper_user, [], server_id, now_ms)
    cur.execute("UPDATE groups SET dissolved = 1 WHERE group_id = ?", (g.group_id,))
    cur.execute("DELETE FROM group_members WHERE group_id = ?", (g.group_id,))
    cur.execute("UPDATE group_invitations SET status = 'refused' WHERE group_id = ? AND "
                "status = 'pending'", (g.group_id,))


def set_notice(cur, g: Group, text: str, by: users.User, server_id: str,
               now_ms: int) -> Group:
    """The group's announcement (``""``: none), announced with operType 7 (groupInfo carries
    it as groupNotice)."""
    cur.execute("UPDATE groups SET notice = ?, notice_by = ?, notice_at = ? WHERE group_id = ?",
                (text, by.user_id, now_ms, g.group_id))
    g = get_group(cur, g.group_id)
    announce(cur, g, UPDATE, by.info(), [], server_id, now_ms, changed=("groupNotice",))
    return g


def set_member_type(cur, g: Group, user_id: str, admin: bool, oper_user: dict,
                    server_id: str, now_ms: int) -> None:
    """A member made an admin, or a member again (operType 4 / 5)."""
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (ADMIN if admin else MEMBER, g.group_id, user_id))
    announce(cur, g, SET_ADMIN if admin else UNSET_ADMIN, oper_user,
             [member_info(cur, g.group_id, user_id)], server_id, now_ms)


def update_group(cur, g: Group, oper_user: dict, server_id: str, now_ms: int) -> None:
    """The group's info and settings as ``g`` has them, announced with operType 7."""
    before = get_group(cur, g.group_id)
    changed = _changed(before, g.name, g.icon, None, (g.is_allow, g.is_visible))
    cur.execute("UPDATE groups SET name = ?, icon = ?, is_allow = ?, is_visible = ? "
                "WHERE group_id = ?", (g.name, g.icon, g.is_allow, g.is_visible, g.group_id))
    announce(cur, g, UPDATE, oper_user, [], server_id, now_ms, changed=changed)


def _changed(before: "Group | None", name: str, icon: str, notice: tuple | None,
             gset: tuple) -> tuple:
    """What an update changes of a group as ``before`` had it: of groupName, groupIcon,
    groupNotice ((text, by, time); None: not said) and grpset ((isAllow, isVisible))."""
    if before is None:
        return ()
    out = []
    if name != before.name:
        out.append("groupName")
    if icon != before.icon:
        out.append("groupIcon")
    if notice is not None and notice != (before.notice, before.notice_by, before.notice_at):
        out.append("groupNotice")
    if gset != (before.is_allow, before.is_visible):
        out.append("grpset")
    return tuple(out)


def transfer(cur, g: Group, owner: users.User, new_owner: str, server_id: str,
             now_ms: int) -> None:
    """The group is ``new_owner``'s; the old owner stays as an admin (operType 6)."""
    group_id = g.group_id
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (ADMIN, group_id, owner.user_id))
    cur.execute("UPDATE group_members SET user_type = ? WHERE group_id = ? AND user_id = ?",
                (OWNER, group_id, new_owner))
    cur.execute("UPDATE groups SET owner_id = ? WHERE group_id = ?", (new_owner, group_id))
    announce(cur, get_group(cur, group_id), TRANSFER, owner.info(),
             [member_info(cur, group_id, new_owner)], server_id, now_ms)


def apply_notify(cur, group_id: str, body: dict, server_id: str, now_ms: int) -> None:
    """notify/grpnotify from the master (§6.4.2.16): our view of the group follows it and our
    members (and our users it names) are told.  (A view is kept only of a group one of our
    users was invited to: the handler checks.)"""
    oper_type = body["operType"]
    info = body.get("groupInfo") or {}
    gset = body.get("grpset") or {}
    affected = [u for u in body.get("users") or [] if isinstance(u, dict)
                and isinstance(u.get("userID"), str)]
    before = get_group(cur, group_id)
    notice = _notice(info.get("groupNotice"))
    settings = ((gset["isAllow"], gset["isVisible"]) if gset.get("isAllow") in tuple(Setting)
                and gset.get("isVisible") in tuple(Setting) else None)  # None: not said right
    changed = ()
    if oper_type == UPDATE and before is not None:
        changed = _changed(before, str(info.get("groupName", "")), str(info.get("groupIcon", "")),
                           notice, settings or (before.is_allow, before.is_visible))
    line = None
    if oper_type != UPDATE or changed:  # an update changing nothing here is no line
        line = group_log.record(cur, group_id, oper_type, body.get("operUser"), affected, info,
                                changed, now_ms)
    if before is None:
        cur.execute("INSERT INTO groups (%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)" % _G,
                    (group_id, str(info.get("groupName", "")), str(info.get("groupIcon", "")),
                     str(info.get("createUser", "")), 1, 1, now_ms, 0))
    else:
        cur.execute("UPDATE groups SET name = ?, icon = ? WHERE group_id = ?",
                    (str(info.get("groupName", "")), str(info.get("groupIcon", "")), group_id))
    if settings is not None:
        cur.execute("UPDATE groups SET is_allow = ?, is_visible = ? WHERE group_id = ?",
                    (*settings, group_id))
    if notice is not None:  # an imfed master says it; another vendor's may not
        cur.execute("UPDATE groups SET notice = ?, notice_by = ?, notice_at = ? WHERE "
                    "group_id = ?", (*notice, group_id))
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
            emit(cur, uid, "group_notify", _event(dict(body, groupID=group_id), changed, line),
                 now_ms)


def _event(body: dict, changed: tuple, line: int | None) -> dict:
    """A group_notify event: the grpnotify body, what an update changed, the line's ID."""
    if changed:
        body["changed"] = list(changed)
    if line is not None:
        body["lineID"] = line
    return body


def _notice(value) -> tuple[str, str, int] | None:
    """(text, userID, time) of a groupNotice as a master sends it; None when it sends none
    or one that cannot be."""
    if not isinstance(value, dict):
        return None
    text, by, at = value.get("text"), value.get("userID", ""), value.get("time", 0)
    if not isinstance(text, str) or len(text) > NOTICE_MAX or not isinstance(by, str) or \
            len(by) > 200 or isinstance(at, bool) or not isinstance(at, int):
        return None
    return text, by, at


def invited_here(cur, group_id: str) -> bool:
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


def search(cur, query: str, limit: int = 50) -> list[Membership]:
    """Visible groups of this server whose name contains ``query``."""
    like = like_pattern(query)
    cur.execute("SELECT group_id FROM groups WHERE master = 1 AND dissolved = 0 AND "
                "is_visible = 1 AND name LIKE ? ESCAPE '\\' ORDER BY created_at LIMIT ?",
                (like, limit))
    return [Membership(get_group(cur, gid), _count(cur, gid)) for (gid,) in cur.fetchall()]
