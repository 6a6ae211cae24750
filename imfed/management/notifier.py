"""Change notifications (§6.3.3, docs/protocol.md §4): a durable queue in the store, drained by a
timer, each delivery a signed ``receivenotify`` to one node, all due ones in parallel (up to
``parallel`` at once, each on its own: one node that never answers delays only what is owed to
it), retried with exponential backoff until a 2xx or until the node is no longer status 0.

The queue is filled in the same transaction as the change it announces (review.py), by the
daemon or by the operator CLI in another process: the timer finds both, also after a restart.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore, ensureDeferred
from twisted.logger import Logger

from ..metrics import NOTIFICATIONS
from ..peer import PeerClient, PeerError
from ..storage import transaction
from ..wire.paths import RECEIVENOTIFY
from ..timers import Periodic, backoff_ms
from . import store
from .store import RegistryStore

__all__ = ["Notifier", "NOTIFY_PATH"]

NOTIFY_PATH = RECEIVENOTIFY.full_path

log = Logger()


class Notifier(Periodic):
    def __init__(self, registry: RegistryStore, client: PeerClient, clock, *,
                 poll_seconds: float = 1.0, initial_seconds: float = 1.0,
                 max_seconds: float = 300.0, parallel: int = 32) -> None:
        super().__init__(clock, poll_seconds)
        self.registry, self.client = registry, client
        self.initial_seconds, self.max_seconds = initial_seconds, max_seconds
        self._limit = DeferredSemaphore(parallel)
        self._in_flight: set[tuple[str, str]] = set()  # (target, changed) on their way
        self._sending: set = set()

    def tick(self):
        return ensureDeferred(self.drain())

    def stopped(self):
        for d in list(self._sending):
            d.cancel()  # retried after the next start: the queue is durable
        return self.client.close()

    async def drain(self) -> int:
        """Start sending everything due now that is not already on its way; answer how many
        deliveries were started.  It does not wait for them: a node that accepts a connection
        and never answers holds its own delivery (until the call's timeout), never the
        notifications of the next change to everyone else."""
        await self.registry.run(transaction(store.drop_inactive_notifications))
        rows = await self.registry.run(store.due_notifications, self.registry.now_ms())
        rows = [r for r in rows if (r[0], r[1]) not in self._in_flight]
        for row in rows:
            self._in_flight.add((row[0], row[1]))
            d = self._limit.run(self._deliver_row, row)
            self._sending.add(d)
            d.addErrback(self._lost, row)
            d.addBoth(self._settled, d)
        return len(rows)

    def _settled(self, _result, d: Deferred) -> None:
        self._sending.discard(d)

    def _deliver_row(self, row) -> Deferred:
        return ensureDeferred(self._deliver(*row))

    def _lost(self, failure, row) -> None:
        self._in_flight.discard((row[0], row[1]))
        if not failure.check(CancelledError):
            log.failure("notifying {target} of {changed}", failure, target=row[0],
                        changed=row[1])

    async def _deliver(self, target: str, changed: str, version: int, attempts: int,
                       address: str) -> None:
        key = (target, changed)
        try:
            try:
                answer = await self.client.call(target, address, "POST", NOTIFY_PATH,
                                                {"serverId": changed})
                error = None if 200 <= answer.status < 300 else "HTTP %d" % answer.status
            except PeerError as e:
                error = str(e)
            NOTIFICATIONS.labels(self.client.server_id, target,
                                 "sent" if error is None else "retry").inc()
            if error is None:
                await self.registry.run(transaction(store.notification_done), target, changed,
                                        version)
                log.info("notified {target} of {changed}", target=target, changed=changed)
                return
            attempts += 1
            when = self.registry.now_ms() + backoff_ms(attempts, self.initial_seconds,
                                                       self.max_seconds)
            await self.registry.run(transaction(store.notification_failed), target, changed,
                                    version, attempts, when, error)
            log.warn("notifying {target} of {changed} failed ({error}); attempt {n}, retrying",
                     target=target, changed=changed, error=error, n=attempts)
        finally:
            self._in_flight.discard(key)
