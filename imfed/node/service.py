"""The node role: everything it owns, built once at start (imfed/service.py puts it in the
service tree)."""

from __future__ import annotations

import os

from ..config import Config, ConfigError
from ..crypto import pki, signing, tls
from ..crypto.sm2 import load_private_key_pem
from ..peer import PeerClient
from ..storage import Database, run_sync
from ..listening import Listener, http_site, tls_listener
from ..wire.errors import Style
from . import files
from .acl import AccessControl
from .client_api import ClientApi
from .directory import Directory, Peer, Refresher, _load
from .events import EventHub
from .federation import FederationApi
from .groupsync import GroupSync
from .housekeeping import Housekeeping
from .outbox import Outbox
from .renewal import Renewal

__all__ = ["NodeRole"]


class NodeRole:
    def __init__(self, config: Config, reactor) -> None:
        n = self.config = config.node
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
        self.server_tls = tls.ServerTLS(self.identity)
        self.db = Database(config.path("node.sqlite3"), "node", reactor)
        self.hub = EventHub()
        self.acl = AccessControl(self.db, reactor)
        self.directory = Directory(db=self.db, server_id=n.server_id, address=n.address,
                                   management_id=n.management_id,
                                   management_url=n.management_url, ca=self.identity.ca,
                                   management_cert=management_cert, clock=reactor)
        self._load_directory()
        self.client = PeerClient(server_id=n.server_id, key=self.signing_key,
                                 identity=self.identity, reactor=reactor,
                                 certificate_of=self.directory.certificate_of)
        self.directory.client = self.client
        self.verifier = signing.RequestVerifier(server_id=n.server_id, ca=self.identity.ca,
                                                lookup=self.directory.active_certificate,
                                                clock=reactor)
        self.outbox = Outbox(db=self.db, client=self.client, directory=self.directory,
                             acl=self.acl, hub=self.hub, clock=reactor,
                             initial_seconds=n.outbox_retry_initial_seconds,
                             max_seconds=n.outbox_retry_max_seconds,
                             give_up_seconds=n.outbox_give_up_seconds)
        self.directory.listeners.append(self.outbox.wake)
        self.group_sync = GroupSync(db=self.db, client=self.client, directory=self.directory,
                                    acl=self.acl, hub=self.hub, clock=reactor,
                                    seconds=n.group_sync_seconds)
        self.file_dir = config.path("node", "files")
        os.makedirs(self.file_dir, exist_ok=True)
        files.remove_leftovers(self.file_dir)
        self.api = FederationApi(server_id=n.server_id, signing_key=self.signing_key,
                                 verifier=self.verifier, db=self.db, directory=self.directory,
                                 acl=self.acl, hub=self.hub, outbox=self.outbox,
                                 client=self.client, clock=reactor, max_body=n.max_body,
                                 file_dir=self.file_dir, max_file_bytes=n.max_file_bytes,
                                 recall_limit_ms=int((n.recall_window_seconds +
                                                      n.recall_grace_seconds) * 1000))
        self.client_api = ClientApi(role=self)

    def use_identity(self) -> bool:
        """Take up the key and certificate now in the files (renewed by the daemon or by
        `imfed node renew`) without a restart: new connections both ways present the new
        certificate, requests and answers are signed with the new key.  False when the files
        hold the identity already in use."""
        identity, key = _identity(self.config)
        if identity.certificate.fingerprint == self.identity.certificate.fingerprint:
            return False
        self.identity, self.signing_key = identity, key
        self.server_tls.use(identity)
        self.client.use(identity, key)
        self.api.signing_key = key
        return True

    def _load_directory(self) -> None:
        # Synchronously, before any listener opens: a restarted node knows its peers at once.
        rows, self.directory.last_query_time = run_sync(self.db.path, _load)
        for server_id, name, address, status, cert_pem in rows:
            cert = pki.Certificate.from_pem(cert_pem) if cert_pem else None
            self.directory.peers[server_id] = Peer(server_id, name, address, status, cert)

    def services(self):
        """The role's services after its store: federation listener, directory refresh
        timer, outbound queue, group check timer, certificate renewal timer, housekeeping
        timer, client API listener."""
        n = self.config
        federation = tls_listener(self.clock, n.listen, self.server_tls, self.api.resource(),
                                  n.limits, Style.INTERCONNECT, lambda method, path: n.max_body,
                                  n.access_log)
        refresh = Refresher(self.directory, n.directory_refresh_seconds, self.clock)
        site = http_site(self.client_api.resource(), n.limits, Style.INTERCONNECT,
                         self.client_api.body_limit, n.access_log)
        client = Listener(self.clock, n.client_listen, site, n.limits)
        renewal = Renewal(self, self.config.renew_check_seconds,
                          self.config.renew_before_days * 86400.0)
        self.housekeeping = Housekeeping(self.db, self.clock, self.config.housekeeping_seconds,
                                         self.config.event_retention_days * 86400.0)
        return [federation, refresh, self.outbox, self.group_sync, renewal, self.housekeeping,
                client]


def _identity(n) -> tuple[tls.TLSIdentity, "object"]:
    """The node's TLS identity and signing key from its files, checked: issued by the CA to
    this serverId, and the key is the certificate's."""
    identity = tls.TLSIdentity.load(n.key_file, n.cert_file, n.ca_file)
    pki.verify_issued(identity.certificate, identity.ca, server_id=n.server_id)
    with open(n.key_file, "rb") as f:
        key = load_private_key_pem(f.read())
    if key.public_key() != identity.certificate.public_key:
        raise pki.PKIError("%s is not the key of %s" % (n.key_file, n.cert_file))
    return identity, key
