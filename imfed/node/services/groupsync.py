"""Checking this server's copies of groups mastered elsewhere against their masters with
grpchat (§6.4.2.12), at start, every ``group_sync_seconds``, and when a member asks.

The master's queue normally brings every message (a server that was down gets its backlog when
it returns); this is for what that cannot bring: messages the master gave up on, or a copy
restored from an older backup.  Each group remembers the newest message up to which its copy was
last found complete, so a check asks only for what is newer, and a message missing in the
middle is found and put in its place."""

from __future__ import annotations

from twisted.logger import Logger

from ...timers import Periodic, now_ms
from ...wire.errors import ApiError, Unavailable
from ...wire.message_info import MessageInfo, announced_by, parse_message_info, server_of
from ...wire.records import ChatType
from ..store import group_messages
from ..clients.reach import Reach
from ..clients.remote import NOT_FOUND, FederationClient, HistoryPage, PeerFailed
from ..store.unit import NodeStore

__all__ = ["GroupSync"]

log = Logger()

PAGE = 100  # grpchat answers at most this many (docs/protocol.md §5)


class GroupSync(Periodic):
    def __init__(self, *, store: NodeStore, remote: FederationClient, reach: Reach,
                 seconds: float) -> None:
        super().__init__(store.clock, seconds)
        self.store, self.remote, self.reach = store, remote, reach

    def now_ms(self) -> int:
        return now_ms(self.clock)

    async def tick(self) -> None:
        for group_id, through, local in await self.store.run(group_messages.views_to_check):
            try:
                fetched = await self.sync(group_id, through, local)
            except (ApiError, PeerFailed) as e:
                log.info("group {group} not checked against its master: {error}",
                         group=group_id, error=str(e))
                continue
            if fetched:
                log.info("group {group}: {n} missing message(s) filled from its master",
                         group=group_id, n=fetched)

    async def sync_now(self, group_id: str) -> int:
        """Check one group at once (a member asked); the number of messages filled."""
        views = await self.store.run(group_messages.views_to_check, group_id)
        return await self.sync(*views[0]) if views else 0

    async def sync(self, group_id: str, through: str, local: list[str]) -> int:
        peer = await self.reach.require_now(server_of(group_id))

        async def page_after(message_id: str, limit: int = PAGE) -> HistoryPage:
            return await self.remote.grpchat(peer, group_id, message_id,
                                             None if limit == PAGE else limit)

        after = through
        if not after:
            # Never checked: from the oldest message we hold, or, holding none, from now on.
            oldest = await self.store.run(group_messages.oldest, group_id)
            if not oldest:
                first = await page_after("", 1)
                await self.store.run(group_messages.mark_synced, group_id, first.newest,
                                     self.now_ms())
                return 0
            after = oldest
        fetched, restarted = 0, False
        while True:
            try:
                answer = await page_after(after)
            except PeerFailed as e:
                if e.kind == NOT_FOUND and after and not restarted:
                    # The master no longer keeps it: everything it still keeps.
                    after, restarted = "", True
                    continue
                raise
            page = [_group_message(m, group_id) for m in answer.messages]
            fetched += await self.store.run(group_messages.fill, group_id, after, page,
                                                    local, self.now_ms())
            if page:
                after = page[-1].message_id
            if len(page) < PAGE:
                break
        await self.store.run(group_messages.mark_synced, group_id, after, self.now_ms())
        return fetched


def _group_message(item, group_id: str) -> MessageInfo:
    try:
        info = parse_message_info(item)
    except ApiError as e:
        raise Unavailable("the master sent a bad message: %s" % e.message,
                          "peer_unreachable") from None
    if info.chat_type != ChatType.GROUP or info.recv_id != group_id:
        raise Unavailable("the master sent a message of another group", "peer_unreachable")
    if not announced_by(info, server_of(group_id)):
        raise Unavailable("the master sent a file not its own", "peer_unreachable")
    return info
