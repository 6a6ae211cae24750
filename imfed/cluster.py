"""What the processes of one role share besides their store (docs/scaling.md).

On SQLite a role is one process (:class:`Alone`): nothing to share, nothing to wait for.  On
PostgreSQL any number of identical processes serve one node on one database
(:class:`Cluster`), and this is how they keep out of each other's way:

- **leases** — a PostgreSQL session advisory lock per name, held on one connection of the
  process kept for that: an outbound lane (``claim``/``release``: one process delivers a lane
  at a time, so its order holds), a periodic job (``lease(name)``: directory refresh, renewal,
  housekeeping, group checks, the bridge's pushes, the XMPP gateway run in one process at a
  time).  A process that dies loses its locks with its connection, at once: the others take
  over at their next look;
- **signals** — ``LISTEN``/``NOTIFY``: a transaction that emitted events notifies
  ``imfed_events`` with the users (delivered at commit, to every process), one that queued
  deliveries ``imfed_outbox``, a directory change ``imfed_directory``; each process's event
  streams, outbound queue and directory wake on them as on their own work.

Writes take turns on one transaction lock (storage.postgresql), and replay protection keeps
its nonces in the database (crypto.signing's verifier, ``seen_nonces``).
"""

from __future__ import annotations

import threading

from twisted.application.service import Service
from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from .storage.postgresql import lock_key
from .timers import Periodic

__all__ = ["Alone", "Cluster", "cluster_for", "lock_key", "notify", "Leased", "StoredNonces",
           "EVENTS", "OUTBOX", "DIRECTORY"]

log = Logger()

EVENTS, OUTBOX, DIRECTORY = "imfed_events", "imfed_outbox", "imfed_directory"
_CHANNELS = (EVENTS, OUTBOX, DIRECTORY)
_PAYLOAD_MAX = 7000  # NOTIFY's payload must stay under 8,000 bytes


