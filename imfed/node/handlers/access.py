"""Access control (§5.3.2, docs/protocol.md §6) as the daemon applies it: per direction
(inbound calls, outbound sends) a mode, open, whitelist or blacklist, over serverIds.  The rules
are kept in the store (imfed/node/store/acl.py), so ``imfed acl`` changes them beside the
running daemon; it re-reads them at most a second later."""

from __future__ import annotations

from ...storage import Database
from ..store.acl import read

__all__ = ["AccessControl", "decide"]


def decide(rule: tuple, server_id: str) -> bool:
    mode, white, black = rule
    if mode == "whitelist":
        return server_id in white
    if mode == "blacklist":
        return server_id not in black
    return True


class AccessControl:
    def __init__(self, db: Database, clock, ttl: float = 1.0) -> None:
        self.db, self.clock, self.ttl = db, clock, ttl
        self._rules: dict | None = None
        self._read_at = 0.0

    async def rules(self) -> dict:
        now = self.clock.seconds()
        if self._rules is None or now - self._read_at >= self.ttl:
            self._rules = await self.db.runInteraction(read)
            self._read_at = now
        return self._rules

    async def allows(self, direction: str, server_id: str) -> bool:
        return decide((await self.rules())[direction], server_id)
