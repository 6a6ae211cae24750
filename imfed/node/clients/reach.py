"""May this node talk to server X?  The one answer, from the directory (is X a member, in what
status) and this server's access control for outbound calls (§5.3.2), used by every caller:
the client API before it accepts work for X, the outbox before each attempt, the group check
against a master, a file fetched from its origin, the search fan-out."""

from __future__ import annotations

from enum import Enum

from ...wire.errors import Forbidden, NotFound, Unavailable
from ...wire.records import ServerStatus
from ..handlers.access import AccessControl
from ..directory import Directory, Peer
from ...timers import now_ms

__all__ = ["Reach", "Verdict"]


class Verdict(Enum):
    OK = "ok"                 # an active member we may call now
    SUSPENDED = "suspended"   # a member, suspended: calls wait for it
    UNKNOWN = "unknown"       # not in our directory (yet)
    GONE = "gone"             # deregistered: never again
    REFUSED = "refused"       # our access control forbids it


class Reach:
    def __init__(self, directory: Directory, acl: AccessControl, max_age_seconds: float = 0.0,
                 clock=None) -> None:
        self.directory, self.acl = directory, acl
        self.max_age_seconds, self.clock = max_age_seconds, clock

    def unconfirmed(self) -> str | None:
        """Why no server's status can be trusted now (the management server has not
        confirmed the directory for longer than ``max_age_seconds``), or None."""
        if not self.max_age_seconds or self.clock is None:
            return None
        age = self.directory.unconfirmed_for(now_ms(self.clock))
        if age <= self.max_age_seconds:
            return None
        return ("the management server has not confirmed the servers' statuses for %.0f s "
                "(more than peer_status_max_age_seconds, %.0f)" % (age, self.max_age_seconds))

    def confirmed(self) -> None:
        """503 status_unconfirmed when :meth:`unconfirmed` says so."""
        why = self.unconfirmed()
        if why is not None:
            raise Unavailable(why, "status_unconfirmed")

    async def verdict(self, server_id: str) -> tuple[Verdict, Peer | None, str]:
        """(verdict, the directory's entry, why not) for an outbound call to ``server_id``."""
        if not await self.acl.allows("out", server_id):
            return Verdict.REFUSED, None, "refused by this server's access control"
        why = self.unconfirmed()
        if why is not None:
            return Verdict.SUSPENDED, self.directory.get(server_id), why  # waited for
        peer = self.directory.get(server_id)
        if peer is None:
            return Verdict.UNKNOWN, None, "server %s is not in the directory" % server_id
        if peer.status == ServerStatus.DEREGISTERED:
            return Verdict.GONE, peer, "server %s is deregistered" % server_id
        if not peer.active:
            return Verdict.SUSPENDED, peer, "server %s is suspended" % server_id
        return Verdict.OK, peer, ""

    async def require(self, server_id: str, *, queue: bool = False) -> Peer:
        """The peer a user's request may go to now, or (``queue``) may be queued for: a
        suspended member is waited for.  404 unknown_server, then 403 refused_by_policy."""
        peer = self.directory.get(server_id)
        usable = peer is not None and (peer.status != ServerStatus.DEREGISTERED if queue
                                       else peer.active)
        if not usable:
            raise NotFound("server %s is not an active member of the federation" % server_id,
                           "unknown_server")
        if not await self.acl.allows("out", server_id):
            raise Forbidden("%s is refused by this server's access control" % server_id,
                            "refused_by_policy")
        if not queue:
            self.confirmed()
        return peer

    async def require_now(self, server_id: str) -> Peer:
        """As :meth:`require` with ``queue``, and 503 when the member is suspended: for a
        call that cannot wait (a file fetched while a user waits for it)."""
        peer = await self.require(server_id, queue=True)
        if not peer.active:
            raise Unavailable("server %s is not reachable now" % server_id,
                              "peer_unreachable")
        return peer

    async def callable_peers(self) -> list[Peer]:
        """Every other active member we may call (a search asks them all)."""
        out = []
        for peer in list(self.directory.peers.values()):
            if peer.server_id != self.directory.server_id and peer.active and \
                    await self.acl.allows("out", peer.server_id):
                out.append(peer)
        return out
