"""Shared test fixtures: a real SM2 PKI on disk, free loopback ports, in-reactor daemons."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from io import BytesIO

import attrs
import pytest
import pytest_twisted
import treq
from OpenSSL import SSL
from twisted.internet import reactor
from twisted.internet.error import ConnectionLost
from twisted.web.client import ResponseFailed, ResponseNeverReceived
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from imfed.config import parse
from imfed.crypto import _tongsuo, pki, sm2, tls
from imfed.service import make_service
from imfed.storage import run_sync
from imfed.testing import free_port, postgresql_database, write_toml

TEST_DATABASE = os.environ.get("IMFED_TEST_DATABASE") or None
"""A PostgreSQL server (``postgresql://...``) to put every role the suite starts on, each in a
database of its own; unset, the roles use SQLite files in their data dirs (.ci/run runs the
suite both ways)."""


@pytest.fixture(scope="session")
def postgresql_server():
    """A PostgreSQL server for the tests that need one whatever the suite's store (several
    processes of a node, imfed db copy): IMFED_TEST_DATABASE's, else IMFED_TEST_POSTGRESQL's,
    else a throwaway one this run starts (tests/postgresql, from Debian's postgresql package)
    and stops.  Without a server to start such a test fails, it does not skip."""
    url = TEST_DATABASE or os.environ.get("IMFED_TEST_POSTGRESQL")
    if url:
        yield url
        return
    helper = os.path.join(REPO, "tests", "postgresql")
    started = subprocess.run([helper, "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail("this test needs PostgreSQL and none could be started (%s): run "
                    "tests/setup-machine, or set IMFED_TEST_POSTGRESQL=postgresql://..."
                    % (started.stderr.strip() or "tests/postgresql start failed"))
    settings = dict(line.split(" ", 1)[1].split("=", 1)
                    for line in started.stdout.strip().splitlines())
    try:
        yield settings["IMFED_TEST_POSTGRESQL"]
    finally:
        subprocess.run([helper, "stop", settings["IMFED_PG_DIR"]])


def store_setting(data_dir: str) -> dict:
    """The ``database`` setting a role started by the suite in ``data_dir`` gets: none
    (SQLite), or a database of its own on IMFED_TEST_DATABASE's server, named after the data
    dir: a role started again on the same data dir finds its store again."""
    if not TEST_DATABASE:
        return {}
    import hashlib

    name = "t_" + hashlib.sha1(os.path.abspath(data_dir).encode()).hexdigest()[:20]
    fresh = not os.path.exists(os.path.join(data_dir, "imfed.toml"))
    return {"database": postgresql_database(TEST_DATABASE, name, fresh)}


def store_location(tmp_path, name: str) -> str:
    """A store for a test of the storage layer itself: a database of its own on
    IMFED_TEST_DATABASE's server, or ``<tmp_path>/<name>.sqlite3``."""
    setting = store_setting(str(tmp_path / name))
    return setting.get("database") or str(tmp_path / (name + ".sqlite3"))


def table_names(cur) -> list[str]:
    """The tables of the store ``cur`` is on (schema_version and SQLite's own left out)."""
    if getattr(cur, "dialect", "sqlite") == "postgresql":
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' ORDER BY table_name")
    else:
        cur.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
    return [r[0] for r in cur.fetchall() if not r[0].startswith("sqlite_")]


OPENSSL = "openssl"
REFUSED = (ResponseNeverReceived, ResponseFailed, SSL.Error, ConnectionLost)
"""What a client sees when the TLS handshake (or the first read after it) is refused."""
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))


def openssl(*args, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSSL, *args], input=input, capture_output=True, check=check)


@attrs.define
class Issued:
    server_id: str
    key: sm2.PrivateKey
    cert: pki.Certificate
    key_file: str
    cert_file: str
    ca_file: str

    def identity(self) -> tls.TLSIdentity:
        return tls.TLSIdentity.load(self.key_file, self.cert_file, self.ca_file)


