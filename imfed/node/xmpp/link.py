"""The gateway's stream to the XMPP server: an external component (XEP-0114) that connects,
authenticates with the shared secret, and connects again by itself whenever the stream ends
(the XMPP server restarted, the network went away), waiting at most
``reconnect_max_seconds`` between tries.  The wait grows (×e, from half a second) until a
stream is authenticated, not merely connected: a server that refuses the secret is not asked
twice a second, and its refusal is logged once, then at most every ``REFUSAL_LOG_SECONDS``
with the count since."""

from __future__ import annotations

import re
from typing import Callable

from twisted.application.internet import TCPClient
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.words.protocols.jabber import component, error, xmlstream
from twisted.words.xish import domish
from twisted.words.xish import xmlstream as xish

from ...config import XmppConfig

__all__ = ["ComponentLink", "Offline", "NS_PING", "xml_safe"]

log = Logger()

NS_PING = "urn:xmpp:ping"


_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """``text`` with every character XML 1.0 does not allow replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


class Offline(Exception):
    """No stream to the XMPP server now."""


REFUSAL_LOG_SECONDS = 300.0


class _ComponentFactory(xmlstream.XmlStreamFactory):
    """Twisted's component factory, but the backoff is reset once the stream is
    authenticated (ComponentLink), not when TCP connects: a refused handshake waits longer
    each time."""

    attempts = 0

    def buildProtocol(self, addr):
        self.attempts += 1
        return xish.XmlStreamFactoryMixin.buildProtocol(self, addr)


class ComponentLink(MultiService):
    def __init__(self, config: XmppConfig, clock, on_stanza: Callable[[domish.Element], None],
                 on_online: Callable[[], None], on_offline: Callable[[], None]) -> None:
        super().__init__()
        self.config, self.clock = config, clock
        self.on_stanza, self.on_online, self.on_offline = on_stanza, on_online, on_offline
        self.xs: xmlstream.XmlStream | None = None
        self.connections = 0
        self.last_error = ""
        self.factory = _ComponentFactory(component.ConnectComponentAuthenticator(
            config.component, config.secret))
        self.refusals = 0
        self._refusal_logged: float | None = None
        self.factory.maxDelay = config.reconnect_max_seconds  # type: ignore[assignment]
        self.factory.initialDelay = min(0.5, config.reconnect_max_seconds)
        self.factory.clock = clock
        self.factory.noisy = False
        self.factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        self.factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._ended)
        self.factory.addBootstrap(xmlstream.STREAM_ERROR_EVENT, self._stream_error)
        self.factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self._init_failed)
        TCPClient(config.connect.host, config.connect.port, self.factory,
                  reactor=clock).setServiceParent(self)

    @property
    def online(self) -> bool:
        return self.xs is not None

    def _authenticated(self, xs) -> None:
        xmlstream.upgradeWithIQResponseTracker(xs)
        xs._callLater = self.clock.callLater
        for name in ("message", "presence", "iq"):
            xs.addObserver("/" + name, self._received)
        self.xs = xs
        self.connections += 1
        self.last_error = ""
        self.factory.resetDelay()
        self.refusals, self._refusal_logged = 0, None
        log.info("XMPP gateway: connected to {host}:{port} as {component}",
                 host=self.config.connect.host, port=self.config.connect.port,
                 component=self.config.component)
        self.on_online()

    def _received(self, element) -> None:
        if element.handled:
            return  # an answer to an iq of ours, taken by the response tracker
        self.on_stanza(element)

    def _ended(self, _) -> None:
        if self.xs is not None:
            log.info("XMPP gateway: the stream to {host}:{port} ended; connecting again",
                     host=self.config.connect.host, port=self.config.connect.port)
        self.xs = None
        self.on_offline()

    def _stream_error(self, failure) -> None:
        self.last_error = str(failure.value)
        if self.xs is None and isinstance(failure.value, error.StreamError) and \
                failure.value.condition in ("not-authorized", "host-unknown"):
            return self._refused()
        log.warn("XMPP gateway: stream error from the XMPP server: {error}",
                 error=self.last_error)

    def _init_failed(self, failure) -> None:
        self.last_error = str(failure.value)
        self._refused()

    def _refused(self) -> None:
        """The handshake refused (a wrong secret or component name): said once, then at most
        every REFUSAL_LOG_SECONDS with how many times since."""
        self.refusals += 1
        now = self.clock.seconds()
        if self._refusal_logged is not None and now - self._refusal_logged < \
                REFUSAL_LOG_SECONDS:
            return
        self._refusal_logged = now
        log.warn("XMPP gateway: the XMPP server refused the component {component} ({error}; "
                 "{n} time(s)); check [xmpp] component and secret against its config; trying "
                 "again, at most every {wait:.0f} s", component=self.config.component,
                 error=self.last_error, n=self.refusals, wait=self.config.reconnect_max_seconds)

    def send(self, element: domish.Element) -> None:
        """Write ``element`` into the stream, every character XML 1.0 forbids (NUL and the
        other C0 controls but tab and newlines, lone surrogates, U+FFFE, U+FFFF) replaced by
        U+FFFD: one such character in a text from anywhere in the federation would otherwise
        make the XMPP server close the stream (not-well-formed), and the same event would
        close it again at every reconnection."""
        if self.xs is None:
            raise Offline("no stream to the XMPP server")
        if not element.getAttribute("from"):
            element["from"] = self.config.component
        self.xs.send(xml_safe(element.toXml()))

    def barrier(self, timeout: float = 10.0) -> Deferred:
        """Fires when the XMPP server has taken every stanza sent before it: a ping to the
        server, answered on the same stream after them."""
        if self.xs is None:
            return fail(Offline("no stream to the XMPP server"))
        iq = xmlstream.IQ(self.xs, "get")
        iq["from"] = self.config.component
        iq.addElement((NS_PING, "ping"))
        iq.timeout = timeout  # type: ignore[assignment]  # words' IQ.timeout: None or seconds
        return iq.send(self.config.domain)

    def stopService(self):
        self.factory.stopTrying()
        if self.xs is not None and self.xs.transport is not None:
            self.xs.transport.loseConnection()
        return super().stopService()
