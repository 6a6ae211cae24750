"""Sliding-window counters that refuse an action past a limit (logins per account and per
source address, anonymous applications per source address, client sends and uploads per
user and per address)."""

from __future__ import annotations

import collections

from .metrics import RATE_LIMITED
from .wire.errors import TooMany

__all__ = ["Throttle", "SendRates"]


class Throttle:
    """At most ``limit`` events per key within ``window`` seconds.  Memory stays bounded:
    at most ``max_keys`` keys are kept, the least recently used going first."""

    def __init__(self, clock, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.clock, self.limit, self.window, self.max_keys = clock, limit, window, max_keys
        self._events: collections.OrderedDict[str, collections.deque] = \
            collections.OrderedDict()

    def _recent(self, key: str) -> collections.deque | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = self.clock.seconds() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may act again, or None if it may now."""
        events = self._recent(key)
        if events is None or len(events) < self.limit:
            return None
        return max(0.0, events[0] + self.window - self.clock.seconds())

    def hit(self, key: str) -> None:
        events = self._recent(key)
        if events is None:
            events = self._events[key] = collections.deque()
        else:
            self._events.move_to_end(key)
        events.append(self.clock.seconds())
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)

    def clear(self, key: str) -> None:
        self._events.pop(key, None)


class SendRates:
    """What the client API's users may send in a minute: ``limits`` maps a kind ("send",
    "upload") to (per user, per address; 0 for no bound).  ``check`` raises 429
    ``rate_limited`` with Retry-After, counted in ``imfed_rate_limited_total``, before any
    work is done, and counts the call when it is let through."""

    WINDOW = 60.0

    def __init__(self, clock, server_id: str, limits: dict[str, tuple[int, int]]) -> None:
        self.server_id = server_id
        self._throttles = {
            kind: [(scope, Throttle(clock, limit, self.WINDOW))
                   for scope, limit in zip(("user", "address"), pair) if limit > 0]
            for kind, pair in limits.items()}

    def check(self, kind: str, user_id: str, address: str, count: bool = True) -> None:
        """Raise the 429 if ``user_id`` or ``address`` is past its limit of ``kind``; else
        count this call (unless ``count`` is false: a look before the body is read, the call
        itself counted when it is handled)."""
        keys = {"user": user_id, "address": address}
        throttles = self._throttles.get(kind, [])
        for scope, throttle in throttles:
            wait = throttle.retry_after(keys[scope])
            if wait is not None:
                RATE_LIMITED.labels(self.server_id, kind).inc()
                raise TooMany("too many %ss from this %s in a minute; try again later"
                              % (kind, scope), wait, "rate_limited")
        if count:
            for scope, throttle in throttles:
                throttle.hit(keys[scope])
