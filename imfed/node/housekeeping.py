"""What a node's store stops keeping (every ``housekeeping_seconds``): client events older than
``event_retention_days`` (a client away longer re-reads conversations and history, which are
kept), expired login sessions, and the XMPP gateway's week-old stanza IDs.  Old events go in small transactions, oldest first, so the
one writer connection is never held for long."""

from __future__ import annotations

from twisted.logger import Logger

from ..storage import Database, transaction
from ..timers import Periodic
from . import txns
from .xmpp.state import FORGET_IDS_SECONDS, forget_ids

__all__ = ["Housekeeping", "prune_events", "prune_sessions"]

log = Logger()

BATCH = 5000


@transaction
def prune_events(cur, before_ms: int, batch: int = BATCH) -> int:
    """Delete up to ``batch`` of the oldest events created before ``before_ms``; the number
    deleted.  Events are numbered in time order, so the first one young enough to keep is
    found by reading only the ones that go."""
    cur.execute("SELECT seq FROM events WHERE created_at >= ? ORDER BY seq LIMIT 1",
                (before_ms,))
    row = cur.fetchone()
    if row is None:
        cur.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events")
        row = cur.fetchone()
    cur.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq < ? "
                "ORDER BY seq LIMIT ?)", (row[0], batch))
    return cur.rowcount


@transaction
def prune_sessions(cur, now_ms: int) -> int:
    cur.execute("DELETE FROM sessions WHERE expires_at < ?", (now_ms,))
    return cur.rowcount


class Housekeeping(Periodic):
    def __init__(self, db: Database, clock, seconds: float, event_retention_seconds: float
                 ) -> None:
        super().__init__(clock, seconds)
        self.db, self.retention_ms = db, int(event_retention_seconds * 1000)

    async def tick(self) -> None:
        now = int(self.clock.seconds() * 1000)
        events = 0
        while True:
            n = await self.db.runInteraction(prune_events, now - self.retention_ms)
            events += n
            if n < BATCH:
                break
        sessions = await self.db.runInteraction(prune_sessions, now)
        await self.db.runInteraction(txns.prune, now - txns.KEEP_MS)
        ids = await self.db.runInteraction(forget_ids, now - FORGET_IDS_SECONDS * 1000)
        if events or sessions or ids:
            log.info("housekeeping: {events} old events, {sessions} expired sessions and "
                     "{ids} old XMPP stanza IDs removed", events=events, sessions=sessions,
                     ids=ids)
