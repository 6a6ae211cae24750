"""Durable outbound delivery (PROFILE.md §6): the ``outbox`` table, one FIFO per destination
server, drained by a timer and on demand.  Destinations are served in parallel; inside one the
order is kept (so the order of each conversation is), a failure holds the queue back with
exponential backoff, and after the give-up time an item is dropped and its message marked
failed for the sender to see.  Rows are removed only after a verified 2xx, so a crash at any
point means a resend, which the receiver's messageID dedupe absorbs."""

from __future__ import annotations

import json
import random

from twisted.application.service import Service
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..peer import PeerClient, PeerError
from ..storage import Database, transaction
from . import messaging
from .acl import AccessControl
from .directory import Directory
from .events import EventHub

__all__ = ["Outbox"]

log = Logger()

# Answers that a retry may turn around: authentication (the peer's directory may not know us
# yet), rate limits, unavailability, server errors.  Any other 4xx is final.
_RETRY = {401, 408, 425, 429}


def _heads(cur, now_ms: int) -> list[str]:
    cur.execute("SELECT o.destination FROM outbox o WHERE o.seq = (SELECT MIN(seq) FROM outbox "
                "WHERE destination = o.destination) AND o.next_attempt <= ?", (now_ms,))
    return [r[0] for r in cur.fetchall()]


def _head(cur, destination: str):
    cur.execute("SELECT seq, method, path, body, message_id, created_at, attempts, next_attempt "
                "FROM outbox WHERE destination = ? ORDER BY seq LIMIT 1", (destination,))
    return cur.fetchone()


@transaction
def _finish(cur, seq: int, message_id: str | None, state: str, error: str,
            now_ms: int) -> str | None:
    cur.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
    messaging.delivery(cur, message_id, state, error, now_ms)
    if message_id is None:
        return None
    cur.execute("SELECT sender_id FROM messages WHERE message_id = ?", (message_id,))
    row = cur.fetchone()
    return row[0] if row else None


@transaction
def _postpone(cur, seq: int, attempts: int, next_attempt: int, error: str) -> None:
    cur.execute("UPDATE outbox SET attempts = ?, next_attempt = ?, last_error = ? WHERE seq = ?",
                (attempts, next_attempt, error[:500], seq))


class Outbox(Service):
    def __init__(self, *, db: Database, client: PeerClient, directory: Directory,
                 acl: AccessControl, hub: EventHub, clock, poll_seconds: float = 1.0,
                 initial_seconds: float = 1.0, max_seconds: float = 300.0,
                 give_up_seconds: float = 7 * 86400.0) -> None:
        self.db, self.client, self.directory, self.acl, self.hub = db, client, directory, acl, hub
        self.clock = clock
        self.poll_seconds, self.initial_seconds = poll_seconds, initial_seconds
        self.max_seconds, self.give_up_ms = max_seconds, int(give_up_seconds * 1000)
        self._busy: set[str] = set()
        self._loop: LoopingCall | None = None
        self._wake_pending = False

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self.wake)
        self._loop.clock = self.clock
        self._loop.start(self.poll_seconds, now=True)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.client.close()

    def wake(self) -> None:
        """Look for due work now (after an enqueue, a directory change, or on the timer)."""
        if self._wake_pending or not self.running:
            return
        self._wake_pending = True
        d = ensureDeferred(self._scan())
        d.addErrback(lambda f: log.failure("outbox scan failed", f))

    async def _scan(self) -> None:
        try:
            heads = await self.db.runInteraction(_heads, self.now_ms())
        finally:
            self._wake_pending = False
        for destination in heads:
            if destination not in self._busy:
                self._busy.add(destination)
                d = ensureDeferred(self._drain(destination))
                d.addErrback(lambda f, dest=destination:
                             log.failure("delivery to {dest} failed", f, dest=dest))
                d.addBoth(lambda _, dest=destination: self._busy.discard(dest))

    async def _drain(self, destination: str) -> None:
        while self.running:
            row = await self.db.runInteraction(_head, destination)
            if row is None:
                return
            seq, method, path, body, message_id, created_at, attempts, next_attempt = row
            now = self.now_ms()
            if next_attempt > now:
                return
            final, error = await self._attempt(destination, method, path, json.loads(body))
            now = self.now_ms()
            if final is None and now - created_at > self.give_up_ms:
                final, error = "failed", "gave up after %d attempts: %s" % (attempts + 1, error)
            if final is not None:
                sender = await self.db.runInteraction(_finish, seq, message_id, final, error, now)
                if sender:
                    self.hub.poke([sender])
                continue
            attempts += 1
            delay = min(self.max_seconds, self.initial_seconds * 2 ** min(attempts - 1, 30))
            await self.db.runInteraction(_postpone, seq, attempts,
                                         now + int(delay * 1000 * random.uniform(0.75, 1.0)),
                                         error)
            return

    async def _attempt(self, destination: str, method: str, path: str, body: dict
                       ) -> tuple[str | None, str]:
        """("sent" | "failed" | None for retry, error text)."""
        if not await self.acl.allows("out", destination):
            return "failed", "refused by this server's access control"
        peer = self.directory.get(destination)
        if peer is None or peer.status == 2:
            if peer is not None:
                return "failed", "server %s is deregistered" % destination
            return None, "server %s is not in the directory" % destination
        if not peer.active:
            return None, "server %s is suspended" % destination
        try:
            answer = await self.client.call(destination, peer.address, method, path, body)
        except PeerError as e:
            return None, str(e)
        if answer.ok:
            return "sent", ""
        error = "HTTP %d: %s" % (answer.status, answer.body.get("error") or
                                 answer.body.get("desc") or "")
        if answer.status in _RETRY or answer.status >= 500:
            return None, error
        return "failed", error
