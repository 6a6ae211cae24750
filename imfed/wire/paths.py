"""Every path of the interconnection and management interfaces (docs/protocol.md §2-6), in one
place: the routes register them, the clients call them, nothing else spells them.

An :class:`Endpoint` is a path under ``/sns/`` with its method and the names of its query
parameters.  Calls a node owes another node (the outbox's) are named by their endpoint's
``kind``; their payload is the request body plus the query parameters, so a queued item is a
kind and a JSON object and the path is made only when it is sent.
"""

from __future__ import annotations

from urllib.parse import urlencode

import attrs

__all__ = ["Endpoint", "SNS", "QUEUED", "queued", "CHAT", "ADD_USERS", "RSP_USERS",
           "DEL_USERS", "FIND_USERS", "VERIFY_USERS", "USERS", "QUERY_USERS",
           "DOWNLOAD_FILE", "INVITE_GRPREQ", "INVITE_GRPREP", "QUIT_GRPMEMBER",
           "REMOVE_GRPMEMBERS", "UPDATE_GRPINFO", "GRPINFO", "GRPMEMBERS", "GRPCHAT",
           "NOTIFY_GRPCHAT", "NOTIFY_GRPNOTIFY", "RECEIVENOTIFY", "CACERT", "APPLY",
           "APPLY_STATUS", "MODIFY", "DEREGISTER", "GETSERVERCERT", "SERVERS"]

SNS = "/sns/"
"""Every path is served under ``/sns/`` and ``/sns/v1/``, with or without a trailing slash."""


@attrs.frozen
class Endpoint:
    kind: str
    method: str
    path: str
    """Relative to ``/sns/``."""
    query: tuple[str, ...] = ()

    @property
    def full_path(self) -> str:
        return SNS + self.path

    def split(self, payload: dict) -> tuple[dict | None, dict | None]:
        """(body, query) of a call from its payload: the query parameters taken out, the
        rest the body (None for a GET)."""
        query = {k: str(payload[k]) for k in self.query if payload.get(k) is not None}
        if self.method == "GET":
            return None, query or None
        body = {k: v for k, v in payload.items() if k not in self.query}
        return body, query or None

    def target(self, query: dict | None) -> str:
        """The request target (path and query string) of a call."""
        return self.full_path + ("?" + urlencode(query) if query else "")


def _e(kind: str, method: str, path: str, *query: str) -> Endpoint:
    return Endpoint(kind, method, path, tuple(query))


# Node to node (§6.2.8-9, §6.4.1, §6.4.2).
CHAT = _e("chat", "POST", "chat")
ADD_USERS = _e("add_users", "POST", "add/users")
RSP_USERS = _e("rsp_users", "POST", "rsp/users")
DEL_USERS = _e("del_users", "POST", "del/users")
FIND_USERS = _e("find_users", "GET", "find/users", "queryStr")
VERIFY_USERS = _e("verify_users", "GET", "verify/users", "userID")
USERS = _e("users", "GET", "users", "userID")
QUERY_USERS = _e("query_users", "GET", "query/users", "userID", "ownerID")
DOWNLOAD_FILE = _e("download_file", "GET", "download/file", "fileID")
INVITE_GRPREQ = _e("invite_grpreq", "POST", "invite/grpreq")
INVITE_GRPREP = _e("invite_grprep", "POST", "invite/grprep", "groupID")
QUIT_GRPMEMBER = _e("quit_grpmember", "POST", "quit/grpmember", "groupID")
REMOVE_GRPMEMBERS = _e("remove_grpmembers", "POST", "remove/grpmembers", "groupID")
UPDATE_GRPINFO = _e("update_grpinfo", "POST", "update/grpinfo", "groupID")
GRPINFO = _e("grpinfo", "GET", "grpinfo", "groupID", "userID")
GRPMEMBERS = _e("grpmembers", "GET", "grpmembers", "groupID", "userID")
GRPCHAT = _e("grpchat", "GET", "grpchat", "groupID", "messageID", "limit")
NOTIFY_GRPCHAT = _e("notify_grpchat", "POST", "notify/grpchat", "groupID")
NOTIFY_GRPNOTIFY = _e("notify_grpnotify", "POST", "notify/grpnotify", "groupID")

# Management to node (§6.3.3).
RECEIVENOTIFY = _e("receivenotify", "POST", "restApi/imServer/servermgr/receivenotify")

# Node (or applicant) to management (§6.1, §6.3, docs/protocol.md §4).
_M = "restApi/managerserver/"
CACERT = _e("cacert", "POST", _M + "cacert")
APPLY = _e("apply", "POST", _M + "apply")
APPLY_STATUS = _e("apply_status", "POST", _M + "apply/status")
MODIFY = _e("modify", "POST", _M + "modify")
DEREGISTER = _e("deregister", "POST", _M + "deregister")
SERVERS = _e("servers", "POST", _M + "servers")
GETSERVERCERT = _e("getservercert", "POST", "restApi/getservercert")

QUEUED = {e.kind: e for e in (CHAT, ADD_USERS, RSP_USERS, DEL_USERS, INVITE_GRPREQ,
                              INVITE_GRPREP, QUIT_GRPMEMBER, NOTIFY_GRPCHAT, NOTIFY_GRPNOTIFY)}
"""The calls a node queues for another (imfed/node/store/outbox.py), by kind."""


def queued(kind: str) -> Endpoint:
    return QUEUED[kind]
