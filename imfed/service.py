"""makeService: the whole service tree, in one place.

Stores first, then the roles' listeners (TLS → Klein site), so that MultiService stops the
listeners before the stores close.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger

from .config import Config
from .listening import InOrder, raise_file_limit, tls_listener
from .wire.errors import Style

__all__ = ["make_service"]

log = Logger()


def make_service(config: Config, reactor) -> MultiService:
    top = InOrder()
    raise_file_limit()
    if config.management is not None:
        from .management.service import ManagementRole, OwnCertificateCheck

        role = ManagementRole(config, reactor)
        role.db.setServiceParent(top)
        m = config.management
        listener = tls_listener(reactor, m.listen, role.server_tls, role.api.resource(),
                                m.limits, Style.MANAGEMENT, lambda method, path: m.max_body,
                                m.access_log)
        listener.setServiceParent(top)
        role.notifier.setServiceParent(top)
        OwnCertificateCheck(role).setServiceParent(top)
        top.management = role
        log.info("management role {id} on https://{listen} (CA {fp})", id=role.config.server_id,
                 listen=config.management.listen, fp=role.ca.cert.fingerprint)
    if config.dev_nodes:
        from .devdefault import DevFederation

        dev = DevFederation(config, top.management, reactor)
        dev.setServiceParent(top)
        top.dev = dev
    if config.node is not None:
        from .node.service import NodeRole

        node = NodeRole(config, reactor)
        node.db.setServiceParent(top)
        for service in node.services():
            service.setServiceParent(top)
        top.node = node
        log.info("node role {id} on https://{listen}", id=config.node.server_id,
                 listen=config.node.listen)
    return top
