"""Pushing what happens to a bridged system's users to the system (docs/bridge.md): the
events of its users, in seq order, as transactions ``{"txnId", "events": [...]}`` POSTed to
``[bridge] url`` + ``/transactions``, signed with HMAC-SHA256 over the body
(``X-Imfed-Signature: sha256=<hex>``, key ``push_token``).  One transaction at a time; a
transaction is sent again, with the same txnId, until the system answers 2xx (backoff as the
outbox's), and only then does the cursor (``bridge_state``) move past it.  The events are in
the store already (events.emit), so a system that is down makes the backlog grow and loses
nothing within ``event_retention_days``."""

from __future__ import annotations

import hashlib
import hmac
import json

import treq
from twisted.logger import Logger

from ..config import BridgeConfig
from ..metrics import BRIDGE_BACKLOG, BRIDGE_TRANSACTIONS
from ..storage import transaction
from ..timers import Periodic, backoff_ms
from .unit import NodeStore

__all__ = ["BridgePusher", "sign", "SIGNATURE_HEADER"]

log = Logger()

SIGNATURE_HEADER = "X-Imfed-Signature"
BATCH = 100


def sign(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _cursor(cur) -> int:
    cur.execute("SELECT pushed_through FROM bridge_state WHERE id = 1")
    row = cur.fetchone()
    return row[0] if row else 0


def _after(cur, seq: int, limit: int) -> list[tuple]:
    cur.execute("SELECT e.seq, e.user_id, e.type, e.payload, u.phone FROM events e "
                "JOIN users u ON u.user_id = e.user_id WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
                (seq, limit))
    return cur.fetchall()


def _backlog(cur, seq: int) -> int:
    cur.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (seq,))
    return cur.fetchone()[0]


@transaction
def _advance(cur, seq: int) -> None:
    cur.execute("INSERT INTO bridge_state VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET "
                "pushed_through = MAX(pushed_through, excluded.pushed_through)", (seq,))


class BridgePusher(Periodic):
    def __init__(self, store: NodeStore, config: BridgeConfig, server_id: str, *,
                 poll_seconds: float = 0.5, initial_seconds: float = 1.0,
                 max_seconds: float = 60.0, timeout: float = 30.0) -> None:
        super().__init__(store.clock, poll_seconds)
        self.store, self.config, self.server_id = store, config, server_id
        self.url = config.url.rstrip("/") + "/transactions"
        self.initial_seconds, self.max_seconds, self.timeout = (initial_seconds, max_seconds,
                                                                timeout)
        self.failures = 0
        self.not_before = 0.0
        self.last_error = ""

    async def tick(self) -> None:
        if self.clock.seconds() < self.not_before:
            return
        while self.running:
            cursor = await self.store.read(_cursor)
            rows = await self.store.read(_after, cursor, BATCH)
            if not rows:
                return
            mine = [r for r in rows if self.config.owns(r[4])]
            last = rows[-1][0]
            if mine and not await self._push(cursor, last, mine):
                return
            await self.store.db.runInteraction(_advance, last)

    async def _push(self, cursor: int, last: int, rows: list[tuple]) -> bool:
        body = json.dumps({"txnId": "%s-%d-%d" % (self.server_id, cursor, last),
                           "events": [{"seq": seq, "userID": user_id, "type": kind,
                                       "data": json.loads(payload)}
                                      for seq, user_id, kind, payload, _ in rows]},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            # A connection per transaction: after a restart of the system nothing is sent on a
            # connection to the process that was there before.
            d = treq.post(self.url, data=body, headers={
                "Content-Type": "application/json", SIGNATURE_HEADER: sign(
                    self.config.push_token, body)}, timeout=self.timeout, persistent=False)
            response = await d
            await treq.content(response)
            ok = 200 <= response.code < 300
            error = "" if ok else "HTTP %d" % response.code
        except Exception as e:
            ok, error = False, str(e) or type(e).__name__
        BRIDGE_TRANSACTIONS.labels(self.server_id, "sent" if ok else "retry").inc()
        if ok:
            self.failures, self.last_error = 0, ""
            return True
        self.failures += 1
        wait = backoff_ms(self.failures, self.initial_seconds, self.max_seconds)
        self.not_before = self.clock.seconds() + wait / 1000
        self.last_error = error
        log.info("bridge transaction to {url} not taken ({error}); attempt {n}, next in "
                 "{wait:.1f} s", url=self.url, error=error, n=self.failures, wait=wait / 1000)
        return False

    async def backlog(self) -> int:
        """Events not yet handed over (of any user: an upper bound of the system's)."""
        n = await self.store.read(_backlog, await self.store.read(_cursor))
        BRIDGE_BACKLOG.labels(self.server_id).set(n)
        return n

    def wake(self, user_ids=()) -> None:
        """Push now (new events were committed); the timer does it anyway."""
        if self.running and self._current is None and self.clock.seconds() >= self.not_before:
            self._fire()
