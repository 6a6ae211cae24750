"""The node's directory (§6.3, docs/protocol.md §4): :class:`Directory` is what this node knows
of the federation's servers (address, status, certificate), kept in SQLite so a node keeps
federating from its last known directory while the management server is unreachable, and read
back when the node starts; :class:`Refresher` keeps it current with incremental ``servers``
queries to the management server, each server's certificate fetched once per fingerprint."""

from __future__ import annotations

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ..config import https_address
from ..cluster import DIRECTORY, notify
from ..crypto import pki
from ..peer import PeerClient, PeerError
from ..storage import Database, transaction
from ..timers import Periodic, now_ms
from ..wire.errors import NotFound
from ..wire.messages import host_port
from ..wire.paths import GETSERVERCERT, SERVERS
from ..wire.records import ServerInfo, ServerStatus

__all__ = ["Peer", "Directory", "Refresher"]


def _address_key(address: str) -> tuple[str, int] | None:
    try:
        host, port = https_address(address)
    except ValueError:
        return None
    return host.lower().rstrip("."), port


log = Logger()


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


def _load(cur) -> tuple[list[tuple], int, int]:
    # The mark first: on PostgreSQL each statement reads its own snapshot, and rows newer
    # than the mark only mean asking the management server again for what is already here;
    # a mark newer than the rows would skip a change for good.
    cur.execute("SELECT last_query_time, confirmed_at FROM directory_state WHERE id = 1")
    row = cur.fetchone()
    cur.execute("SELECT server_id, server_name, server_address, status, cert_pem FROM directory")
    return cur.fetchall(), row[0] if row else 0, row[1] if row else 0


@transaction
def _save(cur, peers: list[tuple], mark: int, now_ms: int) -> None:
    for server_id, name, address, status, cert_pem, fingerprint in peers:
        cur.execute("INSERT INTO directory VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server_id) "
                    "DO UPDATE SET server_name = excluded.server_name, server_address = "
                    "excluded.server_address, status = excluded.status, cert_pem = "
                    "excluded.cert_pem, cert_fingerprint = excluded.cert_fingerprint, "
                    "updated_at = excluded.updated_at",
                    (server_id, name, address, status, cert_pem, fingerprint, now_ms))
    cur.execute("INSERT INTO directory_state (id, last_query_time, confirmed_at) VALUES "
                "(1, ?, ?) ON CONFLICT (id) DO UPDATE SET last_query_time = "
                "excluded.last_query_time, confirmed_at = excluded.confirmed_at",
                (mark, now_ms))
    if peers:
        notify(cur, DIRECTORY)  # the node's other processes read it again


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
        self._take(*db.read_now(_load))

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
        rows, mark, confirmed = await self.db.runInteraction(_load)
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


class DirectoryRefused(PeerError):
    """The management server answered the directory query with a refusal."""


