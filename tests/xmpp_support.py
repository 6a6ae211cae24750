"""Real XMPP servers for the XMPP gateway's tests, each started from a config written to a
temporary folder, on loopback ports picked free: Debian's Prosody and Debian's ejabberd (whose
config is docs/bridge.md's excerpt); and a small XMPP client built on Twisted Words that logs
in to either as an ordinary user would."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.words.protocols.jabber import client, xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.xish import domish

from conftest import free_port

DOMAIN = "localhost"
COMPONENT = "imfed.localhost"
UPLOAD = "upload.localhost"
SECRET = "component-secret-0123456789"

CONFIG = """\
-- written by tests/xmpp_support.py
run_as_root = true
daemonize = false
pidfile = "{folder}/prosody.pid"
data_path = "{folder}/data"
log = {{ debug = "{folder}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ }}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}
http_ports = {{ {http} }}
http_interfaces = {{ "127.0.0.1" }}
https_ports = {{ }}
http_external_url = "http://127.0.0.1:{http}/"
http_default_host = "{upload}"
c2s_require_encryption = false
-- Clients may send stanzas larger than what Prosody takes from a component (512 KiB): what
-- the gateway answers such a stanza must not be larger than that (issue #27, 1).
c2s_stanza_size_limit = 1048576
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "disco", "offline", "ping", "presence", "message",
                    "iq" }}
modules_disabled = {{ "s2s" }}

VirtualHost "{domain}"

Component "{component_domain}"
  component_secret = "{secret}"

Component "{upload}" "http_file_share"
  http_file_share_size_limit = 10485760
"""


class Prosody:
    """A Prosody of its own in ``folder``."""

    name = "prosody"

    def __init__(self, folder: str) -> None:
        if shutil.which("prosody") is None or shutil.which("prosodyctl") is None:
            pytest.fail("prosody is not installed (apt-get install prosody; .ci/run does)")
        self.folder = folder
        os.makedirs(os.path.join(folder, "data"), exist_ok=True)
        self.c2s, self.component, self.http = free_port(), free_port(), free_port()
        self.config = os.path.join(folder, "prosody.cfg.lua")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(folder=folder, c2s=self.c2s, component=self.component,
                                  http=self.http, domain=DOMAIN, component_domain=COMPONENT,
                                  secret=SECRET, upload=UPLOAD))
        self.process: subprocess.Popen | None = None

    @property
    def upload_prefix(self) -> str:
        return "http://127.0.0.1:%d/file_share/" % self.http

    def register(self, user: str, password: str) -> None:
        subprocess.run(["prosodyctl", "--config", self.config, "register", user, DOMAIN,
                        password], check=True, capture_output=True, timeout=30)

    async def start(self) -> None:
        self.process = subprocess.Popen(["prosody", "--config", self.config, "-F"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not all(_listening(p) for p in (self.c2s, self.component, self.http)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("prosody did not start: %s" % self.log_tail())
            await deferLater(reactor, 0.05, lambda: None)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            while self.process.poll() is None:
                await deferLater(reactor, 0.05, lambda: None)
        self.process = None

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.folder, "prosody.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                    "bridge.md")


def ejabberd_excerpt() -> str:
    """docs/bridge.md's ejabberd.yml excerpt, as it stands."""
    with open(DOCS, encoding="utf-8") as f:
        text = f.read()
    found = re.search(r"\*\*ejabberd\*\* \(`ejabberd.yml`\):\n\n```yaml\n(.*?)```", text, re.S)
    assert found, "docs/bridge.md has no ejabberd.yml excerpt"
    return found.group(1)


EJABBERD_REST = """\
# written by tests/xmpp_support.py: docs/bridge.md's excerpt (the listeners and mod_http_upload
# above, loopback ports and plain HTTP put in) and what a test server needs besides
hosts:
  - "{domain}"
loglevel: info
log_rotate_count: 0
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: local
api_permissions:
  "accounts made by the tests":
    from:
      - mod_http_api
    who:
      acl: loopback
    what:
      - register
"""

EJABBERD_LISTEN = """\
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 1048576
    starttls_required: false
"""

EJABBERD_MODULES = """\
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_offline: {{}}
  mod_http_api: {{}}
"""


def ejabberd_config(c2s: int, component: int, http: int) -> str:
    """docs/bridge.md's excerpt with this test's ports, plain HTTP on loopback, the secret
    and names of tests/xmpp_support.py; a client listener, the HTTP API (to make the test's
    accounts) and the modules a client needs added."""
    excerpt = ejabberd_excerpt()
    # Whole tokens, the URL first: a port picked free may hold the digits of another.
    for old, new in (("https://@HOST@:5443/upload", "http://127.0.0.1:%d/upload" % http),
                     ("port: 5347\n", "port: %d\n" % component),
                     ("port: 5443\n", "port: %d\n" % http), ('"::"', '"127.0.0.1"'),
                     ("tls: true", "tls: false"), ("imfed.example.com", COMPONENT),
                     ('"..."', '"%s"' % SECRET)):
        assert excerpt.count(old) == 1, "docs/bridge.md's ejabberd excerpt: %r" % old
        excerpt = excerpt.replace(old, new)
    listen, _, modules = excerpt.partition("modules:\n")
    assert listen.startswith("listen:\n") and modules, "docs/bridge.md's excerpt changed shape"
    listen = listen.replace("      /upload: mod_http_upload",
                            "      /api: mod_http_api\n      /upload: mod_http_upload")
    return (EJABBERD_REST.format(domain=DOMAIN) + listen + EJABBERD_LISTEN.format(c2s=c2s) +
            "modules:\n" + modules + EJABBERD_MODULES.format())


class Ejabberd:
    """Debian's ejabberd, its own in ``folder``: the Erlang VM started as ejabberdctl starts
    it (ejabberdctl itself runs only as root or as the ejabberd user), without distribution;
    accounts made through its HTTP API once it runs."""

    name = "ejabberd"

    def __init__(self, folder: str) -> None:
        libs = glob.glob("/usr/lib/*/ejabberd-*/ebin")
        if shutil.which("erl") is None or not libs:
            pytest.fail("ejabberd is not installed (apt-get install ejabberd; .ci/run does)")
        self.libs = os.path.dirname(os.path.dirname(libs[0]))
        self.folder = folder
        self.spool = os.path.join(folder, "spool")
        os.makedirs(self.spool, exist_ok=True)
        self.c2s, self.component, self.http = free_port(), free_port(), free_port()
        self.config = os.path.join(folder, "ejabberd.yml")
        with open(self.config, "w") as f:
            f.write(ejabberd_config(self.c2s, self.component, self.http))
        self.accounts: list[tuple[str, str]] = []
        self.process: subprocess.Popen | None = None

    @property
    def upload_prefix(self) -> str:
        return "http://127.0.0.1:%d/upload/" % self.http

    def register(self, user: str, password: str) -> None:
        """Made at start (or now, when it runs)."""
        if self.process is not None:
            self._register_once(user, password)
        else:
            self.accounts.append((user, password))

    def _register(self, user: str, password: str) -> None:
        import urllib.request

        request = urllib.request.Request(
            "http://127.0.0.1:%d/api/register" % self.http, method="POST",
            data=json.dumps({"user": user, "host": DOMAIN, "password": password}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200, answer.read()

    async def start(self) -> None:
        env = dict(os.environ, EJABBERD_CONFIG_PATH=self.config, HOME=self.folder,
                   EJABBERD_LOG_PATH=os.path.join(self.folder, "ejabberd.log"),
                   ERL_LIBS=self.libs,
                   ERL_CRASH_DUMP=os.path.join(self.folder, "erl_crash.dump"))
        self.process = subprocess.Popen(
            ["erl", "-noinput", "+K", "true", "-mnesia", "dir", '"%s"' % self.spool,
             "-s", "ejabberd"], cwd=self.spool, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not all(_listening(p) for p in (self.c2s, self.component, self.http)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("ejabberd did not start: %s" % self.log_tail())
            await deferLater(reactor, 0.1, lambda: None)
        made = self.accounts
        self.accounts = []
        for user, password in made:
            self._register_once(user, password)

    def _register_once(self, user: str, password: str) -> None:
        """A restart keeps the accounts (mnesia in the spool): "already registered" is fine."""
        import urllib.error

        try:
            self._register(user, password)
        except urllib.error.HTTPError as e:
            if b"already registered" not in e.read():
                raise
        self.accounts.append((user, password))

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the VM stops as init:stop() would
            deadline = time.monotonic() + 30
            while self.process.poll() is None:
                if time.monotonic() > deadline:
                    self.process.kill()
                await deferLater(reactor, 0.05, lambda: None)
        self.process = None

    def log_tail(self, n: int = 30) -> str:
        try:
            with open(os.path.join(self.folder, "ejabberd.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"


SERVERS = {"prosody": Prosody, "ejabberd": Ejabberd}


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Authenticator(client.XMPPAuthenticator):
    """An ordinary client's login, without TLS (the test server offers none on loopback)."""

    def associateWithStream(self, xs) -> None:
        super().associateWithStream(xs)
        for init in xs.initializers:
            if isinstance(init, xmlstream.TLSInitiatingInitializer):
                init.wanted = False
                init.required = False


class XmppUser:
    """An XMPP user's client: logs in, keeps every stanza it receives, connects again when
    the server goes away (as real clients do) and then sends its presence and joins its rooms
    again."""

    def __init__(self, prosody: Prosody, user: str, password: str) -> None:
        self.prosody, self.user = prosody, user
        self.jid = JID("%s@%s/test" % (user, DOMAIN))
        self.bare = self.jid.userhost()
        self.factory = xmlstream.XmlStreamFactory(_Authenticator(self.jid, password))
        self.factory.maxDelay = 1.0
        self.factory.initialDelay = 0.2
        self.factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authd)
        self.factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._ended)
        self.xs = None
        self.received: list[domish.Element] = []
        self.rooms: list[str] = []
        self.connections = 0
        self._waiting: list[Deferred] = []
        self._counter = 0

    async def connect(self):
        reactor.connectTCP("127.0.0.1", self.prosody.c2s, self.factory)
        await self.wait_online()
        return self

    async def wait_online(self, timeout: float = 20.0) -> None:
        waited = 0.0
        while self.xs is None:
            if waited > timeout:
                raise AssertionError("%s could not log in" % self.user)
            await deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    def _authd(self, xs) -> None:
        xmlstream.upgradeWithIQResponseTracker(xs)
        xs.addObserver("/message", self._got)
        xs.addObserver("/presence", self._got)
        xs.addObserver("/iq", self._iq)
        self.xs = xs
        self.connections += 1
        # As clients do at login: the roster (which makes this resource "interested" in
        # subscription changes), then available presence.
        roster = xmlstream.IQ(xs, "get")
        roster.addElement(("jabber:iq:roster", "query"))
        roster.send().addErrback(lambda f: None)
        xs.send(domish.Element((None, "presence")))
        for room in self.rooms:
            self.join(room, remember=False)

    def _ended(self, _) -> None:
        self.xs = None

    def _iq(self, element) -> None:
        if element.handled:
            return
        if element.getAttribute("type") in ("get", "set"):
            answer = xmlstream.toResponse(element, "result")
            self.xs.send(answer)
        self._got(element)

    def _got(self, element) -> None:
        self.received.append(element)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:  # its timer may have fired it already
                d.callback(None)

    def next_id(self) -> str:
        self._counter += 1
        return "%s-%d" % (self.user, self._counter)

    def send(self, element: domish.Element) -> None:
        assert self.xs is not None, "%s is offline" % self.user
        self.xs.send(element)

    async def wait(self, predicate, timeout: float = 20.0, what: str = "a stanza"):
        """The first stanza received (and not yet taken) that ``predicate`` accepts; taken."""
        deadline = time.monotonic() + timeout
        while True:
            for i, element in enumerate(self.received):
                if predicate(element):
                    return self.received.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s got no %s; it got: %s" % (
                    self.user, what, [e.toXml() for e in self.received][-10:]))
            d = Deferred()
            self._waiting.append(d)
            timer = reactor.callLater(min(left, 0.5), lambda: d.called or d.callback(None))
            await d
            if timer.active():
                timer.cancel()

    # -- what a user does --

    def presence(self, to: str, kind: str | None = None, status: str = "") -> None:
        p = domish.Element((None, "presence"))
        p["to"] = to
        if kind:
            p["type"] = kind
        if status:
            p.addElement("status", content=status)
        self.send(p)

    def message(self, to: str, body: str | None = None, kind: str = "chat", oob: str = "",
                stanza_id: str | None = None) -> str:
        m = domish.Element((None, "message"))
        m["to"], m["type"] = to, kind
        m["id"] = stanza_id or self.next_id()
        if body is not None:
            m.addElement("body", content=body)
        if oob:
            m.addElement(("jabber:x:oob", "x")).addElement("url", content=oob)
        m.addElement(("urn:xmpp:sid:0", "origin-id"))["id"] = m["id"]
        self.send(m)
        return m["id"]

    def retract(self, to: str, stanza_id: str) -> None:
        m = domish.Element((None, "message"))
        m["to"], m["type"], m["id"] = to, "chat", self.next_id()
        m.addElement(("urn:xmpp:message-retract:1", "retract"))["id"] = stanza_id
        m.addElement("body", content="/me retracted a message")
        self.send(m)

    def join(self, room: str, nick: str | None = None, remember: bool = True,
             maxstanzas: int | None = None) -> None:
        p = domish.Element((None, "presence"))
        p["to"] = "%s/%s" % (room, nick or self.user)
        x = p.addElement(("http://jabber.org/protocol/muc", "x"))
        if maxstanzas is not None:
            x.addElement("history")["maxstanzas"] = str(maxstanzas)
        self.send(p)
        if remember:
            self.rooms.append(room)

    def invite(self, room: str, who: str) -> None:
        m = domish.Element((None, "message"))
        m["to"] = room
        m.addElement(("http://jabber.org/protocol/muc#user", "x")).addElement(
            "invite")["to"] = who
        self.send(m)

    async def iq(self, to: str, kind: str, child: domish.Element) -> domish.Element:
        iq = xmlstream.IQ(self.xs, kind)
        iq.addChild(child)
        iq.timeout = 20
        return await iq.send(to)

    async def upload(self, name: str, data: bytes, content_type: str) -> str:
        """XEP-0363 at the server's upload service: a slot, the PUT; the file's GET URL."""
        import treq

        request = domish.Element(("urn:xmpp:http:upload:0", "request"))
        request["filename"], request["size"] = name, str(len(data))
        request["content-type"] = content_type
        answer = await self.iq(UPLOAD, "get", request)
        slot = next(answer.elements("urn:xmpp:http:upload:0", "slot"))
        put = next(slot.elements("urn:xmpp:http:upload:0", "put"))
        get = next(slot.elements("urn:xmpp:http:upload:0", "get"))
        headers = {"Content-Type": content_type}
        for header in put.elements("urn:xmpp:http:upload:0", "header"):
            headers[header["name"]] = str(header)  # the slot's Authorization
        response = await treq.put(put["url"], data=data, headers=headers)
        await treq.content(response)
        assert response.code in (200, 201), response.code
        return get["url"]

    async def log_in_again(self) -> None:
        """A new session: this one closed, another opened as the client's next start would
        (what the server kept while the user was away comes with its initial presence)."""
        self.close()
        while self.xs is not None:
            await deferLater(reactor, 0.05, lambda: None)
        self.factory = self.factory.__class__(self.factory.authenticator)
        self.factory.maxDelay, self.factory.initialDelay = 1.0, 0.2
        self.factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authd)
        self.factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._ended)
        await self.connect()

    def close(self) -> None:
        self.factory.stopTrying()
        if self.xs is not None and self.xs.transport is not None:
            self.xs.transport.loseConnection()
