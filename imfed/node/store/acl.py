"""Access control (§5.3.2, docs/protocol.md §6): per direction (inbound calls, outbound sends) a
mode, open, whitelist or blacklist, over serverIds.  Kept in the store, so ``imfed acl``
changes it beside the running daemon; the daemon re-reads it at most a second later."""

from __future__ import annotations

from ...storage import transaction

__all__ = ["read", "set_mode", "add", "remove", "DIRECTIONS", "MODES", "LISTS"]

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
