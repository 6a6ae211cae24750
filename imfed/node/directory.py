"""The node's directory (§6.3, docs/protocol.md §4): :class:`Directory` is what this node knows
of the federation's servers (address, status, certificate), kept in the store
(imfed/node/store/directory.py) so a node keeps federating from its last known directory while
the management server is unreachable, and read back when the node starts;
imfed/node/services/refresher.py keeps it current."""

from __future__ import annotations

import attrs

from ..config import https_address
from ..crypto import pki
from ..storage import Database
from ..wire.errors import NotFound
from ..wire.message_info import host_port
from ..wire.records import ServerStatus
from .store.directory import load

__all__ = ["Peer", "Directory"]


def _address_key(address: str) -> tuple[str, int] | None:
    try:
        host, port = https_address(address)
    except ValueError:
        return None
    return host.lower().rstrip("."), port




@attrs.frozen
class Peer:
    server_id: str
    name: str
    address: str
    status: ServerStatus
    cert: pki.Certificate | None = attrs.field(eq=False, repr=False)

    @property
    def active(self) -> bool:
        return self.status == ServerStatus.ACTIVE and self.cert is not None


class Directory:
    """Read at construction from the store (synchronously: a node knows its peers before
    any listener opens); changed only by the :class:`Refresher`."""

    def __init__(self, *, db: Database, server_id: str, address: str, management_id: str,
                 management_url: str, ca: pki.Certificate, management_cert: pki.Certificate,
                 clock) -> None:
        self.db, self.server_id, self.address = db, server_id, address
        self.management_id, self.management_url = management_id, management_url
        self.ca, self.management_cert, self.clock = ca, management_cert, clock
        self.peers: dict[str, Peer] = {}
        # Reloads may end out of order (a pool reads in parallel): each change of the peers
        # here takes a ticket, and a reload applies only if no later one was applied first.
        self._tickets = self._applied = 0
        self._take(*db.read_now(load))

    def _take(self, rows: list[tuple], mark: int, confirmed_ms: int = 0) -> None:
        peers = {}
        for server_id, name, address, status, cert_pem in rows:
            known = self.peers.get(server_id)
            if known is not None and known.cert is not None and cert_pem and \
                    known.cert.pem.decode("ascii") == cert_pem:
                cert = known.cert
            else:
                cert = pki.Certificate.from_pem(cert_pem) if cert_pem else None
            peers[server_id] = Peer(server_id, name, address, ServerStatus(status), cert)
        self.peers, self.last_query_time = peers, mark
        self.confirmed_ms = max(getattr(self, "confirmed_ms", 0), confirmed_ms)

    def ticket(self) -> int:
        self._tickets += 1
        return self._tickets

    def updated(self, peers: dict[str, Peer], mark: int, now_ms: int) -> None:
        """What a refresh here stored: newer than any reload still reading."""
        self._applied = self.ticket()
        self.peers.update(peers)
        self.last_query_time = mark
        self.confirmed_ms = max(self.confirmed_ms, now_ms)

    def unconfirmed_for(self, now_ms: int) -> float:
        """Seconds since the management server last confirmed every server's status."""
        return max(0.0, (now_ms - self.confirmed_ms) / 1000)

    async def reload(self) -> None:
        """Read the directory again from the store (another process of the node changed it)."""
        ticket = self.ticket()
        rows, mark, confirmed = await self.db.runInteraction(load)
        if ticket > self._applied:
            self._applied = ticket
            self._take(rows, mark, confirmed)

    def get(self, server_id: str) -> Peer | None:
        return self.peers.get(server_id)

    def resolve(self, part: str) -> str | None:
        """The serverId behind the part of an ID after its @: itself for a serverId; for
        host:port (DNS addressing, §6.2.2), the server registered at that address (us
        included), or None when no member of the federation is there."""
        hp = host_port(part)
        if hp is None:
            return part
        if _address_key(self.address) == hp:
            return self.server_id
        for peer in self.peers.values():
            if _address_key(peer.address) == hp:
                return peer.server_id
        return None

    def canonical(self, value: str, field: str) -> str:
        """An ID in its ``<local>@<serverId>`` form (how it is stored and sent); 404 for a
        host:port where no member of the federation is registered."""
        local, part = value.rsplit("@", 1)
        server_id = self.resolve(part)
        if server_id is None:
            raise NotFound("%s %s: no server of the federation at %s" % (field, value, part),
                           "unknown_server")
        return "%s@%s" % (local, server_id)

    def active(self, server_id: str) -> Peer | None:
        peer = self.peers.get(server_id)
        return peer if peer is not None and peer.active else None

    async def certificate_of(self, server_id: str) -> pki.Certificate | None:
        """The key a server's answers are checked with, whatever its status."""
        if server_id == self.management_id:
            return self.management_cert
        peer = self.peers.get(server_id)
        return peer.cert if peer is not None else None

    async def active_certificate(self, server_id: str) -> pki.Certificate | None:
        """Who may call us: the management server (notifications) and status-0 servers."""
        if server_id == self.management_id:
            return self.management_cert
        peer = self.active(server_id)
        return peer.cert if peer is not None else None


