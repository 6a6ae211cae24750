"""Durable outbound delivery (docs/protocol.md §6): the ``outbox`` table, one FIFO per destination
server and lane (a conversation; a pair of users for friend requests), drained by a timer and
on demand.  Destinations and lanes are served in parallel (at most ``lanes_per_destination``
at once for one server); inside a lane the order is kept, a failure holds the lane back with
exponential backoff, and after the give-up time an item is dropped and its message marked
failed for the sender to see.  Rows are removed only after a verified 2xx, so a crash at any
point means a resend, which the receiver's messageID dedupe absorbs."""

from __future__ import annotations

import json
import random

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ..peer import PeerClient, PeerError
from ..storage import Database, transaction
from ..timers import Periodic
from . import groups, messaging
from .acl import AccessControl
from .directory import Directory
from .events import EventHub

__all__ = ["Outbox"]

log = Logger()

# Answers that a retry may turn around: authentication (the peer's directory may not know us
# yet), rate limits, unavailability, server errors.  Any other 4xx is final.
_RETRY = {401, 408, 425, 429}


def _heads(cur, now_ms: int) -> list[tuple[str, str]]:
    """(destination, lane) of every lane whose first item is due (``outbox_heads``, kept by
    triggers: one row per lane, however long the queue)."""
    cur.execute("SELECT destination, lane FROM outbox_heads WHERE next_attempt <= ? "
                "ORDER BY seq", (now_ms,))
    return cur.fetchall()


def _next(cur, destination: str, lane: str, limit: int = 32) -> list[tuple]:
    """The lane's first items, in order."""
    cur.execute("SELECT seq, method, path, body, message_id, created_at, attempts, next_attempt "
                "FROM outbox WHERE destination = ? AND lane = ? ORDER BY seq LIMIT ?",
                (destination, lane, limit))
    return cur.fetchall()


@transaction
def _finish(cur, seq: int, message_id: str | None, state: str, error: str, now_ms: int,
            path: str = "", body: dict | None = None) -> str | None:
    """Answer the local user to tell, if any."""
    cur.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
    if state == "sent" and path.startswith("/sns/invite/grprep?groupID=") and body and \
            body.get("respResult") == 1:
        joined = groups.joined(cur, path.split("=", 1)[1], body.get("ownerID"), now_ms)
        return joined[0] if joined else None
    if state == "failed" and path.rstrip("/").endswith("/add/users") and body:
        # The other server refused the friend request (or could not be reached in time).
        return messaging.friend_request_failed(cur, body.get("ownerID"), body.get("userID"),
                                               error, now_ms)
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


class Outbox(Periodic):
    def __init__(self, *, db: Database, client: PeerClient, directory: Directory,
                 acl: AccessControl, hub: EventHub, clock, poll_seconds: float = 1.0,
                 initial_seconds: float = 1.0, max_seconds: float = 300.0,
                 give_up_seconds: float = 7 * 86400.0, lanes_per_destination: int = 16) -> None:
        super().__init__(clock, poll_seconds)
        self.db, self.client, self.directory, self.acl, self.hub = db, client, directory, acl, hub
        self.initial_seconds = initial_seconds
        self.max_seconds, self.give_up_ms = max_seconds, int(give_up_seconds * 1000)
        self.lanes_per_destination = lanes_per_destination
        self._busy: set[tuple[str, str]] = set()
        self._wake_pending = False

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def tick(self) -> None:
        self.wake()

    def stopped(self):
        return self.client.close()

    def wake(self) -> None:
        """Look for due work soon (after an enqueue, a directory change, or on the timer).
        Wake-ups within a few milliseconds share one scan of the queue."""
        if self._wake_pending or not self.running:
            return
        self._wake_pending = True
        self.clock.callLater(0.005, self._start_scan)

    def _start_scan(self) -> None:
        d = ensureDeferred(self._scan())
        d.addErrback(lambda f: log.failure("outbox scan failed", f))

    async def _scan(self) -> None:
        self._wake_pending = False
        heads = await self.db.runInteraction(_heads, self.now_ms())
        for key in heads:
            destination = key[0]
            if key in self._busy or sum(1 for d, _ in self._busy if d == destination) >= \
                    self.lanes_per_destination:
                continue
            self._busy.add(key)
            d = ensureDeferred(self._drain(*key))
            d.addErrback(lambda f, dest=destination:
                         log.failure("delivery to {dest} failed", f, dest=dest))
            d.addBoth(lambda _, key=key: self._lane_done(key))

    def _lane_done(self, key) -> None:
        self._busy.discard(key)
        # A lane that waited for a free slot on this destination may go now.
        self.wake()

    async def _drain(self, destination: str, lane: str) -> None:
        batch: list = []
        while self.running:
            if not batch:
                batch = await self.db.runInteraction(_next, destination, lane)
                if not batch:
                    return
            seq, method, path, body, message_id, created_at, attempts, next_attempt = \
                batch.pop(0)
            now = self.now_ms()
            if next_attempt > now:
                return
            body = json.loads(body)
            final, error = await self._attempt(destination, method, path, body)
            now = self.now_ms()
            if final is None and now - created_at > self.give_up_ms:
                final, error = "failed", "gave up after %d attempts: %s" % (attempts + 1, error)
            if final is not None:
                if final == "failed":
                    log.warn("{path} to {dest} failed for good: {error}", path=path,
                             dest=destination, error=error)
                sender = await self.db.runInteraction(_finish, seq, message_id, final, error,
                                                      now, path, body)
                if sender:
                    self.hub.poke([sender])
                continue
            attempts += 1
            delay = min(self.max_seconds, self.initial_seconds * 2 ** min(attempts - 1, 30))
            await self.db.runInteraction(_postpone, seq, attempts,
                                         now + int(delay * 1000 * random.uniform(0.75, 1.0)),
                                         error)
            return  # the rest of the batch waits behind its head

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
