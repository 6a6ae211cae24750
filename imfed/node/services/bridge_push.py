"""Pushing what happens to a bridged system's users to the system (docs/bridge.md): the
events of its users, in seq order, as transactions ``{"txnId", "events": [...]}`` POSTed to
``[bridge] url`` + ``/transactions``, signed with HMAC-SHA256 over the body
(``X-Imfed-Signature: sha256=<hex>``, key ``push_token``).  One transaction at a time; a
transaction is sent again, with the same txnId and the same events (a restart included), until
the system answers 2xx (backoff as the outbox's), and only then does the feed's cursor
(feeds.py, "bridge") move past it.  Redirects are not followed; at most ``ANSWER_LIMIT`` bytes
of an answer are read."""

from __future__ import annotations

import hashlib
import hmac
import json

import treq
from twisted.logger import Logger
from twisted.web.http_headers import Headers

from ...config import BridgeConfig
from ...metrics import BRIDGE_BACKLOG, BRIDGE_TRANSACTIONS
from ...peer import read_capped
from ...timers import backoff_ms
from .feeds import EventFeed, Row
from ..store.unit import NodeStore

__all__ = ["BridgePusher", "sign", "SIGNATURE_HEADER", "ANSWER_LIMIT"]

log = Logger()

SIGNATURE_HEADER = "X-Imfed-Signature"

ANSWER_LIMIT = 64 << 10
"""The most of a bridged system's answer (to a push, to a lookup) that imfed reads: what it
needs is a status and, for a lookup, a name; a larger answer is a failure."""


def sign(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed(key: str, body: bytes, **more: str) -> Headers:
    """Headers carrying ``body``'s signature with the bridge's ``push_token`` (``more``:
    other headers, by name with - written _)."""
    headers = Headers({SIGNATURE_HEADER: [sign(key, body)]})
    for name, value in more.items():
        headers.addRawHeader(name.replace("_", "-"), value)
    return headers


class BridgePusher(EventFeed):
    name, batch = "bridge", 100

    def __init__(self, store: NodeStore, config: BridgeConfig, server_id: str, *,
                 poll_seconds: float = 0.5, initial_seconds: float = 1.0,
                 max_seconds: float = 60.0, timeout: float = 30.0) -> None:
        super().__init__(store, poll_seconds)
        self.config, self.server_id = config, server_id
        self.url = config.url.rstrip("/") + "/transactions"
        self.initial_seconds, self.max_seconds, self.timeout = (initial_seconds, max_seconds,
                                                                timeout)
        self.failures = 0
        self.not_before = 0.0
        self.last_error = ""

    def ready(self) -> bool:
        return self.clock.seconds() >= self.not_before

    def owns(self, user_id: str) -> bool:
        return self.config.owns(user_id.split("@")[0])

    async def hand_over(self, cursor: int, last: int, rows: list[Row]) -> bool:
        body = json.dumps({"txnId": "%s-%d-%d" % (self.server_id, cursor, last),
                           "events": [{"seq": seq, "userID": user_id, "type": kind,
                                       "data": json.loads(payload)}
                                      for seq, user_id, kind, payload in rows]},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            # A connection per transaction: after a restart of the system nothing is sent on a
            # connection to the process that was there before.
            d = treq.post(self.url, data=body, headers=signed(
                self.config.push_token, body, Content_Type="application/json"),
                timeout=self.timeout, persistent=False, allow_redirects=False)
            response = await d
            await read_capped(response, ANSWER_LIMIT, self.timeout, self.clock, self.url)
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
        n = await super().backlog()
        BRIDGE_BACKLOG.labels(self.server_id).set(n)
        return n