@attrs.define
class TestCA:
    """A CA folder plus a helper that issues server identities as files."""

    folder: str
    authority: pki.CertificateAuthority

    @property
    def ca_file(self) -> str:
        return os.path.join(self.folder, "ca.pem")

    def issue(self, server_id: str, host: str = "127.0.0.1", cn: str | None = None) -> Issued:
        key = sm2.generate_private_key()
        request = pki.make_csr(key, cn or server_id)
        cert = pki.issue_certificate(self.authority.key, self.authority.cert, request,
                                     cn or server_id, host)
        base = os.path.join(self.folder, server_id)
        pki.write_file(base + ".key", key.to_pem(), private=True)
        pki.write_file(base + ".pem", cert.pem)
        return Issued(server_id, key, cert, base + ".key", base + ".pem", self.ca_file)


def make_ca(folder: str, name: str = "test CA") -> TestCA:
    return TestCA(folder, pki.CertificateAuthority.create(folder, name))


@pytest.fixture
def ca(tmp_path) -> TestCA:
    return make_ca(str(tmp_path / "ca"))


@pytest.fixture
def other_ca(tmp_path) -> TestCA:
    return make_ca(str(tmp_path / "other-ca"), "another CA")


@implementer(IOpenSSLClientConnectionCreator)
class _BareCreator:
    def __init__(self, ctx, verify):
        self.ctx, self.verify = ctx, verify

    def clientConnectionForTLS(self, tlsProtocol):
        if isinstance(self.ctx, SSL.Context):
            conn = SSL.Connection(self.ctx, None)
        else:
            conn = _tongsuo.Connection(self.ctx, self.verify)
        conn.set_connect_state()
        return conn


def _chain_only(conn, der, errno, depth, ok):
    return bool(ok)


@implementer(IPolicyForHTTPS)
class PlainClientPolicy:
    """A client that trusts ``ca_file`` and presents ``cert_file``/``key_file`` if given: used
    to play clients imfed itself would never be (no certificate, a foreign one).

    ``suites``: "sm4", TLS 1.3 offering ``TLS_SM4_GCM_SM3`` alone (on Tongsuo's libssl, set up
    here, not by imfed's TLS layer); "tlcp", TLCP with the ECC suites (no encryption
    certificate of its own); "aes", OpenSSL 4 through pyOpenSSL offering only its AES and
    ChaCha20 suites (what a peer without GM TLS offers)."""

    def __init__(self, ca_file: str | None, cert_file: str | None = None,
                 key_file: str | None = None, suites: str = "sm4"):
        self.verify = _chain_only if ca_file is not None else None
        if suites == "aes":
            ctx = SSL.Context(SSL.TLS_METHOD)
            if ca_file is not None:
                ctx.load_verify_locations(ca_file)
                ctx.set_verify(SSL.VERIFY_PEER, lambda conn, x509, errno, depth, ok: bool(ok))
            # With no CA file the server is not verified: a newcomer fetching cacert, which it
            # then checks against a fingerprint it was given.
            if cert_file:
                ctx.use_certificate_file(cert_file)
                ctx.use_privatekey_file(key_file)
        else:
            ctx = _tongsuo.Context(ntls_only=suites == "tlcp")
            if suites == "tlcp":
                ctx.set_cipher_list("ECC-SM2-SM4-GCM-SM3:ECC-SM2-SM4-CBC-SM3")
            else:
                ctx.set_versions(_tongsuo.TLS1_3_VERSION, _tongsuo.TLS1_3_VERSION)
                ctx.set_ciphersuites("TLS_SM4_GCM_SM3")
                ctx.set_groups("SM2")
                ctx.set_sigalgs("sm2sig_sm3")
            if ca_file is not None:
                ctx.trust(pki.load_pem_certificate(ca_file).der)
            if cert_file:
                ctx.use_certificate(pki.load_pem_certificate(cert_file).der,
                                    open(key_file, "rb").read())
        self.ctx = ctx

    def creatorForNetloc(self, hostname, port):
        return _BareCreator(self.ctx, self.verify)


