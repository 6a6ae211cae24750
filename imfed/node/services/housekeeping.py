"""What a node's store stops keeping (every ``housekeeping_seconds``): client events older than
``event_retention_days`` (a client away longer re-reads conversations and history), expired
login sessions, the XMPP gateway's week-old stanza IDs, and what retention
(imfed/node/store/retention.py) says is too old: history, uploads, copies of other servers' files.
Old rows go in small transactions, oldest first, so the one writer connection is never held
for long; each run's counts are logged and counted (``imfed_purged_total``)."""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from ...metrics import PURGED
from ...storage import Database
from ...timers import Periodic, now_ms
from ..store import events, retention, txns, users
from ..xmpp.state import FORGET_IDS_SECONDS, forget_ids

__all__ = ["Housekeeping", "Retention"]

log = Logger()

DAY_MS = 86_400_000


@attrs.frozen
class Retention:
    """How long each kind is kept, in days (0: for ever); from ``[node]``."""

    events_days: float = 30.0
    messages_days: float = 0.0
    files_days: float = 0.0
    cache_days: float = 0.0

    @classmethod
    def of(cls, node) -> "Retention":
        return cls(node.event_retention_days, node.message_retention_days,
                   node.file_retention_days, node.file_cache_days)

    def before(self, days: float, now_ms: int) -> int | None:
        return None if not days else now_ms - int(days * DAY_MS)


async def _batches(db: Database, fn, *args) -> retention.Purged:
    """``fn`` run until a batch comes back short of ``retention.BATCH`` of each kind; the
    bytes of the files it let go removed after each commit."""
    total = retention.Purged()
    while True:
        got = await db.runInteraction(fn, *args)
        got.unlink()
        total.add(got)
        if max(got.counts().values()) < retention.BATCH:
            return total


class Housekeeping(Periodic):
    def __init__(self, db: Database, clock, seconds: float, keep: Retention,
                 server_id: str) -> None:
        super().__init__(clock, seconds)
        self.db, self.keep, self.server_id = db, keep, server_id

    async def tick(self) -> None:
        now = now_ms(self.clock)
        keep = self.keep
        # Events about messages no longer kept go with them.
        event_days = min(d for d in (keep.events_days, keep.messages_days) if d)
        pruned = 0
        while True:
            n = await self.db.runInteraction(events.prune, keep.before(event_days, now))
            pruned += n
            if n < events.PRUNE_BATCH:
                break
        sessions = await self.db.runInteraction(users.prune_sessions, now)
        await self.db.runInteraction(txns.prune, now - txns.KEEP_MS)
        ids = await self.db.runInteraction(forget_ids, now - FORGET_IDS_SECONDS * 1000)
        purged = await self.retain(now)
        purged.events = pruned
        for kind, n in purged.counts().items():
            if n:
                PURGED.labels(self.server_id, kind).inc(n)
        if purged.anything or sessions or ids:
            log.info("housekeeping: {events} old events, {sessions} expired sessions and "
                     "{ids} old XMPP stanza IDs removed; retention purged {messages} "
                     "messages, {group} group messages, {files} files and {cached} copies of "
                     "other servers' files", events=events, sessions=sessions, ids=ids,
                     messages=purged.messages, group=purged.group_messages,
                     files=purged.files, cached=purged.cached_files)

    async def retain(self, now: int) -> retention.Purged:
        keep, purged = self.keep, retention.Purged()
        history = keep.before(keep.messages_days, now)
        if history is not None:
            purged.add(await _batches(self.db, retention.purge_old_messages, history))
            purged.add(await _batches(self.db, retention.purge_old_group_messages, history))
        uploads, copies = keep.before(keep.files_days, now), keep.before(keep.cache_days, now)
        if uploads is not None or copies is not None:
            purged.add(await _batches(self.db, retention.purge_old_files, self.server_id,
                                      uploads, copies))
        return purged
