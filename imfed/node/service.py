"""The node role's part of the service tree.

So far: its mutual-TLS listener with the certificate the operator installed (``imfed pki``), its
store and an empty interconnection interface; the directory client, access control and the
§6.2/§6.4 endpoints come with the node issue.
"""

from __future__ import annotations

from klein import Klein

from ..config import Config, ConfigError
from ..crypto import signing, tls
from ..crypto.pki import PKIError
from ..crypto.sm2 import load_private_key_pem
from ..storage import Database
from ..web import Endpoints, install_errors

__all__ = ["NodeRole", "NodeApi"]


class NodeApi(Endpoints):
    app = Klein()
    install_errors(app)

    def __init__(self, *, server_id: str, signing_key, verifier) -> None:
        self.server_id, self.signing_key, self.verifier = server_id, signing_key, verifier


class NodeRole:
    def __init__(self, config: Config, reactor) -> None:
        n = config.node
        self.config = n
        try:
            self.identity = tls.TLSIdentity.load(n.key_file, n.cert_file, n.ca_file)
        except (OSError, PKIError) as e:
            raise ConfigError("node.cert_file", "cannot load the node's key, certificate or CA: "
                              "%s" % e) from None
        if self.identity.server_id != n.server_id:
            raise ConfigError("node.cert_file", "certificate names %r, not node.server_id %r"
                              % (self.identity.server_id, n.server_id))
        with open(n.key_file, "rb") as f:
            self.signing_key = load_private_key_pem(f.read())
        self.db = Database(config.path("node.sqlite3"), "node", reactor)
        self.verifier = signing.RequestVerifier(server_id=n.server_id, ca=self.identity.ca,
                                                lookup=self.active_certificate, clock=reactor)
        self.api = NodeApi(server_id=n.server_id, signing_key=self.signing_key,
                           verifier=self.verifier)

    async def active_certificate(self, server_id: str):
        # No directory client yet: no peer is known to be active, so every signed call is 401.
        return None
