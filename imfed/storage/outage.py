"""The store out of reach (PostgreSQL down, restarting, failed over; a pooled connection that
broke with it) as the log tells it: one line when it begins, one when it is over, whoever met
it first, a request (answered 503, imfed/web.py) or a job in the background (the outbox, a
periodic task: retried on its next round, nothing lost). Never a traceback for it."""

from __future__ import annotations

import time

from twisted.enterprise.adbapi import ConnectionLost
from twisted.logger import Logger

__all__ = ["store_unavailable", "Outage", "OUTAGE", "log_failure"]

log = Logger()


def store_unavailable(exc: BaseException) -> bool:
    """The store cannot be reached: a condition that passes, not a fault of the request or
    of the job that met it."""
    if isinstance(exc, ConnectionLost):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, psycopg.OperationalError)


class Outage:
    """One outage: ``since`` it began (None: none now), ``refused`` the requests answered 503
    meanwhile."""

    since: float | None = None
    refused = 0

    def began(self, exc: BaseException, request: bool = True) -> None:
        """Met by a request (counted) or by a background job (``request`` False)."""
        if request:
            self.refused += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warn("the store is unavailable ({error}): answering 503 with Retry-After "
                     "until it is back", error=(str(exc).strip().splitlines() or ["?"])[0])

    def over(self) -> None:
        if self.since is not None:
            log.info("the store is available again after {s:.1f} s ({n} requests answered "
                     "503 meanwhile)", s=time.monotonic() - self.since, n=self.refused)
            self.since, self.refused = None, 0


OUTAGE = Outage()


def log_failure(logger: Logger, message: str, failure, **fields) -> None:
    """``logger.failure`` for a job in the background, except for the store being out of
    reach: that is the outage's one line (the job is retried on its next round)."""
    if store_unavailable(failure.value):
        OUTAGE.began(failure.value, request=False)
        logger.debug(message + " (the store is unavailable)", **fields)
    else:
        logger.failure(message, failure, **fields)
