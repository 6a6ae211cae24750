"""Durable outbound delivery (docs/protocol.md §6): the ``outbox`` table
(imfed/node/store/outbox.py), one FIFO per destination server and lane, drained by a timer and
on demand.

An item is a *kind* (a call of imfed/wire/paths.py, ``chat``, ``add_users``...) and its
payload; ``enqueue`` writes it in the transaction of the change that owes it.  Destinations
and lanes are served in parallel (at most ``lanes_per_destination`` at once for one server);
inside a lane the order is kept, a failure holds the lane back with exponential backoff, and
after the give-up time an item is dropped as failed.  When an item ends (sent, or failed for
good), the hooks registered for its kind run in the transaction that removes it (a message's
delivery state, a refused friend request, a group joined): the outbox knows no feature.  Rows
are removed only after a verified 2xx, so a crash at any point means a resend, which the
receiver's messageID dedupe absorbs."""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ...cluster import Alone
from ...metrics import DELIVERIES, OUTBOX_DEPTH, OUTBOX_OLDEST, RETRIES
from ...peer import PeerBehind, PeerError
from ...storage.outage import log_failure
from ...timers import Periodic, backoff_ms, now_ms
from ..clients.reach import Reach, Verdict
from ..clients.remote import FederationClient
from ..store.outbox import (FAILED, SENT, Hook, Item, depths, finish, heads, next_items, postpone,
                            retry_now)

__all__ = ["Outbox", "BEHIND"]


log = Logger()


BEHIND = "behind"  # not sent: a call before it in its lane failed (imfed/peer.py Lane)


_RETRY = {401, 408, 425, 429}


def _failed(failure, destination: str) -> None:
    log_failure(log, "delivery to {dest} failed", failure, dest=destination)


