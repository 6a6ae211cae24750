"""The node's typed client of other nodes' interconnection interface (§6.2.8-9, §6.4.1-2): a
method per endpoint, over the daemon's one :class:`~imfed.peer.PeerClient` (mutual TLS, signed
requests, verified answers).  The outbox sends its queued calls through :meth:`send`, each
lane on a :meth:`lane`; live calls (a search, a profile, a group's info, a file) through the
other methods.  Paths and query parameters come from imfed/wire/paths.py."""

from __future__ import annotations

from ..peer import Lane, PeerClient, PeerResponse
from ..wire import paths
from ..wire.paths import Endpoint
from .directory import Peer

__all__ = ["FederationClient"]


class FederationClient:
    def __init__(self, peers: PeerClient) -> None:
        self.peers = peers

    def close(self):
        return self.peers.close()

    async def _call(self, peer: Peer, endpoint: Endpoint, payload: dict) -> PeerResponse:
        body, query = endpoint.split(payload)
        return await self.peers.call(peer.server_id, peer.address, endpoint.method,
                                     endpoint.full_path, body, query)

    def lane(self, peer: Peer) -> Lane:
        """The outbox's calls of one lane to ``peer``, kept in order (:class:`Lane`)."""
        return self.peers.lane(peer.server_id, peer.address)

    async def send(self, lane: Lane, kind: str, payload: dict) -> PeerResponse:
        """A queued call (outbox) on its lane: ``kind`` names its endpoint, ``payload`` its
        body and query parameters."""
        endpoint = paths.queued(kind)
        body, query = endpoint.split(payload)
        return await lane.call(endpoint.method, endpoint.full_path, body, query)

    async def find_users(self, peer: Peer, query: str) -> PeerResponse:
        return await self._call(peer, paths.FIND_USERS, {"queryStr": query})

    async def user(self, peer: Peer, user_id: str) -> PeerResponse:
        return await self._call(peer, paths.USERS, {"userID": user_id})

    async def grpinfo(self, peer: Peer, group_id: str, user_id: str) -> PeerResponse:
        return await self._call(peer, paths.GRPINFO, {"groupID": group_id, "userID": user_id})

    async def grpmembers(self, peer: Peer, group_id: str, user_id: str) -> PeerResponse:
        return await self._call(peer, paths.GRPMEMBERS, {"groupID": group_id,
                                                         "userID": user_id})

    async def grpchat(self, peer: Peer, group_id: str, after: str,
                      limit: int | None = None) -> PeerResponse:
        return await self._call(peer, paths.GRPCHAT, {"groupID": group_id, "messageID": after,
                                                      "limit": limit})

    async def download_file(self, peer: Peer, file_id: str, dest_path: str,
                            limit: int) -> tuple[int, str, str]:
        """Stream a file to ``dest_path``: (size, md5, sm3), PeerError otherwise."""
        endpoint = paths.DOWNLOAD_FILE
        return await self.peers.download(peer.server_id, peer.address, endpoint.full_path,
                                         {"fileID": file_id}, dest_path, limit)
