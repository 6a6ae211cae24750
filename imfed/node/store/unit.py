"""The node's unit of work: every change to the node's store runs through :class:`NodeStore`,
whose transaction notes which users got events (events.emit) and whether deliveries were
queued (outbox.enqueue); after the commit, and only then, those users' event streams are
woken and the outbound queue looks for work.  No caller has to remember either.

The functions that do the work take a :class:`Work` where they used to take a cursor: it
executes SQL like one and carries the notes.

Group commit: units of work that arrive while a commit is under way wait for it, and then go
together as one transaction, each inside its own savepoint (one that fails is rolled back
alone and fails alone; the others commit).  A lone unit on an idle node goes at once, as
before: nothing waits for company.  Under load a batch pays one thread hand-off, one write
lock and one durable commit (an fsync on SQLite) for all its units.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ...cluster import EVENTS, OUTBOX, notify
from ...metrics import STORE_COMMITS, STORE_UNITS
from ...storage import Database, begin_write, dialect_of, run_sync as _run_sync
from ...timers import now_ms

__all__ = ["Work", "NodeStore", "run_sync"]

log = Logger()


class Work:
    """One transaction's cursor and what it owes after commit."""

    __slots__ = ("cur", "users", "events", "queued")

    def __init__(self, cur) -> None:
        self.cur = cur
        self.users: set[str] = set()
        self.events: list[tuple] = []  # (user_id, (seq, type, payload)) as emitted
        self.queued = False

    def begin_write(self) -> None:
        begin_write(self.cur)  # (nothing, inside a batch: the batch began it)

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
    ``fn(work, *args)`` as one unit (functions marked ``@transaction`` hold the write lock
    from their first statement) and, after it commits, wakes the users it emitted events for
    (``hub``) and the listeners of queued work (the outbox).  Units that arrive during a
    commit are committed together next (group commit, above)."""

    def __init__(self, db: Database, hub, clock, server_id: str = "-") -> None:
        self.db, self.hub, self.clock = db, hub, clock
        self._commits = STORE_COMMITS.labels(server_id)
        self._units = STORE_UNITS.labels(server_id)
        self.on_queued: list[Callable[[], None]] = []
        self._waiting: list[tuple] = []  # (fn, args, kwargs, Deferred) for the next commit
        self._committing = False
        self._last_seq: int | None = None  # the newest event seq this store committed

    def now_ms(self) -> int:
        return now_ms(self.clock)

    def run(self, fn, *args, **kwargs) -> Deferred:
        """A Deferred firing with ``fn``'s result once its unit has committed (or failing
        with what ``fn`` raised, nothing of it kept)."""
        d: Deferred = Deferred()
        self._waiting.append((fn, args, kwargs, d))
        if not self._committing:
            self._commit()
        return d

    def _commit(self) -> None:
        batch, self._waiting = self._waiting, []
        self._committing = True
        self._commits.inc()
        self._units.inc(len(batch))
        units = [(fn, args, kwargs) for fn, args, kwargs, _ in batch]
        d = self.db.runInteraction(_one if len(units) == 1 else _batch, units)
        d.addCallbacks(self._committed, self._lost, (batch,), None, (batch,))

    def _next(self) -> None:
        self._committing = False
        if self._waiting:  # on its way to the store while this batch's callers go on
            self._commit()

    def _committed(self, outcomes: list[tuple], batch: list[tuple]) -> None:
        self._next()
        users: set[str] = set()
        emitted: list[tuple] = []
        queued = False
        for ok, value, work in outcomes:
            if ok:
                users |= work.users
                emitted += work.events
                queued = queued or work.queued
        try:
            if users:
                self.hub.poke(users, self._handover(emitted))
            if queued:
                for wake in self.on_queued:
                    wake()
        except Exception:  # the units are committed whatever a listener does: say so
            log.failure("waking after a commit failed")
        for (ok, value, _), (*_, d) in zip(outcomes, batch):
            if ok:
                d.callback(value)
            else:
                d.errback(value)

    def _handover(self, emitted: list[tuple]) -> dict[str, list] | None:
        """The events of this commit by user, to hand to the waiting streams with the poke,
        when they are all that was committed since this store's previous events: their seqs
        follow its last one without a gap.  Anything else that wrote events in between (the
        operator CLI, another process of the node, a sequence value PostgreSQL skipped)
        leaves a gap, and then the streams read the store, as they do after a restart."""
        seqs = [seq for _, (seq, _, _) in emitted]
        if not seqs:
            return None
        last, self._last_seq = self._last_seq, max(seqs)
        if last is None or seqs != list(range(last + 1, last + 1 + len(seqs))):
            return None
        by_user: dict[str, list] = {}
        for user_id, event in emitted:
            by_user.setdefault(user_id, []).append(event)
        return by_user

    def _lost(self, failure: Failure, batch: list[tuple]) -> None:
        """The transaction itself failed (a lone unit's error, or the commit): nothing of it
        was kept, and each unit fails with the reason."""
        self._next()
        for *_, d in batch:
            d.errback(failure)

    def read(self, fn, *args):
        """``fn(cursor, *args)`` for a read that changes nothing (nothing to do after)."""
        return self.db.runInteraction(fn, *args)


def _notes(cur, works) -> None:
    users = set().union(*(w.users for w in works))
    if users:  # other processes of the node wake these streams too (cluster.py)
        notify(cur, EVENTS, users)
    if any(w.queued for w in works):
        notify(cur, OUTBOX)


def _one(cur, units) -> list[tuple]:
    """A lone unit: its own transaction, as if there were no batching (an error rolls it
    back through the pool)."""
    (fn, args, kwargs), = units
    work = Work(cur)
    result = fn(work, *args, **kwargs)
    _notes(cur, [work])
    return [(True, result, work)]


def _batch(cur, units) -> list[tuple]:
    """Several units in one transaction under the write lock, each in a savepoint."""
    begin_write(cur)
    outcomes: list[tuple] = []
    for fn, args, kwargs in units:
        work = Work(cur)
        cur.execute("SAVEPOINT unit")
        try:
            result = fn(work, *args, **kwargs)
        except Exception:
            failure = Failure()
            failure.cleanFailure()
            cur.execute("ROLLBACK TO SAVEPOINT unit")
            cur.execute("RELEASE SAVEPOINT unit")
            outcomes.append((False, failure, None))
        else:
            cur.execute("RELEASE SAVEPOINT unit")
            outcomes.append((True, result, work))
    _notes(cur, [w for ok, _, w in outcomes if ok])
    return outcomes


def run_sync(path: str, fn, *args, **kwargs):
    """``fn(work, ...)`` on a store outside the daemon (the operator CLI): committed on
    return.  A running daemon finds what it queued at its next poll of the outbox."""
    return _run_sync(path, lambda cur: fn(Work(cur), *args, **kwargs))
