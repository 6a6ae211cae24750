"""Wake-ups for the client API's event streams.  The events themselves are rows in the store
(messaging.emit), written with the change they describe; this only tells waiting streams to
look."""

from __future__ import annotations

from twisted.internet.defer import Deferred

__all__ = ["EventHub"]


class EventHub:
    def __init__(self) -> None:
        self._waiting: dict[str, list[Deferred]] = {}

    def wait(self, user_id: str) -> Deferred:
        d = Deferred(lambda d: self._forget(user_id, d))
        self._waiting.setdefault(user_id, []).append(d)
        return d

    def _forget(self, user_id: str, d: Deferred) -> None:
        waiting = self._waiting.get(user_id, [])
        if d in waiting:
            waiting.remove(d)

    def poke(self, user_ids=None) -> None:
        """Wake the streams of ``user_ids`` (every stream when None)."""
        keys = list(self._waiting) if user_ids is None else [u for u in user_ids
                                                             if u in self._waiting]
        for key in keys:
            for d in self._waiting.pop(key, []):
                d.callback(None)
