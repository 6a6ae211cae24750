"""Periodic work as a service: the notification queue, the outbound queue, the directory
refresh."""

from __future__ import annotations

import random
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .storage.outage import log_failure

__all__ = ["Periodic", "backoff_ms", "cancel", "now_ms"]

log = Logger()


def now_ms(clock=None) -> int:
    """The time in milliseconds since the epoch, the unit of every timestamp imfed stores and
    signs: ``clock``'s (an IReactorTime: the reactor, a test's Clock), or the system's."""
    return int((clock.seconds() if clock is not None else time.time()) * 1000)


def cancel(call) -> Any:  # always None: ``self._timer = cancel(self._timer)``
    """Cancel a delayed call if it is still pending; None, for the attribute that held it
    (``self._timer = cancel(self._timer)``)."""
    if call is not None and call.active():
        call.cancel()


def backoff_ms(attempts: int, initial_seconds: float, max_seconds: float) -> int:
    """The wait before attempt ``attempts + 1`` of a delivery (the outbox's, the management
    notifier's): doubling from ``initial_seconds`` up to ``max_seconds``, less up to a quarter
    at random so that retries after an outage do not all come at once."""
    delay = min(max_seconds, initial_seconds * 2 ** min(max(attempts, 1) - 1, 30))
    return int(delay * 1000 * random.uniform(0.75, 1.0))


class Periodic(Service):
    """Calls ``tick()`` at start and every ``seconds`` after, one run at a time; an error is
    logged and never stops the loop.  On stop the loop ends, a run in flight is cancelled (all
    such work is retried later: nothing waits on a peer that does not answer), and the
    Deferred of ``stopped()`` is waited for.

    With several processes on one store, ``lease`` (imfed/cluster.py) is set: each run first
    asks it, and only the process holding the job's lease calls ``tick()``; the others call
    ``follow()``."""

    lease = None
    leading = True  # whether the last run here did the work (held the lease)

    def __init__(self, clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds
        self._loop: LoopingCall | None = None
        self._current: Deferred | None = None

    def tick(self):
        raise NotImplementedError

    def follow(self):
        """A run in a process that does not hold the job's lease."""
        return None

    def _run(self):
        if self.lease is None:
            return self.tick()
        d = self.lease()

        def run(held):
            self.leading = held
            return maybeDeferred(self.tick if held else self.follow)
        d.addCallback(run)
        return d

    def stopped(self):
        return None

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._fire)
        self._loop.clock = self.clock
        self._loop.start(self.seconds, now=True)

    def _fire(self) -> None:
        if self._current is not None:
            return
        d = maybeDeferred(self._run)
        if d.called:  # a tick that finished at once
            d.addErrback(self._failed)
            return
        self._current = d
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _failed(self, failure) -> None:
        if not failure.check("twisted.internet.defer.CancelledError"):
            log_failure(log, "{name} failed", failure, name=type(self).__name__)

    def _done(self, _) -> None:
        self._current = None

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._current is not None:
            self._current.cancel()
        return self.stopped()
