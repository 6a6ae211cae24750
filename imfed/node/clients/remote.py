"""The node's typed client of other nodes' interconnection interface (§6.2.8-9, §6.4.1-2): a
method per endpoint, over the daemon's one :class:`~imfed.peer.PeerClient` (mutual TLS, signed
requests, verified answers).  The outbox sends its queued calls through :meth:`send`, each
lane on a :meth:`lane`; live calls (a search, a profile, a group's info, a file) through the
other methods, which answer typed records and fail with one error, :class:`PeerFailed`, that
says whether the server could not be reached, refused, or had no such thing.  Paths and query
parameters come from imfed/wire/paths.py."""

from __future__ import annotations

import attrs

from ...peer import Lane, PeerClient, PeerError, PeerResponse
from ...wire import paths
from ...wire.errors import ApiError, NotFound, Unavailable
from ...wire.paths import Endpoint
from ...wire.records import UserInfo
from ..directory import Peer

__all__ = ["FederationClient", "PeerFailed", "GroupView", "HistoryPage", "UNREACHABLE",
           "REFUSED", "NOT_FOUND"]

UNREACHABLE, REFUSED, NOT_FOUND = "unreachable", "refused", "not_found"


class PeerFailed(Exception):
    """A live call to another server that gave nothing to use.  ``kind``: ``unreachable`` (no
    trustworthy answer: down, refused at TLS, timed out, badly signed or not JSON), ``refused``
    (it answered an error: its access rules, a 5xx), ``not_found`` (it answered 404: no such
    user, group or file for the caller)."""

    def __init__(self, server_id: str, kind: str, message: str, status: int | None = None):
        super().__init__(message)
        self.server_id, self.kind, self.message, self.status = server_id, kind, message, status

    @classmethod
    def of(cls, server_id: str, error: PeerError) -> "PeerFailed":
        status = getattr(error, "status", None)
        if status is None:
            return cls(server_id, UNREACHABLE, str(error))
        return cls.answered(server_id, status, str(error))

    @classmethod
    def answered(cls, server_id: str, status: int, message: str) -> "PeerFailed":
        """The server answered ``status``, an error: not found (404), or refused."""
        return cls(server_id, NOT_FOUND if status == 404 else REFUSED, message, status)

    def api_error(self, what: str, not_found: str) -> ApiError:
        """What a user is told: 404 with the errcode ``not_found`` when the server said no
        (4xx: it has no ``what`` for the caller, or will not say), 503 ``peer_unavailable``
        when it failed (5xx), 503 ``peer_unreachable`` when it did not answer."""
        if self.kind == NOT_FOUND or (self.kind == REFUSED and self.status < 500):
            return NotFound("no %s" % what, not_found)
        if self.kind == REFUSED:
            return Unavailable("%s could not say (HTTP %d)" % (self.server_id, self.status),
                               "peer_unavailable")
        return Unavailable(self.message, "peer_unreachable")


@attrs.frozen
class GroupView:
    """A group as its master answers a member's server (grpinfo and grpmembers)."""
    info: dict
    gset: dict
    members: list


@attrs.frozen
class HistoryPage:
    """A page of a group's history from its master (grpchat)."""
    messages: list
    newest: str


def _checked(server_id: str, answer: PeerResponse, what: str) -> dict:
    """The body of an answer that says yes; PeerFailed for one that does not."""
    if not answer.ok:
        detail = answer.body.get("error") or answer.body.get("desc") or ""
        raise PeerFailed.answered(server_id, answer.status, "%s answered HTTP %d for %s%s" % (
            server_id, answer.status, what, ": " + detail if detail else ""))
    return answer.body


