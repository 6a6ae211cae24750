"""The management role's part of the service tree."""

from __future__ import annotations

import datetime
import os

from twisted.logger import Logger

from ..cluster import StoredNonces, cluster_for
from ..config import Config, https_address
from ..crypto import pki, signing, tls
from ..crypto.sm2 import generate_private_key, load_private_key_pem
from ..listening import tls_listener
from ..peer import PeerClient
from ..metrics import APPLICATIONS, CERTIFICATE_EXPIRY, NOTIFY_DEPTH
from ..operations import store_and_certificates
from ..storage import Database, days_left
from ..throttle import Throttle
from ..timers import Periodic
from ..wire.errors import Style
from ..wire.records import ServerStatus
from .notifier import Notifier
from .review import Registrations
from .routes import ManagementApi
from . import store
from .store import RegistryStore

log = Logger()

__all__ = ["ManagementRole", "prepare_identity", "OwnCertificateCheck"]


def prepare_identity(config: Config) -> tuple[pki.CertificateAuthority, tls.TLSIdentity]:
    """The CA (created on first start) and the management server's own certificates from it,
    signing and TLCP's encryption one (CN = its serverId, subjectAltName = the host of its
    address), each renewed when missing, for another host, or within 30 days of expiry."""
    m = config.management
    folder = config.path("management")
    ca = pki.CertificateAuthority.open(os.path.join(folder, "ca"), m.ca_common_name,
                                       m.ca_validity_days)
    host, _ = https_address(m.address)
    files = {}
    for kind, name in ((pki.SIGN, "server"), (pki.ENC, "server-enc")):
        key_file = os.path.join(folder, name + ".key")
        cert_file = os.path.join(folder, name + ".pem")
        if os.path.exists(key_file):
            with open(key_file, "rb") as f:
                key = load_private_key_pem(f.read())
        else:
            key = generate_private_key()
            pki.write_file(key_file, key.to_pem(), private=True)
        if not _current(cert_file, ca.cert, m.server_id, host, key, kind):
            cert = ca.issue(pki.make_csr(key, m.server_id), m.server_id, host,
                            m.cert_validity_days, kind=kind)
            pki.write_file(cert_file, cert.pem)
        files[kind] = (key_file, cert_file)
    (key_file, cert_file), (enc_key, enc_cert) = files[pki.SIGN], files[pki.ENC]
    return ca, tls.TLSIdentity.load(key_file, cert_file, os.path.join(folder, "ca", "ca.pem"),
                                    enc_key, enc_cert)


def _current(cert_file, ca, server_id, host, key, kind) -> bool:
    if not os.path.exists(cert_file):
        return False
    try:
        cert = pki.load_pem_certificate(cert_file)
        soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
        pki.verify_issued(cert, ca, server_id=server_id, kind=kind)
        return host in cert.san and cert.public_key == key.public_key() and cert.valid_at(soon)
    except (pki.PKIError, OSError):
        return False


