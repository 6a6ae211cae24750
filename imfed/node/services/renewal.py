"""Certificate renewal while the node runs (§6.1.2 through docs/protocol.md §4 ``modify``).

Every ``renew_check_seconds`` the node looks at its certificate.  Within ``renew_before_days``
of expiry it applies for a new one (imfed/node/clients/join.py ``renew``: a new key and CSR, signed
with the current identity), waits for the operator's approval, installs the files and takes
them up at once (``NodeRole.use_identity``): no restart, and the window in which peers that
already know the new certificate see the old one is one status poll.  A renewal is resumable:
one that a restart or a stop interrupted goes on with the same application.  The same check
takes up a certificate renewed by hand with `imfed node renew`, and refreshes the pinned copy
of the management server's certificate before it expires."""

from __future__ import annotations

import datetime
import os

from twisted.logger import Logger

from ...crypto import pki
from ...peer import PeerError
from ...timers import Periodic
from ..clients.join import JoinError, renew

__all__ = ["Renewal", "IdentityWatch"]

log = Logger()

# The management server renews its own certificate 30 days before expiry: by 20 the new one
# is there to fetch.
MANAGEMENT_MARGIN = 20 * 86400.0


class Renewal(Periodic):
    def __init__(self, role, seconds: float, before_seconds: float,
                 poll_seconds: float | None = None) -> None:
        super().__init__(role.clock, seconds)
        self.role, self.before_seconds = role, before_seconds
        self.poll_seconds = poll_seconds if poll_seconds is not None else min(seconds, 30.0)

    def follow(self) -> None:
        """Another process of the node renews: take up what it installed."""
        if self.role.use_identity():
            log.info("now using certificate {serial:x} (renewed by another process)",
                     serial=self.role.identity.certificate.serial)

    async def tick(self) -> None:
        await self._management_certificate()
        if self.role.use_identity():
            log.info("now using certificate {serial:x} (renewed outside the daemon)",
                     serial=self.role.identity.certificate.serial)
        cert = self.role.identity.certificate
        left = (cert.not_after - self._now()).total_seconds()
        if left > self.before_seconds:
            if not self.role.identity.tlcp and self.role.config.enc_key_file:
                await self._encryption_certificate()
            return
        lifetime = (cert.not_after - cert.not_before).total_seconds()
        if lifetime <= self.before_seconds:
            log.warn("certificate {serial:x} is valid for {days:.0f} days in all, no more than "
                     "renew_before_days ({before:.0f}): each certificate is renewed as soon as "
                     "it is installed. Approve longer ones (imfed admin approve --days) or "
                     "lower renew_before_days.", serial=cert.serial, days=lifetime / 86400,
                     before=self.before_seconds / 86400)
        log.warn("certificate {serial:x} expires {when}: renewing", serial=cert.serial,
                 when=cert.not_after.isoformat())
        try:
            await renew(self.clock, self.role.config, progress=lambda text: log.info(
                "renewal: {text}", text=text), poll_seconds=self.poll_seconds,
                tls_policy=self.role.tls_policy)
        except (JoinError, PeerError) as e:
            log.error("certificate renewal failed: {error}", error=str(e))
            return
        self.role.use_identity()
        log.info("now using certificate {serial:x}, valid until {when}",
                 serial=self.role.identity.certificate.serial,
                 when=self.role.identity.certificate.not_after.isoformat())

    async def _encryption_certificate(self) -> None:
        """A node from before TLCP (no encryption certificate) asks for one through modify,
        keeping its signing key; until it is approved the node speaks TLS 1.3 alone."""
        log.info("this node has no encryption certificate (TLCP): asking the management "
                 "server for one")
        try:
            await renew(self.clock, self.role.config, progress=lambda text: log.info(
                "encryption certificate: {text}", text=text), poll_seconds=self.poll_seconds,
                sign=False, tls_policy=self.role.tls_policy)
        except (JoinError, PeerError) as e:
            log.error("obtaining an encryption certificate failed: {error}", error=str(e))
            return
        if self.role.use_identity():
            log.info("now speaking TLCP too: encryption certificate {serial:x}",
                     serial=self.role.identity.enc_certificate.serial)

    async def _management_certificate(self) -> None:
        """The pinned copy of the management server's certificate, refreshed within 20 days
        of its expiry."""
        directory = self.role.directory
        left = (directory.management_cert.not_after - self._now()).total_seconds()
        if left > MANAGEMENT_MARGIN:
            return
        old = directory.management_cert
        try:
            cert = await self.role.refresher.fetch_management_certificate()
        except PeerError as e:
            log.warn("the management server's certificate expires {when} and could not be "
                     "refreshed: {error}", when=directory.management_cert.not_after.isoformat(),
                     error=str(e))
            return
        if cert.fingerprint == old.fingerprint:
            return
        pki.write_file(self.role.config.management_cert_file, cert.pem)
        log.info("management server's certificate refreshed: valid until {when}",
                 when=cert.not_after.isoformat())

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)


class IdentityWatch(Periodic):
    """The key and certificate files, looked at every ``seconds`` (a stat each): a renewal
    installed by `imfed node renew` or by another process of the node is taken up within
    seconds of its approval, not at the next renewal check (an hour by default), during which
    peers would refuse the old identity the directory no longer has."""

    def __init__(self, role, seconds: float = 5.0) -> None:
        super().__init__(role.clock, seconds)
        self.role = role
        self.seen = self._stamp()

    def _stamp(self) -> tuple:
        n = self.role.config
        out = []
        for path in (n.key_file, n.cert_file, n.enc_key_file, n.enc_cert_file):
            try:
                st = os.stat(path) if path else None
            except FileNotFoundError:
                st = None
            out.append((st.st_mtime_ns, st.st_size) if st is not None else None)
        return tuple(out)

    def tick(self) -> None:
        stamp = self._stamp()
        if stamp == self.seen:
            return
        try:
            changed = self.role.use_identity()
        except (OSError, ValueError, pki.PKIError) as e:
            # Caught between the key and its certificate being replaced: looked at again.
            log.info("identity files changing ({error}); looking again shortly", error=str(e))
            return
        self.seen = stamp
        if changed:
            log.info("now using certificate {serial:x} (installed outside this process)",
                     serial=self.role.identity.certificate.serial)