class FederationClient:
    def __init__(self, peers: PeerClient) -> None:
        self.peers = peers

    def close(self):
        return self.peers.close()

    async def _call(self, peer: Peer, endpoint: Endpoint, payload: dict) -> PeerResponse:
        body, query = endpoint.split(payload)
        try:
            return await self.peers.call(peer.server_id, peer.address, endpoint.method,
                                         endpoint.full_path, body, query)
        except PeerError as e:
            raise PeerFailed.of(peer.server_id, e) from None

    def lane(self, peer: Peer) -> Lane:
        """The outbox's calls of one lane to ``peer``, kept in order (:class:`Lane`)."""
        return self.peers.lane(peer.server_id, peer.address)

    async def send(self, lane: Lane, kind: str, payload: dict) -> PeerResponse:
        """A queued call (outbox) on its lane: ``kind`` names its endpoint, ``payload`` its
        body and query parameters.  The answer whatever its status (the outbox decides what
        a status means for the item); PeerError when there is none."""
        endpoint = paths.queued(kind)
        body, query = endpoint.split(payload)
        return await lane.call(endpoint.method, endpoint.full_path, body, query)

    async def find_users(self, peer: Peer, query: str) -> list[dict]:
        """The userInfos of ``peer``'s users the query finds (each a user of ``peer``)."""
        body = _checked(peer.server_id, await self._call(peer, paths.FIND_USERS,
                                                         {"queryStr": query}), "a search")
        suffix = "@" + peer.server_id
        return [UserInfo.from_wire(info, info["userID"]).to_wire()
                for info in body.get("users") or []
                if isinstance(info, dict) and isinstance(info.get("userID"), str) and
                info["userID"].endswith(suffix)]

    async def user(self, peer: Peer, user_id: str) -> dict:
        """A user's userInfo as its server answers it."""
        body = _checked(peer.server_id, await self._call(peer, paths.USERS,
                                                         {"userID": user_id}), user_id)
        return UserInfo.from_wire(body.get("userInfo"), user_id).to_wire()

    async def group(self, peer: Peer, group_id: str, user_id: str) -> GroupView:
        """A group as its master ``peer`` shows it to ``user_id``: groupInfo, gset, members."""
        info = _checked(peer.server_id, await self._call(
            peer, paths.GRPINFO, {"groupID": group_id, "userID": user_id}), group_id)
        listed = _checked(peer.server_id, await self._call(
            peer, paths.GRPMEMBERS, {"groupID": group_id, "userID": user_id}), group_id)
        members = listed.get("members")
        return GroupView(info.get("groupInfo") if isinstance(info.get("groupInfo"), dict)
                         else {}, info.get("gset") if isinstance(info.get("gset"), dict)
                         else {}, members if isinstance(members, list) else [])

    async def grpchat(self, peer: Peer, group_id: str, after: str,
                      limit: int | None = None) -> HistoryPage:
        """The master's messages of the group after ``after`` ("": from its oldest kept);
        PeerFailed ``not_found`` when it no longer keeps ``after``."""
        body = _checked(peer.server_id, await self._call(
            peer, paths.GRPCHAT, {"groupID": group_id, "messageID": after, "limit": limit}),
            "the history of " + group_id)
        messages = body.get("messages", [])
        if not isinstance(messages, list):
            raise PeerFailed(peer.server_id, REFUSED, "%s's messages are not a list"
                             % peer.server_id)
        newest = body.get("newestMessageID")
        return HistoryPage(messages, newest if isinstance(newest, str) else "")

    async def download_file(self, peer: Peer, file_id: str, dest_path: str,
                            limit: int) -> tuple[int, str, str]:
        """Stream a file to ``dest_path``: (size, md5, sm3); PeerFailed otherwise
        (``not_found``: its server no longer keeps it)."""
        endpoint = paths.DOWNLOAD_FILE
        try:
            return await self.peers.download(peer.server_id, peer.address, endpoint.full_path,
                                             {"fileID": file_id}, dest_path, limit)
        except PeerError as e:  # PeerRefusedDownload carries the status
            raise PeerFailed.of(peer.server_id, e) from None