class ManagementRole:
    """Everything the management role owns, built once at start."""

    kind = "management"

    def __init__(self, config: Config, reactor) -> None:
        m = config.management
        self.config = m
        self.full_config, self.clock = config, reactor
        self.ca, self.identity = prepare_identity(config)
        self.server_tls = tls.ServerTLS(self.identity, require_client_cert=False,
                                        policy=config.tls_policy)
        with open(self.identity.key_file, "rb") as f:
            self.signing_key = load_private_key_pem(f.read())
        self.db = Database(m.database, "management", reactor)
        self.cluster = cluster_for(self.db, reactor)
        self.store = RegistryStore(self.db, reactor)
        self.verifier = signing.RequestVerifier(
            server_id=m.server_id, ca=self.ca.cert, lookup=self.active_certificate, clock=reactor)
        if self.cluster.several:
            self.verifier.nonces = StoredNonces(self.db, self.verifier.window_ms)
        self.client = PeerClient(server_id=m.server_id, key=self.signing_key,
                                 identity=self.identity, reactor=reactor,
                                 certificate_of=self.any_certificate,
                                 tls_policy=config.tls_policy)
        self.notifier = Notifier(self.store, self.client, reactor,
                                 poll_seconds=m.notify_poll_seconds,
                                 initial_seconds=m.notify_retry_initial_seconds,
                                 max_seconds=m.notify_retry_max_seconds)
        self.api = ManagementApi(registrations=Registrations(self.store), ca=self.ca.cert,
                                 own_cert=self.identity.certificate, server_id=m.server_id,
                                 signing_key=self.signing_key, verifier=self.verifier,
                                 max_body=m.max_body,
                                 apply_throttle=Throttle(reactor, m.apply_per_source_per_hour,
                                                         3600.0),
                                 max_pending=m.max_pending_applications)
        self.api.own_enc_cert = self.identity.enc_certificate

    @property
    def server_id(self) -> str:
        return self.config.server_id

    async def health(self) -> tuple[bool, dict]:
        """(can this management server work, what each check found), for /health."""
        ok, checks = await store_and_certificates(self.db, self.clock, {
            "certificateDaysLeft": self.identity.certificate, "caDaysLeft": self.ca.cert})
        if checks["database"] != "writable":
            return False, checks  # nothing more read from a store that cannot be trusted
        checks["pendingApplications"] = await self.db.runInteraction(store.pending_count)
        checks["transport"] = tls.transport_report(self.server_tls, self.client.policy)
        clock_ok, clock = self.client.clock_watch.report(self.client.now_ms())
        if clock is not None:
            checks["clock"] = clock
        return ok and clock_ok, checks

    async def collect_metrics(self) -> None:
        by_state, by_node = await self.db.runInteraction(store.queue_figures)
        for state in ("pending", "approved", "rejected"):
            APPLICATIONS.labels(self.server_id, state).set(by_state.get(state, 0))
        NOTIFY_DEPTH.clear()
        for node, n in by_node.items():
            NOTIFY_DEPTH.labels(self.server_id, node).set(n)
        CERTIFICATE_EXPIRY.labels(self.server_id).set(
            days_left(self.identity.certificate, self.clock) * 86400.0)

    def services(self, nonce_file: str) -> list:
        """The role's services, in start order (stopped in reverse): store, nonces,
        listener, notification queue, own-certificate check."""
        m = self.config
        shared = self.cluster.several  # several processes on one PostgreSQL and one port
        listener = tls_listener(self.clock, m.listen, self.server_tls, self.api.resource(),
                                m.limits, Style.MANAGEMENT, lambda method, path: m.max_body,
                                m.access_log, shared)
        own = OwnCertificateCheck(self)
        if not shared:
            return [self.db, signing.NonceKeeper(self.verifier, nonce_file), listener,
                    self.notifier, own]
        self.notifier.lease = self.cluster.lease("notifier")
        own.lease = self.cluster.lease("own-certificate")
        return [self.db, self.cluster, listener, self.notifier, own]

    def renew_own_certificate(self) -> bool:
        """Reissue this server's own certificate (same key) when it is missing, for another
        host or within 30 days of expiry, and present it from the next connection on; nodes
        fetch it with getservercert.  True when it changed."""
        _, identity = prepare_identity(self.full_config)
        if (identity.certificate.fingerprint, _fingerprint(identity.enc_certificate)) == \
                (self.identity.certificate.fingerprint,
                 _fingerprint(self.identity.enc_certificate)):
            return False
        self.identity = identity
        self.server_tls.use(identity)
        self.client.use(identity, self.signing_key)
        self.api.own_cert = identity.certificate
        self.api.own_enc_cert = identity.enc_certificate
        return True

    async def any_certificate(self, server_id: str) -> pki.Certificate | None:
        """The certificate a server answers with, whatever its status."""
        record = await self.store.get(server_id)
        return pki.Certificate.from_pem(record.cert_pem) if record is not None else None

    async def active_certificate(self, server_id: str) -> pki.Certificate | None:
        record = await self.store.get(server_id)
        if record is None or record.status != ServerStatus.ACTIVE:
            return None
        return pki.Certificate.from_pem(record.cert_pem)


def _fingerprint(cert: pki.Certificate | None) -> str | None:
    return cert.fingerprint if cert is not None else None


class OwnCertificateCheck(Periodic):
    """The management server's own certificate, checked every ``seconds`` (it is also checked
    at start): a daemon that runs for years never presents an expired one."""

    def __init__(self, role: ManagementRole, seconds: float = 3600.0) -> None:
        super().__init__(role.clock, seconds)
        self.role = role

    def tick(self) -> None:
        if self.role.renew_own_certificate():
            log.info("management certificate renewed: {serial:x}, valid until {when}",
                     serial=self.role.identity.certificate.serial,
                     when=self.role.identity.certificate.not_after.isoformat())
