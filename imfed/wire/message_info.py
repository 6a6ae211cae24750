"""messageInfo (§6.2.2-6.2.6, docs/protocol.md §5): parsed and validated once at the edge, emitted
in the standard's spelling."""

from __future__ import annotations

import re
import secrets

import attrs

from .errors import BadRequest
from .fields import SERVER_ID, ascii_digits, plain

__all__ = ["MessageInfo", "parse_message_info", "split_id", "user_id", "object_id",
           "server_part", "host_port", "server_of",
           "MESSAGE_TYPES", "new_object_id", "announced_by"]

MESSAGE_TYPES = ("text", "image", "voice", "file", "repeal")
_LOCAL = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_PORT = re.compile(r"^(%s(?:\.%s)*):([0-9]{1,5})$" % (_LABEL, _LABEL))
_OPAQUE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
MAX_TEXT = 10_000


def split_id(value) -> tuple[str, str] | None:
    """(local part, serverId) of ``local@serverId``; None when it is not of that form."""
    if not isinstance(value, str) or value.count("@") != 1:
        return None
    local, server = value.split("@")
    return local, server


def server_of(some_id: str) -> str:
    """The part of a user, group, message or file ID after its @."""
    return some_id.rsplit("@", 1)[1]


def announced_by(info: "MessageInfo", server: str) -> bool:
    """Whether a message's file, if it names one, is ``server``'s: the only server that may
    announce a file is the one that holds it (§6.2.2; §6.4.2.10: the master's copy in a
    group)."""
    if "fileID" not in info.content:
        return True
    file_id = info.content["fileID"]
    return isinstance(file_id, str) and "@" in file_id and server_of(file_id) == server


def server_part(part: str) -> bool:
    """The part after the @: a serverId (addressed through the directory) or host:port
    (addressed through DNS, §6.2.2)."""
    if SERVER_ID.match(part):
        return True
    m = _HOST_PORT.match(part)
    return bool(m) and len(part) <= 260 and 0 < int(m.group(2)) < 65536


def host_port(part: str) -> tuple[str, int] | None:
    """(host, port) of a host:port server part, host lower-cased; None for a serverId."""
    m = _HOST_PORT.match(part)
    return (m.group(1).lower(), int(m.group(2))) if m else None


def user_id(value, field: str) -> str:
    parts = split_id(value)
    if parts is None or not _LOCAL.match(parts[0]) or not server_part(parts[1]):
        raise BadRequest("%s must be a user ID <local>@<serverId> or <local>@<host>:<port>"
                         % field, "bad_" + field)
    return value


def object_id(value, field: str) -> str:
    parts = split_id(value)
    if parts is None or not _OPAQUE.match(parts[0]) or not server_part(parts[1]):
        raise BadRequest("%s must be <opaque>@<serverId> or <opaque>@<host>:<port>" % field,
                         "bad_" + field)
    return value


def new_object_id(server_id: str) -> str:
    """A message, file or group ID made here: 120 random bits (docs/protocol.md §1), in hex (so
    never with a leading "-", which command lines would take for an option)."""
    return "%s@%s" % (secrets.token_hex(15), server_id)


def _int(value, field: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise BadRequest("%s must be an integer" % field, "bad_" + field)
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 18:
        value = int(value)
    if not isinstance(value, int) or value < minimum:
        raise BadRequest("%s must be an integer from %d" % (field, minimum), "bad_" + field)
    return value


def _content(message_type: str, content) -> dict:
    if message_type == "repeal":
        return {}
    if not isinstance(content, dict):
        raise BadRequest("content must be an object", "bad_content")
    if message_type == "text":
        text = content.get("message")
        if not isinstance(text, str) or not text or len(text) > MAX_TEXT:
            raise BadRequest("content.message must be 1-%d characters" % MAX_TEXT,
                             "bad_content")
        return {"message": text}
    file_id = content.get("fileID", content.get("fileID "))
    out = {"size": _int(content.get("size"), "size", 1),
           "fileID": object_id(file_id, "fileID")}
    md5 = content.get("md5")
    if not isinstance(md5, str) or not _MD5.match(md5.lower()):
        raise BadRequest("content.md5 must be 32 hex characters", "bad_md5")
    out["md5"] = md5.lower()
    name = content.get("name", "")
    if not isinstance(name, str) or len(name) > 255 or "/" in name:
        raise BadRequest("content.name must be a file name", "bad_name")
    plain(name, "name")  # no control character, no bidirectional override
    if name:
        out["name"] = name
    if message_type == "voice":
        out["duration"] = _int(content.get("duration"), "duration", 1)
    return out


@attrs.frozen
class MessageInfo:
    sender_id: str
    recv_id: str
    message_type: str
    chat_type: int
    message_id: str
    content: dict
    version: str = "v1"

    @property
    def sender_server(self) -> str:
        return self.sender_id.split("@")[1]

    @property
    def recv_server(self) -> str:
        return self.recv_id.split("@")[1]

    def to_wire(self) -> dict:
        out = {"senderID": self.sender_id, "recvID": self.recv_id,
               "messageType": self.message_type, "version": self.version,
               "type": self.chat_type, "messageID": self.message_id}
        if self.content:
            out["content"] = self.content
        return out


def parse_message_info(value) -> MessageInfo:
    if not isinstance(value, dict):
        raise BadRequest("messageInfo must be an object", "bad_messageInfo")
    raw_type = value.get("messageType", value.get("messagetype"))
    if not isinstance(raw_type, str) or raw_type.lower() not in MESSAGE_TYPES:
        raise BadRequest("messageType must be one of %s" % ", ".join(MESSAGE_TYPES),
                         "bad_messageType")
    message_type = raw_type.lower()
    chat_type = _int(value.get("type"), "type", 1)
    if chat_type not in (1, 2):
        raise BadRequest("type is 1 (one-to-one) or 2 (group)", "bad_type")
    sender = user_id(value.get("senderID"), "senderID")
    if chat_type == 1:
        recv = user_id(value.get("recvID"), "recvID")
    else:
        recv = object_id(value.get("recvID"), "recvID")
    message_id = object_id(value.get("messageID"), "messageID")
    version = value.get("version", "v1")
    if not isinstance(version, str) or len(version) > 16:
        raise BadRequest("version must be a string such as v1", "bad_version")
    return MessageInfo(sender, recv, message_type, chat_type, message_id,
                       _content(message_type, value.get("content")), version)
