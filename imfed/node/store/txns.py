"""Idempotent client sends (docs/client-api.md): a send carrying a ``txnId`` (per user, as
Matrix's transaction IDs) is done once; the same ``txnId`` again answers what the first made.
A client whose connection broke after the server committed can send again without sending
twice.  Kept ``KEEP_MS``; housekeeping forgets older ones."""

from __future__ import annotations

__all__ = ["seen", "remember", "prune", "KEEP_MS"]

KEEP_MS = 86_400_000


def seen(cur, user_id: str, txn: str | None) -> str | None:
    """The message ID ``user_id``'s ``txn`` made before, or None."""
    if txn is None:
        return None
    cur.execute("SELECT message_id FROM client_txns WHERE user_id = ? AND txn_id = ?",
                (user_id, txn))
    row = cur.fetchone()
    return row[0] if row else None


def remember(cur, user_id: str, txn: str | None, message_id: str, now_ms: int) -> None:
    if txn is not None:
        cur.execute("INSERT INTO client_txns VALUES (?, ?, ?, ?)",
                    (user_id, txn, message_id, now_ms))


def prune(cur, before_ms: int) -> int:
    cur.execute("DELETE FROM client_txns WHERE created_at < ?", (before_ms,))
    return cur.rowcount
