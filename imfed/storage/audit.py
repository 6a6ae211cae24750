"""The audit log each role keeps (the ``audit`` table of its store): what its operators did
— and, on the management role, what applicants submitted — who, when and why.  Append-only:
the store's triggers refuse to change or remove an entry."""

from __future__ import annotations

import json

__all__ = ["audit", "audit_log"]


def audit(cur, at: int, actor: str, action: str, subject: str, reason: str = "",
          **detail) -> None:
    cur.execute("INSERT INTO audit (at, actor, action, subject, reason, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (at, actor, action, subject, reason,
                 json.dumps(detail, ensure_ascii=False, sort_keys=True)))


def audit_log(cur, limit: int = 100, subject: str | None = None) -> list[tuple]:
    """The newest ``limit`` entries, oldest first: (seq, at, actor, action, subject, reason,
    detail)."""
    sql = "SELECT seq, at, actor, action, subject, reason, detail FROM audit"
    args: list = []
    if subject:
        sql += " WHERE subject = ?"
        args.append(subject)
    cur.execute(sql + " ORDER BY seq DESC LIMIT ?", args + [limit])
    return list(reversed(cur.fetchall()))
