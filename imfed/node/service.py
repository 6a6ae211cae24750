"""The node role: everything it owns, built once at start, in layers (docs/architecture.md):

    store (Database, NodeStore: the unit of work)  ←  handlers  ←  routes  ←  listeners
    directory, access control, reach, federation client, outbox, group sync

imfed/service.py puts ``services()`` in the service tree."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ..cluster import DIRECTORY, EVENTS, OUTBOX, Leased, StoredNonces, cluster_for
from ..config import Config, ConfigError
from ..crypto import pki, signing, tls
from ..crypto.sm2 import PrivateKey, load_private_key_pem
from ..listening import Listener, http_site, tls_listener
from ..peer import PeerClient
from ..metrics import CERTIFICATE_EXPIRY, DIRECTORY_OK
from ..operations import store_and_certificates
from ..storage import Database, days_left
from ..storage.outage import log_failure
from ..throttle import SendRates
from ..wire.errors import Style
from .store import blobs
from .handlers.access import AccessControl
from .application import build
from .clients.bridge_lookup import BridgeUsers
from .services.bridge_push import BridgePusher
from .directory import Directory
from .services.refresher import Refresher
from .handlers.bridge import BridgeAccess
from .handlers.events import EventsHandler
from .handlers.links import FileLinks, load_key
from .handlers.sessions import Sessions
from .services.housekeeping import Housekeeping, Retention
from .clients.remote import FederationClient
from .services.renewal import IdentityWatch, Renewal
from .routes.client import ClientRoutes, Handlers
from .routes.federation import FederationRoutes
from ..wire.records import ServerStatus
from .xmpp.gateway import Gateway

log = Logger()

__all__ = ["NodeRole"]


class NodeRole:
    kind = "node"

    def __init__(self, config: Config, reactor) -> None:
        n = self.config = config.node
        self.tls_policy = config.tls_policy
        self.clock = reactor
        try:
            self.identity, self.signing_key = _identity(n)
            management_cert = pki.load_pem_certificate(n.management_cert_file)
            # Expired is let through: the renewal check fetches the current one at start.
            pki.verify_issued(management_cert, self.identity.ca, server_id=n.management_id,
                              expired_ok=True)
        except (OSError, ValueError, pki.PKIError) as e:
            raise ConfigError("node.cert_file", "the node has no valid key, certificate, CA or "
                              "management certificate (run `imfed node join`): %s" % e) from None
        self.server_tls = tls.ServerTLS(self.identity, policy=config.tls_policy)

        # The store and what is known of the federation.
        self.db = Database(config.node.database, "node", reactor,
                           config.node.database_connections)
        self.cluster = cluster_for(self.db, reactor)
        self.acl = AccessControl(self.db, reactor)
        self.directory = Directory(db=self.db, server_id=n.server_id, address=n.address,
                                   management_id=n.management_id,
                                   management_url=n.management_url, ca=self.identity.ca,
                                   management_cert=management_cert, clock=reactor)
        self.client = PeerClient(server_id=n.server_id, key=self.signing_key,
                                 identity=self.identity, reactor=reactor,
                                 certificate_of=self.directory.certificate_of,
                                 tls_policy=config.tls_policy)
        self.refresher = Refresher(self.directory, self.client, n.directory_refresh_seconds,
                                   reactor)
        self.verifier = signing.RequestVerifier(server_id=n.server_id, ca=self.identity.ca,
                                                lookup=self._caller_certificate,
                                                clock=reactor)
        if self.cluster.several:
            self.verifier.nonces = StoredNonces(self.db, self.verifier.window_ms)

        # The application layer (application.py): the unit of work, the outbound queue, the
        # group check, the handlers.
        self.file_dir = config.path("node", "files")
        os.makedirs(self.file_dir, exist_ok=True)
        blobs.remove_leftovers(self.file_dir, 3600.0 if self.cluster.several else None)
        app = self.app = build(n, db=self.db, clock=reactor, directory=self.directory,
                               acl=self.acl, remote=FederationClient(self.client),
                               file_dir=self.file_dir, cluster=self.cluster)
        self.hub, self.store, self.reach = app.hub, app.store, app.reach
        self.outbox, self.group_sync = app.outbox, app.group_sync
        self.refresher.listeners.append(self.outbox.wake)
        self.bridge_pusher = None
        if config.bridge is not None and config.bridge.url is not None:
            self.bridge_pusher = BridgePusher(self.store, config.bridge, n.server_id)
            self.hub.listeners.append(self.bridge_pusher.wake)
        self.renewal = Renewal(self, n.renew_check_seconds, n.renew_before_days * 86400.0)
        self.identity_watch = IdentityWatch(self)
        self.housekeeping = Housekeeping(self.db, reactor, n.housekeeping_seconds,
                                         Retention.of(n), n.server_id)

        # The handlers of the interfaces: the application's, and those of the process (logins,
        # event streams, file links, the bridge).  Users of a bridged system are asked of it
        # the first time they are named (handlers/sources.py).
        bridge = None
        if config.bridge is not None:
            bridge = BridgeAccess(self.store, config.bridge.owns, n.server_id,
                                  config.bridge.token)
            if config.bridge.url is not None:
                app.sources.add(BridgeUsers(config.bridge, bridge))
        self.handlers = Handlers(
            sessions=Sessions(self.store, n.server_id, session_seconds=n.session_seconds,
                              max_failures=n.login_max_failures,
                              window_seconds=n.login_window_seconds),
            users=app.users, friends=app.friends, messages=app.messages, files=app.files,
            groups=app.groups, events=EventsHandler(self.store), bridge=bridge,
            links=FileLinks(load_key(config.path("node", "links.key")), reactor))

        self.gateway = None
        if config.xmpp is not None:
            self.gateway = Gateway(config.xmpp, self.handlers, self.store, n.server_id, reactor)
            self.hub.listeners.append(self.gateway.wake)
            app.sources.add(self.gateway.user_source)
        self.gateway_service: Any = self.gateway  # or Leased around it (several processes)
        self._share_work()

        # The interfaces.
        self.api = FederationRoutes(directory=self.directory, refresher=self.refresher,
                                    acl=self.acl, verifier=self.verifier,
                                    signing_key=self.signing_key, users=self.handlers.users,
                                    friends=self.handlers.friends,
                                    messages=self.handlers.messages,
                                    groups=self.handlers.groups, files=self.handlers.files,
                                    max_body=n.max_body)
        self.api.peer_answered = self.outbox.peer_answered
        rates = SendRates(reactor, n.server_id, {
            "send": (n.sends_per_minute, n.sends_per_minute_per_address),
            "upload": (n.uploads_per_minute, n.sends_per_minute_per_address)})
        self.client_api = ClientRoutes(self.handlers, self.directory, max_body=n.max_body,
                                       max_file_bytes=n.max_file_bytes, rates=rates)

    def _share_work(self) -> None:
        """With several processes on one PostgreSQL (cluster.py): periodic work in one of them
        at a time; what another process committed wakes this one's event streams, outbound
        queue and directory."""
        cluster = self.cluster
        if not cluster.several:
            return
        for name, job in (("directory", self.refresher), ("group-sync", self.group_sync),
                          ("bridge", self.bridge_pusher), ("renewal", self.renewal),
                          ("housekeeping", self.housekeeping)):
            if job is not None:
                job.lease = cluster.lease(name)
        if self.gateway is not None:  # one XMPP component connection for the node
            self.gateway_service = Leased(self.gateway, cluster.lease("xmpp"), self.clock)
        cluster.on(EVENTS, lambda users: self.hub.poke(
            users if users is not None else self.hub.waiting()))
        cluster.on(OUTBOX, lambda _: self.outbox.wake())
        cluster.on(DIRECTORY, lambda _: self._directory_changed())

    def _directory_changed(self) -> None:
        d = ensureDeferred(self.directory.reload())
        d.addCallback(lambda _: self.outbox.wake())
        d.addErrback(lambda f: log_failure(log, "reading the directory again failed", f))

    def use_identity(self) -> bool:
        """Take up the key and certificate now in the files (renewed by the daemon or by
        `imfed node renew`) without a restart: new connections both ways present the new
        certificate, requests and answers are signed with the new key.  False when the files
        hold the identity already in use."""
        identity, key = _identity(self.config)
        if _fingerprints(identity) == _fingerprints(self.identity):
            return False
        self.identity, self.signing_key = identity, key
        self.server_tls.use(identity)
        self.client.use(identity, key)
        self.api.signing_key = key
        if self.refresher.running:
            # The management server may have refused the old identity meanwhile: asked
            # again with the new one (and the directory has the new certificate).
            self.refresher.request_refresh()
        return True

    def _standing(self) -> str | None:
        """Why this node cannot federate as the management server sees it, or None."""
        if self.refresher.refused:
            return ("the management server refuses this node's signed calls (%s): is the "
                    "certificate in use the one registered?" % self.refresher.last_error)
        me = self.directory.get(self.server_id)
        if me is not None and me.status != ServerStatus.ACTIVE:
            return "this node is %s in the directory" % me.status.name.lower()
        return None

    async def _caller_certificate(self, server_id: str):
        """Who may call us: the management server always (its notifications are what bring
        the directory up to date); another server while its status 0 is confirmed, else 503
        status_unconfirmed (docs/security.md)."""
        if server_id != self.config.management_id:
            self.reach.confirmed()
        return await self.directory.active_certificate(server_id)

    @property
    def server_id(self) -> str:
        return self.config.server_id

    async def health(self) -> tuple[bool, dict]:
        """(can this node work, what each check found), for /health."""
        ok, checks = await store_and_certificates(
            self.db, self.clock, {"certificateDaysLeft": self.identity.certificate})
        if checks["database"] != "writable":
            return False, checks  # nothing more read from a store that cannot be trusted
        checks["management"] = self.refresher.state()
        standing = self._standing()
        if standing is not None:  # suspended, deregistered, or refused by the management
            checks["federation"] = standing
            ok = False
        unconfirmed = self.reach.unconfirmed()
        if unconfirmed is not None:  # other servers' calls refused, calls to them waiting
            checks["management"]["statusesUnconfirmed"] = unconfirmed
            ok = False
        checks["outboxDepth"] = await self.outbox.depth()
        checks["transport"] = tls.transport_report(self.server_tls, self.client.policy)
        clock_ok, clock = self.client.clock_watch.report(self.client.now_ms())
        if clock is not None:
            checks["clock"] = clock
        ok = ok and clock_ok
        if self.bridge_pusher is not None:
            checks["bridge"] = {"backlog": await self.bridge_pusher.backlog(),
                                "error": self.bridge_pusher.last_error}
        if self.gateway is not None:
            checks["xmpp"] = await self.gateway.health()
        return ok, checks

    async def collect_metrics(self) -> None:
        await self.outbox.report_metrics()
        CERTIFICATE_EXPIRY.labels(self.server_id).set(
            days_left(self.identity.certificate, self.clock) * 86400.0)
        if self.refresher.leading:  # the process that queries the management server says
            DIRECTORY_OK.labels(self.server_id).set(1 if self.refresher.last_ok else 0)
        if self.bridge_pusher is not None:
            await self.bridge_pusher.backlog()
        if self.gateway is not None:
            await self.gateway.health()

    def services(self, nonce_file: str) -> list:
        """The role's services, in start order (stopped in reverse): store, nonces (on
        PostgreSQL: the cluster, whose leases the timers below ask and whose store keeps the
        nonces), federation listener, directory refresh timer, outbound queue, group check
        timer, certificate renewal timer, housekeeping timer, client API listener (and, when
        configured, the bridge's pusher and the XMPP gateway after the outbound queue)."""
        n = self.config
        shared = self.cluster.several  # several processes on one port (docs/scaling.md)
        federation = tls_listener(self.clock, n.listen, self.server_tls, self.api.resource(),
                                  n.limits, Style.INTERCONNECT, lambda method, path: n.max_body,
                                  n.access_log, shared)
        site = http_site(self.client_api.resource(), n.limits, Style.INTERCONNECT,
                         self.client_api.body_limit, n.access_log, self.client_api.gate)
        client = Listener(self.clock, n.client_listen, site, n.limits, shared)
        if shared:  # nonces are in the store, which every process shares
            first = [self.db, self.cluster]
        else:
            first = [self.db, signing.NonceKeeper(self.verifier, nonce_file)]
        pushers = [p for p in (self.bridge_pusher, self.gateway_service) if p is not None]
        return [*first, federation, self.refresher, self.outbox, *pushers, self.group_sync,
                self.renewal, self.identity_watch, self.housekeeping, client]


def _identity(n) -> tuple[tls.TLSIdentity, PrivateKey]:
    """The node's TLS identity and signing key from its files, checked: issued by the CA to
    this serverId, and the key is the certificate's."""
    identity = tls.TLSIdentity.load(n.key_file, n.cert_file, n.ca_file, n.enc_key_file,
                                    n.enc_cert_file)
    pki.verify_issued(identity.certificate, identity.ca, server_id=n.server_id)
    identity.check_pair()
    with open(n.key_file, "rb") as f:
        key = load_private_key_pem(f.read())
    if key.public_key() != identity.certificate.public_key:
        raise pki.PKIError("%s is not the key of %s" % (n.key_file, n.cert_file))
    return identity, key


def _fingerprints(identity: tls.TLSIdentity) -> tuple:
    enc = identity.enc_certificate
    return identity.certificate.fingerprint, enc.fingerprint if enc is not None else None
