"""makeService: the whole service tree, in one place.

Stores first, then the roles' listeners (TLS → Klein site), so that MultiService stops the
listeners before the stores close.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.server import Site

from .config import Config, Listen
from .crypto import tls
from .web import JsonRequest

__all__ = ["make_service", "tls_listener", "InOrder", "Listener", "http_site"]

log = Logger()


class InOrder(MultiService):
    """A MultiService that stops its children one at a time, last first, each only after the
    one added after it has finished stopping: a store closes only once every listener, timer
    and queue that writes to it is done (plain MultiService stops them all at once, and an
    interaction caught between a closed pool and a stopping timer never finishes)."""

    def stopService(self):
        Service.stopService(self)
        return ensureDeferred(self._stop_each())

    async def _stop_each(self) -> None:
        for service in reversed(list(self)):
            if service.running:
                try:
                    await maybeDeferred(service.stopService)
                except Exception:
                    log.failure("stopping {service} failed", service=service)


class _NoDelayFactory(WrappingFactory):
    """Tracks accepted connections and turns off Nagle's algorithm on them: an answer's
    headers and body go out as separate TLS records, and Nagle would hold the second back
    until the peer acknowledged the first (which delayed ACKs postpone)."""

    def registerProtocol(self, p) -> None:
        super().registerProtocol(p)
        setter = getattr(p.transport, "setTcpNoDelay", None)
        if setter is not None:
            setter(True)


class Listener(StreamServerEndpointService):
    """A listening port that, when stopped, also closes the connections it accepted (a
    stopped role must not keep answering, or hanging, on connections from before).  A port
    that cannot be bound stops the start with one line naming it (Twisted would log it and
    run on without the port: a daemon that systemd thinks healthy and nobody can reach)."""

    _raiseSynchronously = True

    def __init__(self, reactor, listen: Listen, factory) -> None:
        endpoint_type = TCP6ServerEndpoint if ":" in listen.host else TCP4ServerEndpoint
        self.listen = listen
        self.tracked = _NoDelayFactory(factory)
        super().__init__(endpoint_type(reactor, listen.port, interface=listen.host),
                         self.tracked)

    def privilegedStartService(self) -> None:  # twistd binds here, before startService
        try:
            super().privilegedStartService()
        except CannotListenError as e:
            self._cannot_listen(e)

    def startService(self) -> None:
        try:
            super().startService()
        except CannotListenError as e:
            self._cannot_listen(e)

    def _cannot_listen(self, e: CannotListenError):
        reason = getattr(e.socketError, "strerror", None) or e.socketError
        raise SystemExit("imfed: cannot listen on %s:%d: %s"
                         % (self.listen.host, self.listen.port, reason))

    def stopService(self):
        d = super().stopService()
        for protocol in list(self.tracked.protocols):
            protocol.transport.abortConnection()
        return d


class _QuietSite(Site):
    def log(self, request) -> None:
        pass


def http_site(resource, request_factory=JsonRequest, access_log: bool = True) -> Site:
    """A Site for a Klein resource; ``access_log`` False leaves requests out of the daemon's
    log (one line per request costs a busy node about a tenth of its reactor time)."""
    site = (Site if access_log else _QuietSite)(resource, requestFactory=request_factory)
    site.displayTracebacks = False
    return site


def tls_listener(reactor, listen: Listen, server_tls: tls.ServerTLS, resource,
                 access_log: bool = True) -> Listener:
    """A mutual-TLS HTTPS listener service for a Klein resource."""
    factory = TLSMemoryBIOFactory(server_tls, False,
                                  http_site(resource, access_log=access_log))
    return Listener(reactor, listen, factory)


def make_service(config: Config, reactor) -> MultiService:
    top = InOrder()
    if config.management is not None:
        from .management.service import ManagementRole, OwnCertificateCheck

        role = ManagementRole(config, reactor)
        role.db.setServiceParent(top)
        listener = tls_listener(reactor, config.management.listen, role.server_tls,
                                role.api.resource(), config.management.access_log)
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
