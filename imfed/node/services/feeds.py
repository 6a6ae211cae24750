"""Events of some of the node's users handed, in seq order, to a system outside the node: the
bridged system's pushes (bridge_push.py) and the XMPP gateway (xmpp/gateway.py).  Each feed
keeps a cursor in the store (``event_cursors``): a batch of its users' events is handed over,
and only once the system has it (a 2xx, a ping answered after it) does the cursor move past
it; until then the same batch is handed over again.  The events are in the store already
(events.emit), so a system that is away makes the backlog grow and loses nothing within
``event_retention_days``."""

from __future__ import annotations

from ...timers import Periodic
from ..store import cursors
from ..store.cursors import Row, advance, after, backlog, cursor, set_sending
from ..store.unit import NodeStore

__all__ = ["EventFeed", "Row"]

class EventFeed(Periodic):
    """A feed: ``owns`` picks its users' events, ``hand_over`` gives a batch of them to the
    system (True once the system has them), ``ready`` says whether to try now."""

    name: str = ""  # type: ignore[assignment]  # Service.name, a str for every feed
    batch = 100

    def __init__(self, store: NodeStore, seconds: float) -> None:
        super().__init__(store.clock, seconds)
        self.store = store

    def ready(self) -> bool:
        return True

    def owns(self, user_id: str) -> bool:
        raise NotImplementedError

    async def hand_over(self, cursor: int, last: int, rows: list[Row]) -> bool:
        """Give ``rows`` (the feed's events after ``cursor``, up to ``last``) to the system."""
        raise NotImplementedError

    async def tick(self) -> None:
        while self.running and self.ready():
            position = await self.store.read(cursor, self.name)
            sending = await self.store.read(cursor, cursors.sending(self.name))
            if sending > position:
                # A batch was handed over and not taken (a failure, a timeout, a restart):
                # the same one again, though newer events have come since.
                rows = await self.store.read(after, position, sending - position, sending)
                last = sending
            else:
                rows = await self.store.read(after, position, self.batch)
                if not rows:
                    return
                last = rows[-1][0]
            mine = [row for row in rows if self.owns(row[1])]
            if mine:
                if sending <= position:
                    await self.store.run(set_sending, self.name, last)
                if not await self.hand_over(position, last, mine):
                    return
            await self.store.run(advance, self.name, last)

    async def backlog(self) -> int:
        """Events not yet handed over (of any user: an upper bound of the feed's)."""
        return await self.store.read(backlog, self.name)

    def wake(self, user_ids=()) -> None:
        """Hand over now (new events were committed); the timer does it anyway."""
        if self.running and self._current is None and self.ready():
            self._fire()