class Outbox(Periodic):
    def __init__(self, *, store, client: FederationClient, reach: Reach, clock,
                 poll_seconds: float = 1.0, initial_seconds: float = 1.0,
                 max_seconds: float = 300.0, give_up_seconds: float = 7 * 86400.0,
                 lanes_per_destination: int = 16, window: int = 8, cluster=None) -> None:
        super().__init__(clock, poll_seconds)
        self.store, self.client, self.reach = store, client, reach
        self.cluster = cluster if cluster is not None else Alone()
        self.server_id = reach.directory.server_id
        self.initial_seconds = initial_seconds
        self.max_seconds, self.give_up_ms = max_seconds, int(give_up_seconds * 1000)
        self._back: dict[str, float] = {}
        self.lanes_per_destination = lanes_per_destination
        self.window = window
        self._hooks: dict[str, list[Hook]] = {}
        self._busy: set[tuple[str, str]] = set()
        self._wake_pending = False
        self._last_scan = float("-inf")
        self._reported: set[str] = set()
        store.on_queued.append(self.wake)

    async def depth(self) -> int:
        """Items queued now, for every destination."""
        return sum(n for _, n, _ in await self.store.read(depths))

    async def report_metrics(self) -> None:
        """imfed_outbox_depth and imfed_outbox_oldest_seconds per destination, now."""
        now = self.now_ms()
        seen = set()
        for destination, n, oldest in await self.store.read(depths):
            OUTBOX_DEPTH.labels(self.server_id, destination).set(n)
            OUTBOX_OLDEST.labels(self.server_id, destination).set((now - oldest) / 1000.0)
            seen.add(destination)
        for gone in self._reported - seen:  # emptied since the last scrape
            OUTBOX_DEPTH.remove(self.server_id, gone)
            OUTBOX_OLDEST.remove(self.server_id, gone)
        self._reported = seen

    def on_done(self, kind: str, hook: Hook) -> None:
        """Run ``hook`` whenever an item of ``kind`` ends, in the transaction removing it."""
        self._hooks.setdefault(kind, []).append(hook)

    def now_ms(self) -> int:
        return now_ms(self.clock)

    def tick(self) -> None:
        self.wake()

    def stopped(self):
        return self.client.close()

    BACK_SECONDS = 5.0

    def peer_answered(self, destination: str) -> None:
        """``destination`` showed it is there (a call from it verified): what is owed to it is
        tried now, not when its backoff ends (at most once per BACK_SECONDS a destination)."""
        now = self.clock.seconds()
        if now - self._back.get(destination, -1e9) < self.BACK_SECONDS:
            return
        self._back[destination] = now
        d = self.store.run(retry_now, destination, self.now_ms())

        def woken(n):
            if n:
                log.info("{dest} answered: {n} queued item(s) due now", dest=destination, n=n)
                self.wake()
        d.addCallbacks(woken, lambda f: log_failure(log, "retrying {dest} now", f,
                                                    dest=destination))

    def wake(self) -> None:
        """Look for due work (after an enqueue, a directory change, or on the timer): at the
        end of this turn of the reactor, or, under load, 5 ms after the last scan (all the
        wake-ups until then share one scan of the queue)."""
        if self._wake_pending or not self.running:
            return
        self._wake_pending = True
        delay = self._last_scan + 0.005 - self.clock.seconds()
        self.clock.callLater(max(delay, 0.0), self._start_scan)

    def _start_scan(self) -> None:
        d = ensureDeferred(self._scan())
        d.addErrback(lambda f: log_failure(log, "outbox scan failed", f))

    async def _scan(self) -> None:
        self._wake_pending = False
        self._last_scan = self.clock.seconds()
        due = await self.store.read(heads, self.now_ms(), self._latest_ms())
        for key in due:
            destination = key[0]
            if key in self._busy or sum(1 for d, _ in self._busy if d == destination) >= \
                    self.lanes_per_destination:
                continue
            self._busy.add(key)
            drain = self._leased_drain if self.cluster.several else self._drain
            d = ensureDeferred(drain(*key))
            d.addErrback(_failed, destination)
            d.addBoth(self._lane_done, key)

    def _lane_done(self, _result, key) -> None:
        self._busy.discard(key)
        # A lane that waited for a free slot on this destination may go now.
        self.wake()

    async def _leased_drain(self, destination: str, lane: str) -> None:
        """With several processes: the lane is drained by the one that took its lease."""
        name = "lane:%s\n%s" % (destination, lane)
        if not await self.cluster.claim(name):
            return  # another process has it
        try:
            await self._drain(destination, lane)
        finally:
            self.cluster.release(name)

    async def _drain(self, destination: str, lane: str) -> None:
        """Send the lane's items in order, up to ``window`` of them in flight when the peer
        takes pipelined calls in order (else one at a time).  Removals commit meanwhile
        (group commit takes several lanes' at once), and the lane waits for those commits
        before it reads the queue again or lets go: nothing is ever read back, or sent, twice
        because its removal was still on the way."""
        finishing: list = []
        try:
            await self._send_lane(destination, lane, finishing)
        finally:
            for d in finishing:
                try:
                    await d
                except Exception as e:  # still queued: sent again later, deduped there
                    log.error("could not record the end of an item to {dest}: {e}",
                              dest=destination, e=e)

    def _latest_ms(self) -> int:
        """The furthest a retry is ever put off (a minute's margin above the longest
        backoff): an item due later was scheduled before the clock was set back."""
        return self.now_ms() + int((self.max_seconds + 60) * 1000)

    async def _send_lane(self, destination: str, lane: str, finishing: list) -> None:
        channel = None
        try:
            while self.running:
                while finishing:
                    await finishing.pop(0)
                batch = await self.store.read(next_items, destination, lane)
                if not batch or self.now_ms() < batch[0].next_attempt <= self._latest_ms():
                    return
                verdict, peer, why = await self.reach.verdict(destination)
                if verdict is Verdict.REFUSED or verdict is Verdict.GONE:
                    for item in batch:
                        self._end(item, FAILED, why, finishing)
                    continue
                if verdict is not Verdict.OK:  # not known yet, or suspended: waited for
                    await self._retry(batch[0], why)
                    return
                if channel is None:
                    channel = self.client.lane(peer)
                if not await self._send_batch(channel, batch, finishing):
                    return
        finally:
            if channel is not None:
                channel.close()

    async def _send_batch(self, channel, batch: list[Item], finishing: list) -> bool:
        """Send ``batch`` in order, up to ``window`` calls in flight (the lane sends each after
        the one before; imfed/peer.py Lane).  The first item that is not delivered is
        postponed and the batch stops there: what was already in flight behind it is recorded
        if it ended, and otherwise left for the next pass, unpostponed.  True if the whole
        batch ended."""
        waiting = deque(batch)
        flying: deque = deque()
        stopped = False
        while flying or (waiting and not stopped):  # once stopped, what waits stays queued
            while not stopped and waiting and len(flying) < self.window:
                item = waiting.popleft()
                flying.append((item, ensureDeferred(self._attempt(channel, item))))
            item, attempt = flying.popleft()
            final, error = await attempt
            if final is BEHIND:
                stopped = True  # a failure before it in the lane holds it back: not an attempt
                continue
            if final is None and not stopped and \
                    self.now_ms() - item.created_at > self.give_up_ms:
                final, error = FAILED, "gave up after %d attempts: %s" % (item.attempts + 1,
                                                                           error)
            if final is not None:
                self._end(item, final, error, finishing)
            elif not stopped:
                stopped = True
                await self._retry(item, error)
        return not stopped

    def _end(self, item: Item, final: str, error: str, finishing: list) -> None:
        DELIVERIES.labels(self.server_id, item.destination, final).inc()
        if final == FAILED:
            log.warn("{kind} to {dest} failed for good: {error}", kind=item.kind,
                     dest=item.destination, error=error)
        finishing.append(self.store.run(finish, self._hooks.get(item.kind, ()), item, final,
                                        error, self.now_ms()))

    async def _retry(self, item: Item, error: str) -> None:
        attempts = item.attempts + 1
        wait_ms = backoff_ms(attempts, self.initial_seconds, self.max_seconds)
        RETRIES.labels(self.server_id, item.destination).inc()
        log.info("{kind} to {dest} not delivered ({error}); attempt {n}, next in {wait:.1f} s",
                 kind=item.kind, dest=item.destination, error=error, n=attempts,
                 wait=wait_ms / 1000)
        await self.store.run(postpone, item.seq, attempts, self.now_ms() + wait_ms, error)

    async def _attempt(self, channel, item: Item) -> tuple[str | None, str]:
        """(SENT | FAILED | None for retry | BEHIND, error text)."""
        try:
            answer = await self.client.send(channel, item.kind, item.payload)
        except PeerBehind as e:
            return BEHIND, str(e)
        except PeerError as e:
            return None, str(e)
        if answer.ok:
            return SENT, ""
        error = "HTTP %d: %s" % (answer.status, answer.body.get("error") or
                                 answer.body.get("desc") or "")
        if answer.status in _RETRY or answer.status >= 500:
            return None, error
        return FAILED, error
