"""What a node queues for another server (imfed/node/store/outbox.py): one attrs payload per kind
of queued call, each naming its endpoint (``kind``, a key of :data:`paths.QUEUED`) and
writing the body the standard gives that endpoint.  The outbox stores ``kind`` and
``to_wire()``; nothing else builds these bodies."""

from __future__ import annotations

from typing import ClassVar, Union

import attrs

from .message_info import MessageInfo
from .records import Answer

__all__ = ["Queued", "Chat", "AddUsers", "RspUsers", "DelUsers", "InviteGrpReq",
           "InviteGrpRep", "QuitGrpMember", "NotifyGrpChat", "NotifyGrpNotify"]


def _tuple(values) -> tuple:
    return tuple(values)


@attrs.frozen
class Chat:
    """chat (§6.4.1.9): a one-to-one message (or its recall, a ``repeal``), or a member's
    group message to the group's master."""
    kind: ClassVar[str] = "chat"
    info: MessageInfo

    def to_wire(self) -> dict:
        return {"messageInfo": self.info.to_wire()}


@attrs.frozen
class AddUsers:
    """add/users (§6.4.1.5): ``owner_id`` asks ``user_id`` to be friends."""
    kind: ClassVar[str] = "add_users"
    user_id: str
    remark: str
    owner_id: str
    owner_info: dict

    def to_wire(self) -> dict:
        return {"userID": self.user_id, "remark": self.remark, "ownerID": self.owner_id,
                "userInfo": self.owner_info}


@attrs.frozen
class RspUsers:
    """rsp/users (§6.4.1.6): ``owner_id``'s answer to ``user_id``'s friend request."""
    kind: ClassVar[str] = "rsp_users"
    user_id: str
    agree: bool
    owner_id: str
    owner_info: dict

    def to_wire(self) -> dict:
        return {"userID": self.user_id, "isAgree": Answer.of(self.agree),
                "ownerID": self.owner_id, "userInfo": self.owner_info}


@attrs.frozen
class DelUsers:
    """del/users (§6.4.1.7): ``owner_id`` no longer a friend of ``user_id``."""
    kind: ClassVar[str] = "del_users"
    user_id: str
    owner_id: str

    def to_wire(self) -> dict:
        return {"userID": self.user_id, "ownerID": self.owner_id}


@attrs.frozen
class InviteGrpReq:
    """invite/grpreq (§6.4.2.2): ``inviter_id`` invites ``invitees`` to a group (from the
    master to the invitees' server, or from a member's server to the master)."""
    kind: ClassVar[str] = "invite_grpreq"
    group_id: str
    group_name: str
    inviter_id: str
    inviter_info: dict
    invitees: tuple[str, ...] = attrs.field(converter=_tuple)

    def to_wire(self) -> dict:
        return {"userID": self.inviter_id,
                "reqInfo": {"groupInfo": {"groupID": self.group_id,
                                          "groupName": self.group_name},
                            "userInfo": self.inviter_info,
                            "inviteUsers": list(self.invitees)}}


@attrs.frozen
class InviteGrpRep:
    """invite/grprep (§6.4.2.3): an invitee's answer, to the group's master."""
    kind: ClassVar[str] = "invite_grprep"
    group_id: str
    owner_id: str
    agree: bool
    owner_info: dict

    def to_wire(self) -> dict:
        return {"groupID": self.group_id, "ownerID": self.owner_id,
                "respResult": Answer.of(self.agree), "userInfo": self.owner_info}


@attrs.frozen
class QuitGrpMember:
    """quit/grpmember (§6.4.2.5): a member leaves, told to the master."""
    kind: ClassVar[str] = "quit_grpmember"
    group_id: str
    owner_id: str

    def to_wire(self) -> dict:
        return {"groupID": self.group_id, "ownerID": self.owner_id}


@attrs.frozen
class NotifyGrpChat:
    """notify/grpchat (§6.4.2.11): the master hands a group message to a member server, for
    ``user_ids`` there."""
    kind: ClassVar[str] = "notify_grpchat"
    group_id: str
    user_ids: tuple[str, ...] = attrs.field(converter=_tuple)
    info: MessageInfo = attrs.field(kw_only=True)

    def to_wire(self) -> dict:
        return {"groupID": self.group_id, "userIDs": list(self.user_ids),
                "messageInfo": self.info.to_wire()}


@attrs.frozen
class NotifyGrpNotify:
    """notify/grpnotify (§6.4.2.9): a change of a group (``oper_type``: who joined, left,
    was removed, the settings, dissolution), from its master."""
    kind: ClassVar[str] = "notify_grpnotify"
    group_id: str
    oper_type: int
    oper_user: dict
    group_info: dict
    grpset: dict
    users: tuple = attrs.field(converter=_tuple)

    def to_wire(self) -> dict:
        return {"operType": self.oper_type, "operUser": self.oper_user,
                "groupInfo": self.group_info, "grpset": self.grpset,
                "users": list(self.users), "groupID": self.group_id}


Queued = Union[Chat, AddUsers, RspUsers, DelUsers, InviteGrpReq, InviteGrpRep, QuitGrpMember,
               NotifyGrpChat, NotifyGrpNotify]
"""A call a node owes another server."""
