"""Events of some of the node's users handed, in seq order, to a system outside the node: the
bridged system's pushes (bridge_push.py) and the XMPP gateway (xmpp/gateway.py).  Each feed
keeps a cursor in the store (``event_cursors``): a batch of its users' events is handed over,
and only once the system has it (a 2xx, a ping answered after it) does the cursor move past
it; until then the same batch is handed over again.  The events are in the store already
(events.emit), so a system that is away makes the backlog grow and loses nothing within
``event_retention_days``."""

from __future__ import annotations

from ...storage import transaction
from ...timers import Periodic
from ..store.unit import NodeStore

__all__ = ["EventFeed", "Row"]

Row = tuple
"""(seq, userID, type, payload as JSON text)."""


def cursor(cur, name: str) -> int:
    cur.execute("SELECT seq FROM event_cursors WHERE name = ?", (name,))
    row = cur.fetchone()
    return row[0] if row else 0


def after(cur, seq: int, limit: int, upto: int | None = None) -> list[Row]:
    """Every user's events after ``seq`` (and up to ``upto``), oldest first."""
    cur.execute("SELECT seq, user_id, type, payload FROM events WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?", (seq, upto if upto is not None else 2 ** 62, limit))
    return cur.fetchall()


def _sending(name: str) -> str:
    return name + ":sending"


@transaction
def set_sending(cur, name: str, last: int) -> None:
    """The batch now handed over ends at ``last``: until it is taken, it is the one handed
    over again, the same events under the same bounds (a restart included)."""
    cur.execute("INSERT INTO event_cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "seq = excluded.seq", (_sending(name), last))


def backlog(cur, name: str) -> int:
    cur.execute("SELECT COUNT(*) FROM events WHERE seq > ?", (cursor(cur, name),))
    return cur.fetchone()[0]


@transaction
def advance(cur, name: str, seq: int) -> None:
    cur.execute("INSERT INTO event_cursors VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "seq = excluded.seq WHERE excluded.seq > event_cursors.seq", (name, seq))


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
            sending = await self.store.read(cursor, _sending(self.name))
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
