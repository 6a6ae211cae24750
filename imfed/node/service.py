"""The node role: everything it owns, built once at start (imfed/service.py puts it in the
service tree)."""

from __future__ import annotations

import os

from ..config import Config, ConfigError
from ..crypto import pki, signing, tls
from ..crypto.sm2 import load_private_key_pem
from ..peer import PeerClient
from ..storage import Database, run_sync
from ..web import limited_request
from .acl import AccessControl
from .client_api import ClientApi
from .directory import Directory, Peer, Refresher, _load
from .events import EventHub
from .federation import FederationApi
from .groupsync import GroupSync
from .outbox import Outbox

__all__ = ["NodeRole"]


class NodeRole:
    def __init__(self, config: Config, reactor) -> None:
        n = self.config = config.node
        self.clock = reactor
        try:
            self.identity = tls.TLSIdentity.load(n.key_file, n.cert_file, n.ca_file)
            management_cert = pki.load_pem_certificate(n.management_cert_file)
            pki.verify_issued(management_cert, self.identity.ca, server_id=n.management_id)
            pki.verify_issued(self.identity.certificate, self.identity.ca,
                              server_id=n.server_id)
        except (OSError, pki.PKIError) as e:
            raise ConfigError("node.cert_file", "the node has no valid key, certificate, CA or "
                              "management certificate (run `imfed node join`): %s" % e) from None
        with open(n.key_file, "rb") as f:
            self.signing_key = load_private_key_pem(f.read())
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
        self.api = FederationApi(server_id=n.server_id, signing_key=self.signing_key,
                                 verifier=self.verifier, db=self.db, directory=self.directory,
                                 acl=self.acl, hub=self.hub, outbox=self.outbox,
                                 client=self.client, clock=reactor, max_body=n.max_body,
                                 file_dir=self.file_dir, max_file_bytes=n.max_file_bytes)
        self.client_api = ClientApi(role=self)

    def _load_directory(self) -> None:
        # Synchronously, before any listener opens: a restarted node knows its peers at once.
        rows, self.directory.last_query_time = run_sync(self.db.path, _load)
        for server_id, name, address, status, cert_pem in rows:
            cert = pki.Certificate.from_pem(cert_pem) if cert_pem else None
            self.directory.peers[server_id] = Peer(server_id, name, address, status, cert)

    def services(self):
        """The role's services after its store: directory refresh timer, outbound queue,
        group check timer, client API listener (the federation listener is added by make_service)."""
        refresh = Refresher(self.directory, self.config.directory_refresh_seconds, self.clock)
        from ..service import Listener, http_site

        site = http_site(self.client_api.resource(),
                         limited_request(max(self.config.max_file_bytes, self.config.max_body)))
        client = Listener(self.clock, self.config.client_listen, site)
        return [refresh, self.outbox, self.group_sync, client]
