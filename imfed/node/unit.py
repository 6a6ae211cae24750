"""The node's unit of work: every change to the node's store runs through :class:`NodeStore`,
whose transaction notes which users got events (events.emit) and whether deliveries were
queued (outbox.enqueue); after the commit, and only then, those users' event streams are
woken and the outbound queue looks for work.  No caller has to remember either.

The functions that do the work take a :class:`Work` where they used to take a cursor: it
executes SQL like one and carries the notes.
"""

from __future__ import annotations

from typing import Callable

from ..cluster import EVENTS, OUTBOX, notify
from ..storage import Database, dialect_of, run_sync as _run_sync

__all__ = ["Work", "NodeStore", "run_sync"]


class Work:
    """One transaction's cursor and what it owes after commit."""

    __slots__ = ("cur", "users", "queued")

    def __init__(self, cur) -> None:
        self.cur = cur
        self.users: set[str] = set()
        self.queued = False

    def execute(self, sql: str, args=()):
        return self.cur.execute(sql, args)

    def executemany(self, sql: str, rows) -> None:
        self.cur.executemany(sql, rows)

    def fetchone(self):
        return self.cur.fetchone()

    def fetchall(self):
        return self.cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self.cur.rowcount

    @property
    def dialect(self) -> str:
        return dialect_of(self.cur)


class NodeStore:
    """The node's store as the application layer sees it: ``run(fn, *args)`` runs
    ``fn(work, *args)`` as one transaction (functions marked ``@transaction`` hold the write
    lock from their first statement) and, after it commits, wakes the users it emitted events
    for (``hub``) and the listeners of queued work (the outbox)."""

    def __init__(self, db: Database, hub, clock) -> None:
        self.db, self.hub, self.clock = db, hub, clock
        self.on_queued: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    async def run(self, fn, *args, **kwargs):
        result, work = await self.db.runInteraction(_interaction, fn, args, kwargs)
        if work.users:
            self.hub.poke(work.users)
        if work.queued:
            for wake in self.on_queued:
                wake()
        return result

    def read(self, fn, *args):
        """``fn(cursor, *args)`` for a read that changes nothing (nothing to do after)."""
        return self.db.runInteraction(fn, *args)


def _interaction(cur, fn, args, kwargs):
    work = Work(cur)
    result = fn(work, *args, **kwargs)
    if work.users:  # other processes of the node wake these streams too (cluster.py)
        notify(cur, EVENTS, work.users)
    if work.queued:
        notify(cur, OUTBOX)
    return result, work


def run_sync(path: str, fn, *args, **kwargs):
    """``fn(work, ...)`` on a store outside the daemon (the operator CLI): committed on
    return.  A running daemon finds what it queued at its next poll of the outbox."""
    return _run_sync(path, lambda cur: fn(Work(cur), *args, **kwargs))