def notify(cur, channel: str, items=()) -> None:
    """In a transaction on PostgreSQL: tell every process, at commit, ``items`` (strings
    without newlines, joined in as few notifications as fit) on ``channel``."""
    if getattr(cur, "dialect", "sqlite") != "postgresql":
        return
    items = list(items)
    if not items:
        cur.execute("SELECT pg_notify(?, '')", (channel,))
        return
    chunk: list = []
    size = 0
    for item in items:
        if chunk and size + len(item) + 1 > _PAYLOAD_MAX:
            cur.execute("SELECT pg_notify(?, ?)", (channel, "\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(item)
        size += len(item) + 1
    cur.execute("SELECT pg_notify(?, ?)", (channel, "\n".join(chunk)))


class Alone:
    """One process on its own store (SQLite): every lease is held, every lane free."""

    several = False

    def lease(self, name: str):
        return None

    def claim(self, name: str):
        return succeed(True)

    def release(self, name: str) -> None:
        pass

    def on(self, channel: str, handler) -> None:
        pass


def _daemon_thread(*args, **kwargs) -> threading.Thread:
    """A thread that does not hold up the process's exit (a role never stopped: a test's, a
    crash)."""
    return threading.Thread(*args, daemon=True, **kwargs)


class Cluster(Service):
    """One of several processes on one PostgreSQL database (see the module's note)."""

    several = True

    def __init__(self, url: str, reactor, retry_seconds: float = 1.0) -> None:
        self.url, self.reactor, self.retry_seconds = url, reactor, retry_seconds
        self._pool = ThreadPool(1, 1, name="imfed-leases")
        self._pool.threadFactory = _daemon_thread  # type: ignore[assignment]
        self._conn = None
        self._held: set[int] = set()
        self._handlers: dict[str, list] = {}
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    # -- leases -------------------------------------------------------------------------------

    def lease(self, name: str):
        """A check for a periodic job: ``check()`` answers a Deferred of whether this process
        holds (or just took) the job's lease."""
        key = lock_key("job:" + name)
        return lambda: self._locks(self._take, key)

    def claim(self, name: str):
        """Deferred: True when this process took ``name``'s lease (free), else False."""
        return self._locks(self._take, lock_key(name))

    def release(self, name: str) -> None:
        d = self._locks(self._give_back, lock_key(name))
        d.addErrback(lambda f: log.failure("lease release failed", f))

    def _locks(self, fn, key):
        if not self._pool.started:
            return succeed(False)
        return deferToThreadPool(self.reactor, self._pool, fn, key)

    def _connection(self):
        if self._conn is None or self._conn.closed or self._conn.broken:
            from .storage import postgresql

            self._held.clear()  # a new session holds nothing
            self._conn = postgresql.connect(self.url, autocommit=True)
        return self._conn

    def _take(self, key: int) -> bool:
        try:
            conn = self._connection()
            if key in self._held:
                conn.execute("SELECT 1")  # still connected: still held
                return True
            took = conn.execute("SELECT pg_try_advisory_lock(?)", (key,)).fetchone()[0]
        except Exception as e:
            log.warn("lease connection: {e}", e=str(e).strip())
            self._drop()
            return False
        if took:
            self._held.add(key)
        return bool(took)

    def _give_back(self, key: int) -> None:
        if key not in self._held:
            return
        self._held.discard(key)
        try:
            self._connection().execute("SELECT pg_advisory_unlock(?)", (key,))
        except Exception:
            self._drop()

    def _drop(self) -> None:
        self._held.clear()
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None

    # -- signals ------------------------------------------------------------------------------

    def on(self, channel: str, handler) -> None:
        """``handler(items)`` in the reactor thread for each notification on ``channel``
        (``items``: the strings notified, or None after the listening connection was lost
        and made again: anything may have changed meanwhile)."""
        self._handlers.setdefault(channel, []).append(handler)

    def _dispatch(self, channel: str, items) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(items)
            except Exception:
                log.failure("handler of {channel} failed", channel=channel)

    def _listen(self) -> None:
        from .storage import postgresql

        first = True
        while not self._stop.is_set():
            try:
                conn = postgresql.connect(self.url, autocommit=True)
            except Exception as e:
                log.warn("notification connection: {e}", e=str(e).strip())
                self._stop.wait(self.retry_seconds)
                continue
            try:
                for channel in _CHANNELS:
                    conn.execute("LISTEN %s" % channel)
                if not first:  # what was notified while we were away is lost: look again
                    for channel in _CHANNELS:
                        self.reactor.callFromThread(self._dispatch, channel, None)
                first = False
                while not self._stop.is_set():
                    for n in conn.notifies(timeout=0.5):
                        items = n.payload.split("\n") if n.payload else []
                        self.reactor.callFromThread(self._dispatch, n.channel, items)
            except Exception as e:
                if not self._stop.is_set():
                    log.warn("notification connection lost: {e}", e=str(e).strip())
                    self._stop.wait(self.retry_seconds)
            finally:
                conn.close()

    # -- service ------------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stop.clear()
        self._pool.start()
        self._listener = threading.Thread(target=self._listen, name="imfed-notifications",
                                          daemon=True)
        self._listener.start()

    def stopService(self):
        super().stopService()
        self._stop.set()
        d = deferToThreadPool(self.reactor, self._pool, self._drop)

        def stopped(_):
            self._pool.stop()
            if self._listener is not None:  # waited for in a thread, not in the reactor's
                return deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                         self._listener.join, 2.0)
        d.addBoth(stopped)
        return d


def cluster_for(db, reactor):
    """:class:`Cluster` for a role on PostgreSQL, :class:`Alone` on SQLite."""
    return Cluster(db.path, reactor) if db.dialect == "postgresql" else Alone()


def _remember(cur, origin: str, nonce: str, expiry: int, prune_before: int | None) -> bool:
    if prune_before is not None:
        cur.execute("DELETE FROM seen_nonces WHERE expires_at < ?", (prune_before,))
    cur.execute("INSERT INTO seen_nonces VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (origin, nonce, expiry))
    return cur.rowcount == 1


class StoredNonces:
    """The verifier's nonces in the role's database (``seen_nonces``), for several processes:
    ``check_and_add`` answers a Deferred of True for a nonce no process has taken (and takes
    it), False for a replay.  Expired ones are removed now and then, by whichever process."""

    def __init__(self, db, window_ms: int, prune_seconds: float = 60.0) -> None:
        self.db, self.window_ms, self.prune_ms = db, window_ms, int(prune_seconds * 1000)
        self._pruned_at = 0

    def check_and_add(self, origin: str, nonce: str, now_ms: int, ts_ms: int | None = None):
        expiry = (now_ms if ts_ms is None else ts_ms) + self.window_ms
        prune = None
        if now_ms - self._pruned_at > self.prune_ms:
            self._pruned_at, prune = now_ms, now_ms
        return self.db.runInteraction(_remember, origin, nonce, expiry, prune)


class Leased(Periodic):
    """``service`` (the XMPP gateway: one component connection) running in one process at a
    time: started while this process holds the lease, stopped if it loses it; looked at every
    ``seconds``."""

    def __init__(self, service, lease, clock, seconds: float = 2.0) -> None:
        super().__init__(clock, seconds)
        self.service, self.lease = service, lease

    def tick(self) -> None:
        if not self.service.running:
            self.service.startService()

    def follow(self):
        if self.service.running:
            return self.service.stopService()

    def stopped(self):
        if self.service.running:
            return self.service.stopService()