async def http(policy, method: str, url: str, body: bytes | None = None,
               headers: dict | None = None) -> tuple[int, Headers, bytes]:
    """One HTTPS request on a fresh connection; (status, headers, body)."""
    agent = Agent(reactor, contextFactory=policy)
    h = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
    producer = FileBodyProducer(BytesIO(body)) if body is not None else None
    d = agent.request(method.encode(), url.encode(), h, producer)
    d.addTimeout(10, reactor)
    response = await d
    content = await treq.content(response)
    return response.code, response.headers, content


def json_of(content: bytes) -> dict:
    return json.loads(content.decode("utf-8"))


@attrs.define
class RunningManagement:
    service: object
    role: object
    port: int
    data_dir: str

    @property
    def url(self) -> str:
        return "https://127.0.0.1:%d" % self.port

    @property
    def ca(self) -> pki.CertificateAuthority:
        return self.role.ca

    def where(self) -> list[str]:
        """How the operator CLI finds this role: its data dir (SQLite), or its config file
        (which names its database)."""
        if self.role.db.dialect == "postgresql":
            return ["--config", os.path.join(self.data_dir, "imfed.toml")]
        return ["--data-dir", self.data_dir]

    def db_snapshot(self) -> list:
        """Every row of every table, for before/after comparisons.  Of the notification queue
        only what is owed counts: the notifier's retry bookkeeping runs on its own; nonces of
        requests (even refused ones) are the verifier's."""
        columns = {"notify_queue": "target_id, changed_id, version"}

        def snapshot(cur):
            out = []
            for t in table_names(cur):
                if t == "seen_nonces":
                    continue
                cur.execute("SELECT %s FROM %s" % (columns.get(t, "*"), t))
                out.append((t, sorted(tuple(r) for r in cur.fetchall())))
            return out

        return run_sync(self.role.db.path, snapshot)


def start_management(data_dir: str, port: int | None = None, top: dict | None = None,
                     **settings) -> RunningManagement:
    """Start the management role in this reactor on a loopback port (fast notification
    retries unless told otherwise); ``top`` for other tables of its config."""
    port = port or free_port()
    section = {"listen": "127.0.0.1:%d" % port, "server_id": "manager",
               "notify_poll_seconds": 0.1, "notify_retry_initial_seconds": 0.2,
               "notify_retry_max_seconds": 1.0}
    section.update(store_setting(data_dir))
    section.update(settings)
    data = {"data_dir": data_dir, "management": section}
    data.update(top or {})
    os.makedirs(data_dir, exist_ok=True)
    write_toml(data, os.path.join(data_dir, "imfed.toml"))
    config = parse(data)
    service = make_service(config, reactor)
    service.startService()
    return RunningManagement(service, service.management, port, config.data_dir)


@pytest_twisted.async_yield_fixture
async def management(tmp_path):
    """The management role running in this reactor on a loopback port."""
    running = start_management(str(tmp_path / "mgmt-data"))
    yield running
    await running.service.stopService()


async def register(role, issued: Issued, status: int = 0, address: str | None = None):
    """Put a server straight into a management role's directory (the review flow's result)."""
    from imfed.management.store import ServerRecord

    return await role.store.put(ServerRecord(
        server_id=issued.server_id, server_name=issued.server_id + " IM",
        server_address=address or "https://127.0.0.1:1", server_type="", area="", country="CN",
        owner_id="owner", contact_name="Ops", contact_email="ops@example.com",
        contact_mobile="13500001111", status=status, cert_pem=issued.cert.pem.decode(),
        cert_fingerprint=issued.cert.fingerprint))


def issue_from(authority: pki.CertificateAuthority, folder: str, server_id: str,
               host: str = "127.0.0.1") -> Issued:
    """A server identity issued by a running management role's CA, written to ``folder``."""
    os.makedirs(folder, exist_ok=True)
    key = sm2.generate_private_key()
    cert = authority.issue(pki.make_csr(key, server_id), server_id, host)
    base = os.path.join(folder, server_id)
    pki.write_file(base + ".key", key.to_pem(), private=True)
    pki.write_file(base + ".pem", cert.pem)
    pki.write_file(os.path.join(folder, "ca.pem"), authority.cert.pem)
    return Issued(server_id, key, cert, base + ".key", base + ".pem",
                  os.path.join(folder, "ca.pem"))


