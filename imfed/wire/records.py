"""The standard's records and enumerations (§6.3.1, §6.4.1.1-2, §6.4.2), typed: what each
field may hold, parsed once where it arrives, written in the standard's spelling.

The enumerations are ``IntEnum``: they compare and serialise as the integers on the wire.
"""

from __future__ import annotations

from enum import IntEnum

import attrs

__all__ = ["ChatType", "Answer", "OperType", "UserType", "VerifyType", "Setting",
           "ServerStatus", "UserInfo", "GroupInfo", "GroupSettings", "ServerInfo"]


class ChatType(IntEnum):
    """messageInfo ``type`` (§6.2.2)."""
    ONE_TO_ONE = 1
    GROUP = 2


class Answer(IntEnum):
    """``isAgree`` of a friend request answer, ``respResult`` of a group invitation's."""
    AGREE = 1
    REFUSE = 2

    @classmethod
    def of(cls, agree: bool) -> "Answer":
        return cls.AGREE if agree else cls.REFUSE


class OperType(IntEnum):
    """notify/grpnotify ``operType`` (§6.4.2.16)."""
    ADD = 1
    REMOVE = 2
    DISSOLVE = 3
    SET_ADMIN = 4
    UNSET_ADMIN = 5
    TRANSFER = 6
    UPDATE = 7


class UserType(IntEnum):
    """A group member's ``userType``."""
    MEMBER = 1
    ADMIN = 2
    OWNER = 3


class VerifyType(IntEnum):
    """A user's ``verifyType``: whether friend requests are taken (§6.4.1.4)."""
    REFUSE_ALL = 1
    ALLOW = 2


class Setting(IntEnum):
    """``isAllow`` / ``isVisible`` of a group's gset."""
    YES = 1
    NO = 2


class ServerStatus(IntEnum):
    """A server's ``status`` in the directory (§6.3.1)."""
    ACTIVE = 0
    SUSPENDED = 1
    DEREGISTERED = 2


_USER_TEXT = ("phoneNumber", "remark", "name", "portrait")


@attrs.frozen
class UserInfo:
    """userInfo (§6.4.1.1), plus updateTime (docs/protocol.md §5).  A field another server
    did not send is None and is not sent on."""
    user_id: str
    phone: str | None = None
    name: str | None = None
    portrait: str | None = None
    remark: str | None = None
    update_time: int | None = None

    @classmethod
    def from_wire(cls, value, user_id: str) -> "UserInfo":
        """Another server's userInfo as we keep it: the known string fields (512 characters
        at most), anything else dropped, userID forced to ``user_id``."""
        value = value if isinstance(value, dict) else {}
        text = {k: value[k] for k in _USER_TEXT
                if isinstance(value.get(k), str) and len(value[k]) <= 512}
        update = value.get("updateTime")
        return cls(user_id, text.get("phoneNumber"), text.get("name"), text.get("portrait"),
                   text.get("remark"),
                   update if isinstance(update, int) and not isinstance(update, bool) else None)

    def to_wire(self) -> dict:
        out: dict = {}
        for key, value in (("phoneNumber", self.phone), ("remark", self.remark),
                           ("name", self.name), ("portrait", self.portrait)):
            if value is not None:
                out[key] = value
        if self.update_time is not None:
            out["updateTime"] = self.update_time
        out["userID"] = self.user_id
        return out


@attrs.frozen
class ServerInfo:
    """A directory entry (§6.3.1): what the management server says of a member."""
    server_id: str
    name: str
    address: str
    status: ServerStatus
    fingerprint: str

    @classmethod
    def from_wire(cls, entry) -> "ServerInfo":
        """KeyError, TypeError or ValueError for an entry that is not one."""
        return cls(str(entry["serverId"]), str(entry.get("serverName", "")),
                   str(entry["serverAddress"]), ServerStatus(int(entry["status"])),
                   str(entry.get("certFingerprint", "")))

    def to_wire(self) -> dict:
        return {"serverId": self.server_id, "serverName": self.name,
                "serverAddress": self.address, "status": int(self.status),
                "certFingerprint": self.fingerprint}


@attrs.frozen
class GroupInfo:
    """groupInfo (§6.4.1.2)."""
    group_id: str
    name: str
    icon: str
    member_count: int
    owner_id: str
    created_at: int

    def to_wire(self) -> dict:
        return {"groupID": self.group_id, "groupName": self.name, "groupIcon": self.icon,
                "groupMemberNum": self.member_count, "createUser": self.owner_id,
                "createTime": self.created_at}


@attrs.frozen
class GroupSettings:
    """gset: may members invite, may the group be found."""
    is_allow: Setting = Setting.YES
    is_visible: Setting = Setting.YES

    def to_wire(self) -> dict:
        return {"isAllow": int(self.is_allow), "isVisible": int(self.is_visible)}
