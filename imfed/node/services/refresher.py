"""The directory kept current (§6.3, docs/protocol.md §4): :class:`Refresher` asks the
management server for what changed (incremental ``servers`` queries), fetches each server's
certificate once per fingerprint, saves the result and hands it to the node's
:class:`~imfed.node.directory.Directory`."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ...crypto import pki
from ...peer import PeerClient, PeerError
from ...timers import Periodic, now_ms
from ...wire.paths import GETSERVERCERT, SERVERS
from ...wire.records import ServerInfo, ServerStatus
from ..directory import Directory, Peer
from ..store.directory import save

__all__ = ["Refresher", "DirectoryRefused"]

log = Logger()


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
        await self.directory.db.runInteraction(save, rows, mark, now)
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
