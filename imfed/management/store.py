"""The management store: the directory of IM servers, applications, the audit log and the
notification queue.

Functions take a DB-API cursor, so the daemon (through adbapi) and the operator CLI (through
``storage.run_sync``) share every query.  Top-level writes are wrapped in
``storage.transaction``.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from ..storage import Database, transaction
from ..storage.audit import audit, audit_log
from ..timers import now_ms

__all__ = [
    "ServerRecord", "Application", "RegistryStore",
    "get_server", "put_server", "list_servers", "changed_since", "next_mark",
    "insert_application", "get_application", "list_applications", "pending_for", "decide",
    "audit", "audit_log",
    "enqueue_notifications", "due_notifications", "notification_done", "notification_failed",
    "drop_inactive_notifications", "queued_notifications",
]

_SERVER_COLUMNS = ("server_id", "server_name", "server_address", "server_type", "area",
                   "country", "owner_id", "contact_name", "contact_email", "contact_mobile",
                   "status", "cert_pem", "cert_fingerprint", "changed_at", "enc_cert_pem")


@attrs.frozen
class ServerRecord:
    server_id: str
    server_name: str
    server_address: str
    server_type: str
    area: str
    country: str
    owner_id: str
    contact_name: str
    contact_email: str
    contact_mobile: str
    status: int
    cert_pem: str
    cert_fingerprint: str
    changed_at: int = 0
    enc_cert_pem: str | None = None  # TLCP's encryption certificate, where it has one

    def to_wire(self) -> dict:
        return _entry(*(getattr(self, c) for c in _WIRE_COLUMNS))


_WIRE_COLUMNS = ("server_id", "server_name", "server_type", "server_address", "status",
                 "contact_name", "contact_email", "contact_mobile", "area", "country",
                 "cert_fingerprint")


def _entry(server_id, server_name, server_type, server_address, status, contact_name,
           contact_email, contact_mobile, area, country, cert_fingerprint) -> dict:
    """A server as the directory sends it: §6.3.1 fields, plus area, country and
    certFingerprint (docs/protocol.md §4).  The product type goes out under both of the standard's
    names: productType (§6.3.1) and serverType (table 1)."""
    return {"serverId": server_id, "serverName": server_name, "productType": server_type,
            "serverType": server_type, "serverAddress": server_address, "status": status,
            "contactName": contact_name, "contactEmail": contact_email,
            "contactMobile": contact_mobile, "area": area, "country": country,
            "certFingerprint": cert_fingerprint}


def _server_select(where: str) -> str:
    return "SELECT %s FROM servers %s" % (",".join(_SERVER_COLUMNS), where)


def next_mark(cur, now_ms: int) -> int:
    """The next change mark: milliseconds, strictly increasing across the whole table even
    when two changes fall in the same millisecond or the clock steps back, so a change is
    always after every mark handed out before it and an incremental query never misses one."""
    cur.execute("SELECT COALESCE(MAX(changed_at), 0) FROM servers")
    return max(now_ms, cur.fetchone()[0] + 1)


def get_server(cur, server_id: str) -> ServerRecord | None:
    cur.execute(_server_select("WHERE server_id = ?"), (server_id,))
    row = cur.fetchone()
    return ServerRecord(*row) if row else None


def put_server(cur, record: ServerRecord, now_ms: int) -> ServerRecord:
    """Insert or replace a server under a new change mark."""
    rec = attrs.evolve(record, changed_at=next_mark(cur, now_ms))
    cur.execute("INSERT INTO servers (%s) VALUES (%s) ON CONFLICT (server_id) DO UPDATE SET %s"
                % (",".join(_SERVER_COLUMNS), ",".join("?" * len(_SERVER_COLUMNS)),
                   ", ".join("%s = excluded.%s" % (c, c) for c in _SERVER_COLUMNS[1:])),
                attrs.astuple(rec))
    return rec


def list_servers(cur) -> list[ServerRecord]:
    cur.execute(_server_select("ORDER BY server_id"))
    return [ServerRecord(*r) for r in cur.fetchall()]


def changed_since(cur, last: int, server_ids: list[str] | None = None
                  ) -> tuple[list[dict], int]:
    """The directory view (§6.3.1): servers changed after mark ``last`` (all for 0) as wire
    dicts, and the mark to ask from next time.  Reads only the columns it sends (certificates
    are fetched one by one with getservercert)."""
    sql = "SELECT %s, changed_at FROM servers WHERE changed_at > ?" % ",".join(_WIRE_COLUMNS)
    args: list = [last]
    if server_ids:
        sql += " AND server_id IN (%s)" % ",".join("?" * len(server_ids))
        args += server_ids
    cur.execute(sql + " ORDER BY changed_at", args)
    rows = cur.fetchall()
    entries = [_entry(*row[:-1]) for row in rows]
    # The next mark is the newest change *read* (one statement: on PostgreSQL a second one
    # could see a change committed in between, and the node would skip it for good).
    return entries, max([row[-1] for row in rows] + [last])


@attrs.frozen
class Application:
    application_id: str
    kind: str
    server_id: str
    status: str
    submitted_at: int
    submitted_by: str
    token_hash: str
    data: dict
    csr_pem: str | None = None
    decided_at: int | None = None
    decided_by: str | None = None
    reason: str = ""
    cert_pem: str | None = None
    enc_csr_pem: str | None = None
    enc_cert_pem: str | None = None

    def to_json(self) -> dict:
        """What operators see of it (``imfed admin show --json``, the admin API): every field
        but the hash of its applicant's token."""
        value = attrs.asdict(self)
        value.pop("token_hash")
        return value


_APP_COLUMNS = tuple(a.name for a in attrs.fields(Application))


