"""Sliding-window counters that refuse an action past a limit (logins per account and per
source address, anonymous applications per source address)."""

from __future__ import annotations

import collections

__all__ = ["Throttle"]


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
