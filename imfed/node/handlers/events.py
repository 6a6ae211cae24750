"""A user's events (docs/client-api.md): read after a seq, waiting for the first one."""

from __future__ import annotations

from ..store import events
from ..store.unit import NodeStore

__all__ = ["EventsHandler"]


class EventsHandler:
    def __init__(self, store: NodeStore) -> None:
        self.store, self.hub, self.clock = store, store.hub, store.clock

    async def last(self, user_id: str) -> int:
        return await self.store.read(events.last_seq, user_id)

    async def after(self, user_id: str, since: int, wait: float,
                    limit: int = 500) -> list[events.Event]:
        """Events after ``since``, waiting up to ``wait`` seconds for the first one."""
        deadline = self.clock.seconds() + wait
        while True:
            waiter = self.hub.wait(user_id)
            rows = await self.store.read(events.events_since, user_id, since, limit)
            left = deadline - self.clock.seconds()
            if rows or left <= 0:
                waiter.addErrback(lambda _: None)  # nobody waits on it: a quiet cancel
                waiter.cancel()
                return rows
            timer = self.clock.callLater(left, self.hub.expire, user_id, waiter)
            fresh = await waiter
            if timer.active():
                timer.cancel()
            fresh = [e for e in fresh or () if e[0] > since]
            if fresh and len(fresh) <= limit:
                # Handed with the poke of the first commit after our read (an earlier one
                # would have woken us first): nothing lies between ``since`` and these.
                return fresh