def _application(row) -> Application:
    values = dict(zip(_APP_COLUMNS, row))
    values["data"] = json.loads(values["data"])
    return Application(**values)


def insert_application(cur, app: Application) -> None:
    values = attrs.asdict(app)
    values["data"] = json.dumps(app.data, ensure_ascii=False, sort_keys=True)
    cur.execute("INSERT INTO applications (%s) VALUES (%s)"
                % (",".join(_APP_COLUMNS), ",".join("?" * len(_APP_COLUMNS))),
                [values[c] for c in _APP_COLUMNS])


def get_application(cur, application_id: str) -> Application | None:
    cur.execute("SELECT %s FROM applications WHERE application_id = ?" % ",".join(_APP_COLUMNS),
                (application_id,))
    row = cur.fetchone()
    return _application(row) if row else None


def list_applications(cur, pending_only: bool = True) -> list[Application]:
    where = "WHERE status = 'pending'" if pending_only else ""
    cur.execute("SELECT %s FROM applications %s ORDER BY submitted_at, application_id"
                % (",".join(_APP_COLUMNS), where))
    return [_application(r) for r in cur.fetchall()]


def pending_count(cur) -> int:
    cur.execute("SELECT COUNT(*) FROM applications WHERE status = 'pending'")
    return cur.fetchone()[0]


def pending_for(cur, server_id: str) -> Application | None:
    cur.execute("SELECT %s FROM applications WHERE server_id = ? AND status = 'pending'"
                % ",".join(_APP_COLUMNS), (server_id,))
    row = cur.fetchone()
    return _application(row) if row else None


def decide(cur, application_id: str, status: str, by: str, at: int, reason: str = "",
           cert_pem: str | None = None, enc_cert_pem: str | None = None) -> None:
    cur.execute("UPDATE applications SET status = ?, decided_by = ?, decided_at = ?, "
                "reason = ?, cert_pem = ?, enc_cert_pem = ? WHERE application_id = ? AND "
                "status = 'pending'",
                (status, by, at, reason, cert_pem, enc_cert_pem, application_id))
    if cur.rowcount != 1:
        raise LookupError("application %s is not pending" % application_id)


def enqueue_notifications(cur, changed_id: str, now_ms: int) -> int:
    """Owe every status-0 server a receivenotify about ``changed_id``; answer how many."""
    cur.execute("INSERT INTO notify_queue (target_id, changed_id, created_at, next_attempt) "
                "SELECT server_id, ?, ?, ? FROM servers WHERE status = 0 "
                "ON CONFLICT (target_id, changed_id) DO UPDATE SET "
                "next_attempt = excluded.next_attempt, attempts = 0, "
                "version = notify_queue.version + 1",
                (changed_id, now_ms, now_ms))
    return cur.rowcount


def due_notifications(cur, now_ms: int, limit: int = 500) -> list[tuple]:
    """(target_id, changed_id, version, attempts, server_address) due now, targets still
    status 0."""
    cur.execute("SELECT q.target_id, q.changed_id, q.version, q.attempts, s.server_address "
                "FROM notify_queue q JOIN servers s ON s.server_id = q.target_id "
                "WHERE q.next_attempt <= ? AND s.status = 0 "
                "ORDER BY q.next_attempt LIMIT ?", (now_ms, limit))
    return cur.fetchall()


def notification_done(cur, target_id: str, changed_id: str, version: int) -> None:
    cur.execute("DELETE FROM notify_queue WHERE target_id = ? AND changed_id = ? "
                "AND version = ?", (target_id, changed_id, version))


def notification_failed(cur, target_id: str, changed_id: str, version: int, attempts: int,
                        next_attempt: int, error: str) -> None:
    cur.execute("UPDATE notify_queue SET attempts = ?, next_attempt = ?, last_error = ? "
                "WHERE target_id = ? AND changed_id = ? AND version = ?",
                (attempts, next_attempt, error[:500], target_id, changed_id, version))


def drop_inactive_notifications(cur) -> int:
    """Forget what is owed to servers that are no longer status 0 (§6.3.3: until a 2xx or
    until that node is no longer status 0)."""
    cur.execute("DELETE FROM notify_queue WHERE target_id NOT IN "
                "(SELECT server_id FROM servers WHERE status = 0)")
    return cur.rowcount


def queued_notifications(cur) -> list[tuple]:
    cur.execute("SELECT target_id, changed_id, attempts, next_attempt, last_error "
                "FROM notify_queue ORDER BY target_id, changed_id")
    return cur.fetchall()


def queue_figures(cur) -> tuple[dict[str, int], dict[str, int]]:
    """({application state: how many}, {node: notifications waiting for it})."""
    cur.execute("SELECT status, COUNT(*) FROM applications GROUP BY status")
    by_state = dict(cur.fetchall())
    cur.execute("SELECT target_id, COUNT(*) FROM notify_queue GROUP BY target_id")
    return by_state, dict(cur.fetchall())


@attrs.define
class RegistryStore:
    """The daemon's handle: runs the cursor functions above on the adbapi pool."""

    db: Database
    clock: Any  # IReactorTime

    def now_ms(self) -> int:
        return now_ms(self.clock)

    def run(self, fn, *args, **kwargs):
        return self.db.runInteraction(fn, *args, **kwargs)

    async def get(self, server_id: str) -> ServerRecord | None:
        return await self.run(get_server, server_id)

    async def put(self, record: ServerRecord) -> ServerRecord:
        return await self.run(transaction(put_server), record, self.now_ms())

    async def changed_since(self, last: int, server_ids: list[str] | None = None
                            ) -> tuple[list[dict], int]:
        return await self.run(changed_since, last, server_ids)