class Refresher(Periodic):
    """Keeps the :class:`Directory` current: a query at start and every ``seconds`` (a
    fallback for lost notifications), and soon after each notification."""

    def __init__(self, directory: Directory, client: PeerClient, seconds: float, clock) -> None:
        super().__init__(clock, seconds)
        self.directory, self.client = directory, client
        self.management_id = directory.management_id
        self.management_url = directory.management_url
        self._refreshing = False
        self._again = False
        self.listeners: list = []  # called after each successful refresh (the outbox wakes)
        self.last_ok: bool | None = None  # None until the first query ended
        self.last_error = ""
        self.last_ok_ms = 0

    def tick(self):
        return self.request_refresh()

    def follow(self):
        """Another process of the node refreshes: read what it stored (besides its NOTIFY,
        which a lost connection may have missed)."""
        return ensureDeferred(self.directory.reload())

    def now_ms(self) -> int:
        return now_ms(self.clock)

    def request_refresh(self):
        """Refresh soon (a notification arrived); errors are logged, the timer retries."""
        d = ensureDeferred(self.refresh())
        d.addCallbacks(self._succeeded, self._failed)
        return d

    def _succeeded(self, changed):
        self.last_ok, self.last_error, self.last_ok_ms = True, "", self.now_ms()
        self.refused = False
        for listener in self.listeners:
            listener()
        return changed

    refused = False
    """Whether the last query was answered with a refusal (not just unreachable): the
    management server does not take this node's signed calls (/health fails)."""

    def _failed(self, failure) -> None:
        self.last_ok, self.last_error = False, failure.getErrorMessage()
        self.refused = failure.check(DirectoryRefused) is not None
        log.warn("directory refresh failed: {e}", e=self.last_error)

    def state(self) -> dict:
        """What /health says of the management server."""
        return {"reachable": self.last_ok, "lastSuccess": self.last_ok_ms or None,
                "error": self.last_error}

    async def refresh(self) -> int:
        """One incremental query now (or, if one is running, once more after it); answer how
        many servers changed.  PeerError when the management server cannot be reached."""
        if self._refreshing:
            self._again = True
            return 0
        self._refreshing = True
        try:
            changed = await self._refresh_once()
            while self._again:
                self._again = False
                changed += await self._refresh_once()
            return changed
        finally:
            self._refreshing = False

    async def _refresh_once(self) -> int:
        log.debug("directory: querying {url} after mark {mark}", url=self.management_url,
                  mark=self.directory.last_query_time)
        answer = await self.client.call(self.management_id, self.management_url, "POST",
                                        SERVERS.full_path,
                                        {"lastQueryTime": self.directory.last_query_time})
        if not answer.ok:
            raise DirectoryRefused("directory query refused: %s" % (
                answer.body.get("desc") or answer.body.get("error")))
        servers = answer.body.get("servers")
        mark = answer.body.get("serverTime")
        if not isinstance(servers, list) or not isinstance(mark, int):
            raise PeerError("directory answer without servers or serverTime")
        rows, updated = [], {}
        for entry in servers:
            try:
                peer, row = await self._entry(entry)
            except (PeerError, pki.PKIError, KeyError, TypeError, ValueError) as e:
                # Leave this server as it was; the next refresh will try again.
                log.warn("directory entry {entry!r} skipped: {e}",
                         entry=entry.get("serverId") if isinstance(entry, dict) else entry,
                         e=str(e))
                mark = min(mark, self.directory.last_query_time)
                continue
            rows.append(row)
            updated[peer.server_id] = peer
        now = self.now_ms()
        await self.directory.db.runInteraction(_save, rows, mark, now)
        self.directory.updated(updated, mark, now)
        if updated:
            log.info("directory: {n} server(s) changed ({ids}), mark {mark}", n=len(updated),
                     ids=", ".join(sorted(updated)), mark=mark)
        return len(updated)

    async def _entry(self, entry: dict) -> tuple[Peer, tuple]:
        info = ServerInfo.from_wire(entry)
        server_id, status, fingerprint = info.server_id, info.status, info.fingerprint
        name, address = info.name, info.address
        known = self.directory.peers.get(server_id)
        cert = None
        if status != ServerStatus.DEREGISTERED:
            if known is not None and known.cert is not None and \
                    known.cert.fingerprint == fingerprint:
                cert = known.cert
            else:
                cert = await self._fetch_certificate(server_id, fingerprint)
        peer = Peer(server_id, name, address, status, cert)
        return peer, (server_id, name, address, status,
                      cert.pem.decode("ascii") if cert else None, fingerprint)

    async def fetch_management_certificate(self) -> pki.Certificate:
        """The management server's current certificate (getservercert), checked: issued by
        the CA to the management serverId and valid now.  It replaces the pinned copy the
        directory checks the management server's signatures with."""
        answer = await self.client.call(self.management_id, self.management_url, "POST",
                                        GETSERVERCERT.full_path, {"serverId": self.management_id},
                                        signed=False)
        if not answer.ok:
            raise PeerError("getservercert %s: %s" % (self.management_id,
                                                      answer.body.get("desc")))
        try:
            cert = pki.Certificate.from_pem(answer.body.get("serverCert") or "")
            pki.verify_issued(cert, self.directory.ca, server_id=self.management_id)
        except pki.PKIError as e:
            raise PeerError("the management server's certificate: %s" % e) from None
        self.directory.management_cert = cert
        return cert

    async def _fetch_certificate(self, server_id: str, fingerprint: str) -> pki.Certificate:
        answer = await self.client.call(self.management_id, self.management_url, "POST",
                                        GETSERVERCERT.full_path, {"serverId": server_id},
                                        signed=False)
        if not answer.ok:
            raise PeerError("getservercert %s: %s" % (server_id, answer.body.get("desc")))
        cert = pki.Certificate.from_pem(answer.body["serverCert"])
        pki.verify_issued(cert, self.directory.ca, server_id=server_id)
        if cert.fingerprint != fingerprint:
            raise PeerError("certificate of %s does not match the directory's fingerprint"
                            % server_id)
        return cert