@attrs.define
class RunningNode:
    config: object
    service: object = None

    @property
    def role(self):
        return self.service.node

    @property
    def server_id(self) -> str:
        return self.config.node.server_id

    @property
    def config_path(self) -> str:
        return os.path.join(self.config.data_dir, "imfed.toml")

    @property
    def client_url(self) -> str:
        listen = self.config.node.client_listen
        return "http://%s:%d/api/v1/" % (listen.host, listen.port)

    def start(self):
        self.service = make_service(self.config, reactor)
        self.service.startService()
        return self

    async def stop(self):
        await self.service.stopService()


def free_port_offset(ports, tries: int = 200) -> int:
    """An offset that makes every one of ``ports`` a free loopback port (below the ephemeral
    range, as free_port's)."""
    import random
    import socket

    for _ in range(tries):
        offset = random.randint(10000, 32767 - max(ports))
        sockets = []
        try:
            for port in ports:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port + offset))
            return offset
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free block of ports for %s" % (ports,))


def node_config(data_dir: str, server_id: str, management, top: dict | None = None,
                **settings):
    """A node's config (``settings`` for its [node] table, ``top`` for other tables), also
    written to <data_dir>/imfed.toml for the CLI."""
    port = free_port()
    section = {"server_id": server_id, "listen": "127.0.0.1:%d" % port,
               "client_listen": "127.0.0.1:%d" % free_port(),
               "management_url": management.url, "directory_refresh_seconds": 30.0,
               "outbox_retry_initial_seconds": 0.2, "outbox_retry_max_seconds": 1.0}
    section.update(store_setting(data_dir))
    section.update(settings)
    os.makedirs(data_dir, exist_ok=True)
    data = {"data_dir": data_dir, "node": section}
    data.update(top or {})
    write_toml(data, os.path.join(data_dir, "imfed.toml"))
    return parse(data)


async def join_node(management, folder: str, server_id: str, top: dict | None = None,
                    **settings) -> RunningNode:
    """A node joined through the real flow (pinned CA, apply, approval, install), started."""
    from imfed.devdefault import join_and_approve

    config = node_config(folder, server_id, management, top, **settings)
    await join_and_approve(reactor, management.role, config.node, "test")
    return RunningNode(config).start()


@contextlib.asynccontextmanager
async def lone_node(tmp_path, **settings):
    """A management role and one node, node-a, joined to it (``settings`` for its config),
    both stopped at the end."""
    running = start_management(str(tmp_path / "m"))
    node = await join_node(running, str(tmp_path / "a"), "node-a", **settings)
    try:
        yield node
    finally:
        await node.stop()
        await running.service.stopService()


async def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll ``predicate`` (may be async) until true."""
    import inspect

    from twisted.internet.task import deferLater

    waited = 0.0
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if waited > timeout:
            raise AssertionError("timed out waiting for %s" % what)
        await deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


class ApiClient:
    """A user of a node's client API."""

    def __init__(self, node: RunningNode, login: str, password: str = "secret") -> None:
        self.node, self.login_name, self.password = node, login, password
        self.token = None
        self.last_event = 0
        self.unread: list = []  # fetched by wait_event, not yet looked at

    async def call(self, method: str, path: str, body=None, params=None):
        headers = {}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = body if isinstance(body, bytes) else (
            json.dumps(body).encode() if body is not None else None)
        response = await treq.request(method, self.node.client_url + path, data=data,
                                      params=params, headers=headers)
        content = await treq.content(response)
        return response.code, json.loads(content.decode("utf-8"))

    async def ok(self, method: str, path: str, body=None, params=None) -> dict:
        status, answer = await self.call(method, path, body, params)
        assert status == 200 and answer["code"] == 0, (path, status, answer)
        return answer

    async def login(self):
        answer = await self.ok("POST", "login", {"login": self.login_name,
                                                 "password": self.password})
        self.token = answer["token"]
        return self

    async def events(self, wait: int = 0) -> list:
        answer = await self.ok("GET", "events", params={"since": str(self.last_event),
                                                        "wait": str(wait)})
        self.last_event = answer["last"]
        return answer["events"]

    async def wait_event(self, kind: str, timeout: float = 15.0, match=lambda e: True) -> dict:
        """The next event of ``kind`` that ``match``es; events before it are passed over, those
        after it that came in the same answer are kept for the next call."""
        waited = 0.0
        while True:
            while self.unread:
                event = self.unread.pop(0)
                if event["type"] == kind and match(event["data"]):
                    return event["data"]
            if waited >= timeout:
                raise AssertionError("no %s event for %s" % (kind, self.login_name))
            self.unread = await self.events(wait=1)
            waited += 1


