"""Access control (§5.3.2, docs/protocol.md §6): per direction (inbound calls, outbound sends) a
mode, open, whitelist or blacklist, over serverIds.  Kept in the store, so ``imfed acl``
changes it beside the running daemon; the daemon re-reads it at most a second later."""

from __future__ import annotations

from ..storage import Database, transaction

__all__ = ["AccessControl", "read", "set_mode", "add", "remove", "DIRECTIONS", "MODES", "LISTS",
           "decide"]

DIRECTIONS = ("in", "out")
MODES = ("open", "whitelist", "blacklist")
LISTS = ("whitelist", "blacklist")


def read(cur) -> dict:
    """{direction: (mode, whitelist, blacklist)}"""
    cur.execute("SELECT direction, mode FROM acl_mode")
    modes = dict(cur.fetchall())
    cur.execute("SELECT direction, list, server_id FROM acl_list")
    lists: dict[tuple[str, str], set[str]] = {(d, name): set() for d in DIRECTIONS
                                              for name in LISTS}
    for direction, name, server_id in cur.fetchall():
        lists[(direction, name)].add(server_id)
    return {d: (modes.get(d, "open"), lists[(d, "whitelist")], lists[(d, "blacklist")])
            for d in DIRECTIONS}


@transaction
def set_mode(cur, direction: str, mode: str) -> None:
    cur.execute("UPDATE acl_mode SET mode = ? WHERE direction = ?", (mode, direction))


@transaction
def add(cur, direction: str, name: str, server_id: str) -> None:
    cur.execute("INSERT INTO acl_list VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (direction, name, server_id))


@transaction
def remove(cur, direction: str, name: str, server_id: str) -> int:
    cur.execute("DELETE FROM acl_list WHERE direction = ? AND list = ? AND server_id = ?",
                (direction, name, server_id))
    return cur.rowcount


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
