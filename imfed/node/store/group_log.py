"""What happened to a group, as its chat shows it between the messages (docs/groups.md "The
group's own lines"): one row per change (operType 1–7 of notify/grpnotify) this server made as
the master or was told of, placed after the newest message it held of the group then.  Read a
page at a time beside the messages (:func:`for_page`), so that a page of history and its lines
cover the same stretch of the group's order and no line is shown twice or never."""

from __future__ import annotations

import json

from .events import compact_json

__all__ = ["record", "for_page", "purge_group", "LINES_PER_PAGE"]

LINES_PER_PAGE = 200
"""The most lines given with one page of messages (the newest of them): a page's stretch of a
large group can hold thousands of joins, and a person reads none of them one by one."""


def _who(info) -> dict:
    """userID and name of a userInfo: what a line names (no portrait, no extras)."""
    if not isinstance(info, dict):
        return {}
    return {k: info[k] for k in ("userID", "name") if isinstance(info.get(k), str)}


def record(cur, group_id: str, oper_type: int, oper_user, users: list[dict],
           group_info: dict, changed: tuple, now_ms: int) -> int:
    """Keep one change: ``changed`` says what an update (operType 7) changed, of
    ``groupName``, ``groupIcon``, ``groupNotice``, ``grpset``; ``oper_user`` and ``users``
    are userInfos as given (another vendor's may be anything: only a dict's userID and name
    are kept).  The line's ``id`` (the
    ``lineID`` of the event that tells it live, so a client that got both shows it once)."""
    cur.execute("SELECT message_id, ord FROM group_messages WHERE group_id = ? "
                "ORDER BY ord DESC LIMIT 1", (group_id,))
    row = cur.fetchone()
    after_id, after_ord = (row[0], row[1]) if row else ("", 0)
    entry: dict = {"operType": int(oper_type), "operUser": _who(oper_user),
                   "users": [_who(u) for u in users]}
    if changed:
        entry["changed"] = list(changed)
        entry["groupName"] = str(group_info.get("groupName", ""))
        notice = group_info.get("groupNotice")
        if "groupNotice" in changed and isinstance(notice, dict):
            entry["groupNotice"] = notice
    cur.execute("INSERT INTO group_log (group_id, after_ord, after_id, entry, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (group_id, after_ord, after_id, compact_json(entry), now_ms))
    return cur.fetchone()[0]


def for_page(cur, group_id: str, first_id: str | None, before_id: str | None,
             limit: int = LINES_PER_PAGE) -> list[dict]:
    """The lines of a page of history whose first message is ``first_id`` (None: the page
    reaches the group's beginning) and whose next newer message is ``before_id`` (None: the
    page is the newest), oldest first; each ``{"id", "after", "time", ...entry}``, ``after``
    the messageID it follows ("" for none, or for one no longer kept)."""
    low, high = _place(cur, group_id, first_id), _place(cur, group_id, before_id)
    cur.execute("SELECT id, after_id, entry, created_at FROM group_log WHERE group_id = ? "
                "AND after_ord >= COALESCE(CAST(? AS DOUBLE PRECISION), -1) "
                "AND (CAST(? AS DOUBLE PRECISION) IS NULL OR after_ord < ?) "
                "ORDER BY id DESC LIMIT ?", (group_id, low, high, high, limit))
    return [dict(json.loads(entry), id=id_, after=after, time=created)
            for id_, after, entry, created in reversed(cur.fetchall())]


def _place(cur, group_id: str, message_id: str | None) -> float | None:
    """A message's ``ord`` (group_messages.position; not imported: groups.py imports this
    module, and group_messages imports groups)."""
    if message_id is None:
        return None
    cur.execute("SELECT ord FROM group_messages WHERE group_id = ? AND message_id = ?",
                (group_id, message_id))
    row = cur.fetchone()
    return row[0] if row else None


def purge_group(cur, group_id: str) -> int:
    cur.execute("DELETE FROM group_log WHERE group_id = ?", (group_id,))
    return cur.rowcount