def node_rows(node: RunningNode, sql: str, *args) -> list:
    """The rows of a query on a node's store, read beside the running daemon."""
    def read(cur):
        cur.execute(sql, args)
        return [tuple(r) for r in cur.fetchall()]

    return run_sync(node.role.db.path, read)


def node_write(node: RunningNode, sql: str, *args, many: list | None = None) -> int:
    """One committed change to a node's store beside the running daemon (``many``: the
    statement once per parameter tuple); the number of rows it changed."""
    def write(cur):
        if many is not None:
            cur.executemany(sql, many)
        else:
            cur.execute(sql, args)
        return cur.rowcount

    return run_sync(node.role.db.path, write)


def add_user(node: RunningNode, phone: str, name: str, password: str = "secret", **kw):
    import time

    from imfed.node.store import users

    return run_sync(node.role.db.path, users.add_user, node.server_id, phone, name,
                    users.hash_password(password), int(time.time() * 1000), **kw)


async def signed_up(node: RunningNode, phone: str, name: str) -> "ApiClient":
    """A new user of ``node`` (password "secret"), logged in to its client API."""
    add_user(node, phone, name)
    return await ApiClient(node, phone).login()


SQLITE = {"database": "node.sqlite3"}
"""A node's setting for a test of what only SQLite stores have (files in the data dir, their
pragmas, their online backup), whatever store the suite runs on."""


def blocking_writer(location: str):
    """A connection beside the daemon's that holds the store's write lock (a stuck process,
    say) until closed; it first waits for the daemon's own short transactions."""
    if location.startswith("postgresql://"):
        from imfed.storage import postgresql

        conn = postgresql.connect(location)
    else:
        import sqlite3

        conn = sqlite3.connect(location, timeout=10)
    from imfed.storage import begin_write

    begin_write(conn.cursor())
    return conn


@pytest_twisted.async_yield_fixture
async def pair(management, tmp_path):
    """Two nodes, A and B, joined to ``management`` and knowing each other."""
    async for nodes in _pair(management, tmp_path):
        yield nodes


@pytest_twisted.async_yield_fixture
async def sqlite_pair(management, tmp_path):
    """``pair`` with both nodes on SQLite, whatever the suite's store."""
    async for nodes in _pair(management, tmp_path, **SQLITE):
        yield nodes


async def acquainted(a: RunningNode, b: RunningNode) -> None:
    """Until each of two nodes joined one after the other has the other active in its
    directory (the first knows the second once its directory has refreshed)."""
    await a.role.refresher.refresh()
    await wait_until(lambda: a.role.directory.active(b.server_id) and
                     b.role.directory.active(a.server_id), what="directories")


async def _pair(management, tmp_path, **settings):
    a = await join_node(management, str(tmp_path / "a"), "node-a", max_file_bytes=8 << 20,
                        **settings)
    b = await join_node(management, str(tmp_path / "b"), "node-b", max_file_bytes=8 << 20,
                        **settings)
    await acquainted(a, b)
    yield a, b
    await b.stop()
    await a.stop()


async def read_until(sock, done, tries: int = 40, pause: float = 0.05) -> bytes:
    """What a non-blocking raw socket receives, read every ``pause`` seconds until
    ``done(received)`` or ``tries`` reads."""
    from twisted.internet.task import deferLater

    received = b""
    for _ in range(tries):
        await deferLater(reactor, pause, lambda: None)
        try:
            received += sock.recv(65536)
        except BlockingIOError:
            continue
        if done(received):
            break
    return received
