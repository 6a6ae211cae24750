"""The directory as this node last fetched it (the ``directory`` tables): what
imfed/node/directory.py loads at start and saves after each refresh."""

from __future__ import annotations

from ...cluster import DIRECTORY, notify
from ...storage import transaction

__all__ = ["load", "save", "known"]


def load(cur) -> tuple[list[tuple], int, int]:
    # The mark first: on PostgreSQL each statement reads its own snapshot, and rows newer
    # than the mark only mean asking the management server again for what is already here;
    # a mark newer than the rows would skip a change for good.
    cur.execute("SELECT last_query_time, confirmed_at FROM directory_state WHERE id = 1")
    row = cur.fetchone()
    cur.execute("SELECT server_id, server_name, server_address, status, cert_pem FROM directory")
    return cur.fetchall(), row[0] if row else 0, row[1] if row else 0


@transaction
def save(cur, peers: list[tuple], mark: int, now_ms: int) -> None:
    for server_id, name, address, status, cert_pem, fingerprint in peers:
        cur.execute("INSERT INTO directory VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server_id) "
                    "DO UPDATE SET server_name = excluded.server_name, server_address = "
                    "excluded.server_address, status = excluded.status, cert_pem = "
                    "excluded.cert_pem, cert_fingerprint = excluded.cert_fingerprint, "
                    "updated_at = excluded.updated_at",
                    (server_id, name, address, status, cert_pem, fingerprint, now_ms))
    cur.execute("INSERT INTO directory_state (id, last_query_time, confirmed_at) VALUES "
                "(1, ?, ?) ON CONFLICT (id) DO UPDATE SET last_query_time = "
                "excluded.last_query_time, confirmed_at = excluded.confirmed_at",
                (mark, now_ms))
    if peers:
        notify(cur, DIRECTORY)  # the node's other processes read it again


def known(cur, server_id: str) -> bool:
    """Whether the directory as last fetched lists ``server_id``."""
    cur.execute("SELECT 1 FROM directory WHERE server_id = ?", (server_id,))
    return cur.fetchone() is not None
