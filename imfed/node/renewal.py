"""Certificate renewal while the node runs (§6.1.2 through PROFILE.md §4 ``modify``).

Every ``renew_check_seconds`` the node looks at its certificate.  Within ``renew_before_days``
of expiry it applies for a new one (imfed/node/join.py ``renew``: a new key and CSR, signed
with the current identity), waits for the operator's approval, installs the files and takes
them up at once (``NodeRole.use_identity``): no restart, and the window in which peers that
already know the new certificate see the old one is one status poll.  A renewal is resumable:
one that a restart or a stop interrupted goes on with the same application.  The same check
takes up a certificate renewed by hand with `imfed node renew`."""

from __future__ import annotations

import datetime

from twisted.logger import Logger

from ..peer import PeerError
from ..timers import Periodic
from .join import JoinError, renew

__all__ = ["Renewal"]

log = Logger()


class Renewal(Periodic):
    def __init__(self, role, seconds: float, before_seconds: float,
                 poll_seconds: float | None = None) -> None:
        super().__init__(role.clock, seconds)
        self.role, self.before_seconds = role, before_seconds
        self.poll_seconds = poll_seconds if poll_seconds is not None else min(seconds, 30.0)

    async def tick(self) -> None:
        if self.role.use_identity():
            log.info("now using certificate {serial:x} (renewed outside the daemon)",
                     serial=self.role.identity.certificate.serial)
        cert = self.role.identity.certificate
        now = datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)
        left = (cert.not_after - now).total_seconds()
        if left > self.before_seconds:
            return
        log.warn("certificate {serial:x} expires {when}: renewing", serial=cert.serial,
                 when=cert.not_after.isoformat())
        try:
            await renew(self.clock, self.role.config, progress=lambda text: log.info(
                "renewal: {text}", text=text), poll_seconds=self.poll_seconds)
        except (JoinError, PeerError) as e:
            log.error("certificate renewal failed: {error}", error=str(e))
            return
        self.role.use_identity()
        log.info("now using certificate {serial:x}, valid until {when}",
                 serial=self.role.identity.certificate.serial,
                 when=self.role.identity.certificate.not_after.isoformat())
