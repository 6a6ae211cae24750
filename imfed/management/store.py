"""The management store: the directory of IM servers."""

from __future__ import annotations

import attrs

from ..storage import Database

__all__ = ["ServerRecord", "RegistryStore"]

_COLUMNS = ("server_id", "server_name", "server_address", "server_type", "area", "country",
            "owner_id", "contact_name", "contact_email", "contact_mobile", "status", "cert_pem",
            "cert_fingerprint", "changed_at")


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

    def to_wire(self) -> dict:
        """§6.3.1 fields, plus area, country and certFingerprint (PROFILE.md §4).  The product
        type goes out under both of the standard's names: productType (§6.3.1) and serverType
        (table 1)."""
        return {
            "serverId": self.server_id,
            "serverName": self.server_name,
            "productType": self.server_type,
            "serverType": self.server_type,
            "serverAddress": self.server_address,
            "status": self.status,
            "contactName": self.contact_name,
            "contactEmail": self.contact_email,
            "contactMobile": self.contact_mobile,
            "area": self.area,
            "country": self.country,
            "certFingerprint": self.cert_fingerprint,
        }


def _record(row) -> ServerRecord:
    return ServerRecord(*row)


@attrs.define
class RegistryStore:
    db: Database
    clock: object  # IReactorTime

    async def get(self, server_id: str) -> ServerRecord | None:
        rows = await self.db.runQuery(
            "SELECT %s FROM servers WHERE server_id = ?" % ",".join(_COLUMNS), (server_id,))
        return _record(rows[0]) if rows else None

    async def put(self, record: ServerRecord) -> ServerRecord:
        """Insert or replace a server; its ``changed_at`` becomes the next change mark.

        Change marks are milliseconds, strictly increasing across the whole table even when
        two changes fall in the same millisecond or the clock steps back: a change is always
        after every mark handed out before it, so an incremental query never misses one.
        """
        now = int(self.clock.seconds() * 1000)

        def txn(cur):
            cur.execute("SELECT COALESCE(MAX(changed_at), 0) FROM servers")
            mark = max(now, cur.fetchone()[0] + 1)
            rec = attrs.evolve(record, changed_at=mark)
            cur.execute("INSERT OR REPLACE INTO servers (%s) VALUES (%s)"
                        % (",".join(_COLUMNS), ",".join("?" * len(_COLUMNS))),
                        attrs.astuple(rec))
            return rec

        return await self.db.runInteraction(txn)

    async def changed_since(self, last: int, server_ids: list[str] | None = None
                            ) -> tuple[list[ServerRecord], int]:
        """Servers changed after mark ``last`` (all for 0), and the mark to ask from next."""

        def txn(cur):
            sql = "SELECT %s FROM servers WHERE changed_at > ?" % ",".join(_COLUMNS)
            args: list = [last]
            if server_ids:
                sql += " AND server_id IN (%s)" % ",".join("?" * len(server_ids))
                args += server_ids
            cur.execute(sql + " ORDER BY changed_at", args)
            rows = cur.fetchall()
            cur.execute("SELECT COALESCE(MAX(changed_at), 0) FROM servers")
            return [_record(r) for r in rows], max(cur.fetchone()[0], last)

        return await self.db.runInteraction(txn)
