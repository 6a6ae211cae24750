"""Operating a node: the operator listener's /health (and 503 when a store is gone), backups
taken while the daemon writes and restored, `imfed check` on a peer, the JSON log, and
`imfed --version`."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import sys

import attrs
import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred
import treq
from twisted.application.service import Application
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import ILogObserver, Logger, globalLogPublisher

from conftest import REPO, add_user, blocking_writer, free_port, node_rows, signed_up
from imfed import __version__
from imfed.config import Limits, Listen, LogConfig
from imfed.listening import InOrder, Listener, http_site
from imfed.logs import log_observer
from imfed.operations import OperatorApi
from imfed.wire.errors import Style


async def cli(*args) -> tuple[int, str]:
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "imfed.cli", *args], env=dict(os.environ, PYTHONPATH=REPO),
        path=REPO)
    return code, (out + err).decode()


@pytest_twisted.ensureDeferred
async def test_version():
    code, out = await cli("--version")
    assert code == 0 and out.strip() == "imfed %s" % __version__


@pytest_twisted.ensureDeferred
async def test_health_fails_when_a_store_is_gone(pair):
    a, b = pair
    port = free_port()
    listener = Listener(reactor, Listen("127.0.0.1", port), http_site(
        OperatorApi(lambda: [a.role, b.role]).resource(), Limits(), Style.INTERCONNECT,
        lambda method, path: 0, access_log=False), Limits())
    listener.startService()
    try:
        url = "http://127.0.0.1:%d/" % port
        response = await treq.get(url + "health")
        health = json.loads(await treq.content(response))
        assert response.code == 200 and health["status"] == "ok"
        # Another writer holds node-b's store (a stuck process, say): not writable in time.
        # (It waits for the node's own short transactions, housekeeping's at start say, to
        # take the lock.)
        blocker = blocking_writer(b.role.db.path)
        try:
            response = await treq.get(url + "health")
            health = json.loads(await treq.content(response))
        finally:
            blocker.rollback()
            blocker.close()
        assert response.code == 503 and health["status"] == "failing"
        assert health["servers"]["node-a"]["ok"] is True
        assert health["servers"]["node-b"]["ok"] is False
        assert health["servers"]["node-b"]["database"].startswith("not writable")
        response = await treq.get(url + "nothing")
        assert response.code == 404
        # Issue #29, 10: a page whose domain points at 127.0.0.1 (DNS rebinding) reads
        # nothing; IP literals and localhost are answered.
        for host, code in ((b"evil.example:%d" % port, 403), (b"localhost:%d" % port, 200),
                           (b"[::1]:%d" % port, 200), (b"127.0.0.1", 200), (b"", 403)):
            for path in ("health", "metrics"):
                response = await treq.get(url + path, headers={b"Host": [host]} if host else
                                          {b"Host": [b""]})
                assert response.code in ((code,) if code == 403 else (200, 503)), (host, path)
                if code == 403:
                    assert json.loads(await treq.content(response))["errcode"] == "bad_host"
                else:
                    await treq.content(response)
    finally:
        await listener.stopService()


@pytest_twisted.ensureDeferred
async def test_backup_while_running_and_restore(sqlite_pair, tmp_path):
    a, b = sqlite_pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    for i in range(20):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "m%d" % i}})
    backup = str(tmp_path / "backup")
    code, out = await cli("backup", "--to", backup, "--config", a.config_path)
    assert code == 0 and "node.sqlite3" in out, out
    manifest = json.load(open(os.path.join(backup, "imfed-backup.json")))
    assert manifest["stores"] == ["node.sqlite3"] and manifest["files"] >= 4  # keys, certs
    assert os.path.exists(os.path.join(backup, "node", "server.key"))
    assert oct(os.stat(backup).st_mode & 0o777) == "0o700"
    code, out = await cli("backup", "--to", backup, "--config", a.config_path)
    assert code == 1 and "not empty" in out

    # Into a fresh folder: the same rows.
    target = tmp_path / "restored"
    code, out = await cli("restore", "--from", backup, "--data-dir", str(target))
    assert code == 0, out
    conn = sqlite3.connect(str(target / "node.sqlite3"))
    texts = sorted(r[0] for r in conn.execute(
        "SELECT json_extract(content, '$.message') FROM messages"))
    conn.close()
    assert texts == sorted("m%d" % i for i in range(20))
    # Over an installation: refused unless forced.
    code, out = await cli("restore", "--from", backup, "--data-dir", str(target))
    assert code == 1 and "--force" in out
    # Issue #30, 2: over a running daemon, refused even forced, and nothing is touched.
    stored = node_rows(a, "SELECT COUNT(*) FROM messages")
    code, out = await cli("restore", "--from", backup, "--force", "--config", a.config_path)
    assert code == 1 and "a daemon is running" in out, out
    assert node_rows(a, "SELECT COUNT(*) FROM messages") == stored
    ok, checks = await a.role.health()
    assert ok, checks
    code, out = await cli("restore", "--from", str(tmp_path), "--data-dir", str(target))
    assert code == 1 and "not an imfed backup" in out

    # Issue #29, 14: a folder made beforehand (0755) is made the operator's alone; a backup
    # holding a symbolic link is refused whole, nothing restored through the link.
    made = tmp_path / "made"
    made.mkdir(mode=0o755)
    code, out = await cli("backup", "--to", str(made), "--config", a.config_path)
    assert code == 0 and oct(os.stat(made).st_mode & 0o777) == "0o700", out
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not for the data folder")
    os.symlink(str(secret), str(made / "node" / "stolen.pem"))
    fresh = tmp_path / "fresh"
    code, out = await cli("restore", "--from", str(made), "--data-dir", str(fresh))
    assert code == 1 and "symbolic link" in out, out
    assert not os.path.exists(fresh / "node" / "stolen.pem")
    assert not os.path.exists(fresh / "node.sqlite3")


@pytest_twisted.ensureDeferred
async def test_check_a_peer(pair):
    a, b = pair
    code, out = await cli("check", "node-b", "--config", a.config_path)
    assert code == 0, out
    for step in ("this node", "directory entry", "TLS handshake", "signed round trip"):
        assert [line for line in out.splitlines() if line.startswith(step) and " ok " in line]
    handshake = [line for line in out.splitlines() if line.startswith("TLS handshake")][0]
    assert "TLSv1.3 TLS_SM4_GCM_SM3" in handshake and "NOT" not in handshake, handshake
    code, out = await cli("check", "node-q", "--config", a.config_path)
    assert code == 1 and "directory entry" in out and "FAILED" in out, out
    assert "TLS handshake" not in out  # stops at the first step that fails


@pytest_twisted.ensureDeferred
async def test_check_sees_a_peer_that_is_down(pair):
    a, b = pair
    await b.stop()
    code, out = await cli("check", "node-b", "--config", a.config_path)
    assert code == 1 and "TLS handshake" in out and "FAILED" in out, out
    b.start()


def test_json_log_lines_have_stable_keys():
    out = io.StringIO()
    observer = log_observer(LogConfig(format="json", level="info", node_level="warn"), out)
    globalLogPublisher.addObserver(observer)
    try:
        Logger(namespace="imfed.management.x").info("hello {who}", who="operator")
        Logger(namespace="imfed.node.services.outbox").info("not shown: below the node's level")
        Logger(namespace="imfed.node.services.outbox").warn("shown {n}", n=3)
        try:
            1 / 0
        except ZeroDivisionError:
            Logger(namespace="imfed.web").failure("boom")
    finally:
        globalLogPublisher.removeObserver(observer)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["hello operator", "shown 3", "boom"]
    assert all(set(line) >= {"time", "level", "namespace", "message"} for line in lines)
    assert lines[1]["level"] == "warn" and lines[1]["namespace"] == "imfed.node.services.outbox"
    assert "ZeroDivisionError" in lines[2]["failure"]


def test_the_log_observer_reaches_twistd():
    """twistd takes the observer from the application the plugin's service joins."""
    top = InOrder()
    top.log_observer = log_observer(LogConfig(format="json"), io.StringIO())
    application = Application("imfed")
    top.setServiceParent(application)
    assert application.getComponent(ILogObserver) is top.log_observer


def test_migrations_keep_a_copy_of_the_store(tmp_path):
    from imfed.storage import migrate, schema_files

    path = str(tmp_path / "node.sqlite3")
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for number, sql in schema_files("node")[:3]:
        conn.executescript("BEGIN;" + sql + ";INSERT INTO schema_version VALUES (%d);COMMIT;"
                           % number)
    conn.close()
    latest = migrate(path, "node")
    copy = "%s.before-v%03d" % (path, latest)
    assert os.path.exists(copy)
    conn = sqlite3.connect(copy)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (3,)
    conn.close()
    assert migrate(path, "node") == latest  # nothing to do: no new copy
    assert sorted(os.listdir(tmp_path)) == sorted(["node.sqlite3", os.path.basename(copy)])


@pytest_twisted.ensureDeferred
async def test_health_says_when_the_clock_is_off(pair):
    """Issue #29, 15: a node whose clock is ten minutes ahead has its signed calls refused;
    the answers' signed timestamps tell it so, and /health fails saying by how much."""
    a, b = pair
    ok, checks = await a.role.health()
    assert ok
    real = a.role.client.reactor

    class Skewed:  # the system clock, set wrong
        def seconds(self):
            return real.seconds() + 600

        def __getattr__(self, name):
            return getattr(real, name)

    a.role.client.reactor = Skewed()
    try:
        peer = a.role.directory.active("node-b")
        answer = await a.role.client.call("node-b", peer.address, "GET", "/sns/verify/users",
                                          query={"userID": "x@node-b"})
        assert answer.status == 401  # refused: ts outside the window
        from imfed.peer import PeerError

        with pytest.raises(PeerError, match="replay window"):
            await a.role.refresher.refresh()  # the management server refuses it as well
        ok, checks = await a.role.health()
        assert not ok and 590 <= checks["clock"]["offsetSeconds"] <= 610, checks
        assert "ahead of" in checks["clock"]["warning"]
    finally:
        a.role.client.reactor = real
    await a.role.client.call("node-b", peer.address, "GET", "/sns/verify/users",
                             query={"userID": "x@node-b"})
    await a.role.refresher.refresh()
    ok, checks = await a.role.health()
    assert ok and abs(checks["clock"]["offsetSeconds"]) < 5, checks


@pytest_twisted.ensureDeferred
async def test_a_renewal_by_hand_is_taken_up_within_seconds(pair, management):
    """Issue #30, 1: `imfed node renew` and the operator's approval: the running daemon
    presents and signs with the new identity within seconds (not at its next hourly renewal
    check), and the peer takes its calls."""

    from conftest import wait_until
    from imfed.management import review, store

    a, b = pair
    before = a.role.identity.certificate.fingerprint
    renewing = ensureDeferred(cli("node", "renew", "--config", a.config_path, "--poll", "0.2"))
    registry = management.role.store
    app = await wait_until(lambda: registry.run(store.pending_for, "node-a"),
                           what="the renewal's modify")
    await registry.run(review.approve, app.application_id, management.role.ca, "test", 30,
                       registry.now_ms())
    code, out = await renewing
    assert code == 0, out
    await wait_until(lambda: a.role.identity.certificate.fingerprint != before, timeout=15,
                     what="the daemon on the new certificate")
    await wait_until(lambda: b.role.directory.active("node-a").cert.fingerprint ==
                     a.role.identity.certificate.fingerprint, what="node-b told of it")
    peer = a.role.directory.active("node-b")
    answer = await a.role.client.call("node-b", peer.address, "GET", "/sns/verify/users",
                                      query={"userID": "x@node-b"})
    assert answer.status == 404  # signed with the new key and taken: no such user
    await deferLater(reactor, 0.1, lambda: None)
    ok, checks = await a.role.health()
    assert ok, checks


async def refreshed_until_refused(node, tries: int = 50) -> None:
    """Directory queries until one is refused (a query already in flight when the management
    server changed its mind may still be answered)."""

    for _ in range(tries):
        await node.role.refresher.request_refresh()
        if node.role.refresher.refused:
            return
        await deferLater(reactor, 0.1, lambda: None)


@pytest_twisted.ensureDeferred
async def test_health_fails_when_the_node_is_suspended_or_refused(pair, management):
    """Issue #30, 3: /health is not ok while the management server has suspended the node,
    or refuses its signed calls (an identity it does not have), and is again once resumed."""
    from conftest import wait_until
    from imfed.management import review

    a, b = pair
    registry = management.role.store
    await registry.run(review.set_status, "node-a", 1, "test", "abuse", registry.now_ms())
    # A suspended node is not notified (only status-0 nodes are); its own refresh finds out:
    # the management server refuses a suspended server's query.
    await refreshed_until_refused(a)
    ok, checks = await a.role.health()
    assert not ok and "refuses this node's signed calls" in checks["federation"], checks
    await registry.run(review.set_status, "node-a", 0, "test", "resolved", registry.now_ms())
    await wait_until(lambda: not a.role.refresher.refused, what="node-a's query taken again")
    ok, checks = await a.role.health()
    assert ok and "federation" not in checks

    # Suspended as its own directory says (a copy from before the suspension was lifted).
    from imfed.wire.records import ServerStatus

    me = a.role.directory.peers["node-a"]
    a.role.directory.peers["node-a"] = attrs.evolve(me, status=ServerStatus.SUSPENDED)
    ok, checks = await a.role.health()
    assert not ok and "suspended in the directory" in checks["federation"], checks
    a.role.directory.peers["node-a"] = me

    # The management server no longer knows node-a's key (as after a renewal the daemon did
    # not take up): its directory query is refused, and /health says so.
    from imfed.crypto import sm2

    a.role.client.key = sm2.generate_private_key()
    try:
        await refreshed_until_refused(a)  # answered 401: refused
        ok, checks = await a.role.health()
        assert not ok and "refuses this node's signed calls" in checks["federation"], checks
    finally:
        a.role.client.key = a.role.signing_key
    await a.role.refresher.request_refresh()
    ok, checks = await a.role.health()
    assert ok, checks


@pytest_twisted.ensureDeferred
async def test_health_fails_once_the_store_is_found_damaged(sqlite_pair):
    """Issue #30, 3: a store overwritten under the running daemon (what a restore over it
    did) fails /health as soon as a unit of work meets the damage, instead of "writable"."""
    a, b = sqlite_pair
    alice = await signed_up(a, "100", "Alice")
    add_user(b, "200", "Bob")
    for i in range(30):
        await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                            "content": {"message": "m%d" % i}})
    db = a.role.db
    await db.runInteraction(lambda cur: cur.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    await db.runInteraction(lambda cur: cur.execute("PRAGMA cache_size = 1"))  # read it anew
    size = os.path.getsize(db.path)
    with open(db.path, "r+b") as f:  # in place, as a copy over the file writes it
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    status, _ = await alice.call("GET", "conversations/200@node-b/messages")
    assert status == 500  # the damage met
    ok, checks = await a.role.health()
    assert not ok and checks["database"].startswith("damaged:"), checks


@pytest.mark.postgresql
@pytest_twisted.ensureDeferred
async def test_cli_on_a_postgresql_store_it_cannot_reach_says_so_in_one_line(tmp_path,
                                                                          postgresql_server):
    """Issue #30, 7: `imfed check` (and every command reading the store) on a PostgreSQL
    store it cannot connect to: one line with the reason and the URL without its password,
    exit status 1, no traceback."""
    from conftest import write_toml

    url = postgresql_server.rsplit("/", 1)[0] + "/no_such_database_here"
    user, _, rest = url.partition("//")[2].partition("@")
    url = "postgresql://%s:secret-word@%s" % (user.split(":")[0], rest)
    path = str(tmp_path / "imfed.toml")
    write_toml({"data_dir": str(tmp_path / "d"), "node": {
        "server_id": "node-a", "listen": "127.0.0.1:1", "management_url": "https://m:1",
        "database": url}}, path)
    # A node with its identity in place (so that `imfed check` gets as far as the store).
    from imfed.crypto import pki, sm2

    folder = str(tmp_path / "d" / "node")
    os.makedirs(folder)
    authority = pki.CertificateAuthority.create(str(tmp_path / "ca"), "test CA")
    for server_id, name in (("node-a", "server"), ("manager", "management")):
        key = sm2.generate_private_key()
        cert = authority.issue(pki.make_csr(key, server_id), server_id, "127.0.0.1")
        pki.write_file(os.path.join(folder, name + ".pem"), cert.pem)
        if name == "server":
            pki.write_file(os.path.join(folder, "server.key"), key.to_pem(), private=True)
    pki.write_file(os.path.join(folder, "ca.pem"), authority.cert.pem)
    for args in (("user", "list"), ("check", "node-b")):
        code, out = await cli(*args, "--config", path)
        assert code == 1 and "Traceback" not in out and "no_such_database_here" in out, out
        assert "secret-word" not in out, out
        if args[0] == "user":
            assert out.startswith("imfed: ") and len(out.strip().splitlines()) == 1, out
        else:  # check's steps: the one that failed says why
            assert "directory entry        FAILED  cannot reach the PostgreSQL store" in out


@pytest.mark.postgresql
@pytest_twisted.ensureDeferred
async def test_backup_of_a_node_on_postgresql_leaves_its_old_sqlite_store_out(
        tmp_path, postgresql_server):
    """Issue #30, 7: a node moved to PostgreSQL keeps its old node.sqlite3 in the data folder
    (imfed db copy leaves it); a backup does not take that stale file for the store."""
    from conftest import write_toml

    data = tmp_path / "d"
    (data / "node").mkdir(parents=True)
    stale = sqlite3.connect(str(data / "node.sqlite3"))
    stale.execute("CREATE TABLE users (user_id TEXT)")
    stale.commit()
    stale.close()
    (data / "node" / "server.pem").write_text("kept")
    path = str(tmp_path / "imfed.toml")
    write_toml({"data_dir": str(data), "node": {
        "server_id": "node-a", "listen": "127.0.0.1:1", "management_url": "https://m:1",
        "database": postgresql_server}}, path)
    target = tmp_path / "backup"
    code, out = await cli("backup", "--to", str(target), "--config", path)
    assert code == 0 and "pg_dump" in out, out
    manifest = json.load(open(target / "imfed-backup.json"))
    assert manifest["stores"] == [] and not (target / "node.sqlite3").exists()
    assert (target / "node" / "server.pem").read_text() == "kept"


@pytest.mark.postgresql
@pytest_twisted.ensureDeferred
async def test_a_postgresql_outage_answers_503_with_retry_after_and_logs_once(
        tmp_path, postgresql_server):
    """Issue #30, 4: the node's PostgreSQL down (restarted, failed over) is a condition that
    passes: client calls are answered 503 ``store_unavailable`` with Retry-After, the log has
    one line when it begins and one when it is over (no traceback a request), and the node
    serves again once the server is back, without a restart."""
    from conftest import lone_node
    from imfed.testing import postgresql_database

    helper = os.path.join(REPO, "tests", "postgresql")
    code, out = await _shell(helper, "start")
    assert code == 0, out
    env = dict(line.split(" ", 1)[1].split("=", 1) for line in out.strip().splitlines())
    folder = env["IMFED_PG_DIR"]
    lines: list[dict] = []
    globalLogPublisher.addObserver(lines.append)
    try:
        url = postgresql_database(env["IMFED_TEST_POSTGRESQL"], "outage")
        async with lone_node(tmp_path, database=url) as node:
            alice = await signed_up(node, "100", "Alice")
            add_user(node, "101", "Bea")
            send = {"recvID": "101@node-a", "messageType": "text",
                    "content": {"message": "before"}}
            await alice.ok("POST", "messages", send)
            code, out = await _shell(helper, "halt", folder)
            assert code == 0, out
            answers = []
            for i in range(3):
                response = await treq.post(node.client_url + "messages", json.dumps(
                    dict(send, content={"message": "during %d" % i})).encode(),
                    headers={"Authorization": "Bearer " + alice.token})
                answers.append((response.code, response.headers.getRawHeaders("retry-after"),
                                json.loads(await treq.content(response))))
            for status, retry, body in answers:
                assert status == 503 and retry == ["5"], answers
                assert body["errcode"] == "store_unavailable", body
            # The jobs in the background meet it too (the outbox's scan, housekeeping): no
            # traceback from them either, and they run again once it is back.
            node.role.outbox.wake()
            node.role.housekeeping._fire()
            await deferLater(reactor, 0.3, lambda: None)
            code, out = await _shell(helper, "resume", folder)
            assert code == 0, out
            # A pooled connection opened before the outage is found broken at its first use
            # after it (503 again, at most once a connection); a client that retries its send
            # (same txnId) gets through, once.
            after = dict(send, content={"message": "after"}, txnId="after-1")
            tries = []
            while not tries or tries[-1] == 503:
                assert len(tries) <= 4, tries  # database_connections
                tries.append((await alice.call("POST", "messages", after))[0])
            assert tries[-1] == 200, tries
            texts = [m["messageInfo"]["content"]["message"] for m in (await alice.ok(
                "GET", "conversations/101@node-a/messages"))["messages"]]
            assert "before" in texts and texts.count("after") == 1
            assert not any(t.startswith("during") for t in texts), texts
    finally:
        globalLogPublisher.removeObserver(lines.append)
        await _shell(helper, "stop", folder)
    from twisted.logger import formatEvent

    said = [formatEvent(e) for e in lines if e.get("log_namespace") == "imfed.storage.outage"]
    began = [s for s in said if "the store is unavailable" in s]
    over = [s for s in said if "the store is available again" in s]
    assert len(began) == 1 and len(over) == 1, said
    assert int(re.search(r"\((\d+) requests answered 503", over[0]).group(1)) >= 3, said
    assert not [e for e in lines if e.get("log_failure") is not None
                and e.get("log_namespace", "").startswith("imfed")], "a traceback was logged"


async def _shell(*args):
    out, err, code = await getProcessOutputAndValue(args[0], args[1:], env=os.environ)
    return code, (out + err).decode()


def test_the_grafana_dashboard_shows_only_series_imfed_exports():
    """Issue #30: etc/grafana/imfed.json is a Grafana dashboard (valid JSON, panels with
    Prometheus targets) whose every expression names series /metrics has, and groups or
    selects by labels those series carry: a renamed metric or label fails here."""
    from prometheus_client.metrics import MetricWrapperBase

    from imfed import metrics

    labels = {"process_cpu_seconds": (), "process_resident_memory_bytes": (),
              "process_open_fds": (), "process_max_fds": (), "python_gc_collections":
              ("generation",)}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels[value._name] = tuple(value._labelnames)
    scraped = {"instance", "job", "le"}  # Prometheus' own, and a histogram's buckets
    with open(os.path.join(REPO, "etc", "grafana", "imfed.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    assert dashboard["uid"] == "imfed" and dashboard["panels"]
    seen = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(re.findall(r"\b((?:imfed|process|python)_[a-z_]+)", expr))
            assert names, expr
            families = set()
            for name in names:
                family = re.sub(r"_(total|bucket|count|sum)$", "", name)
                assert family in labels, "%s: no such metric (%s)" % (name, expr)
                families.add(family)
            allowed = scraped.union(*(labels[f] for f in families))
            used = set(re.findall(r"\b([a-z_]+)\s*(?:=~|!=|=)\s*\"", expr))
            for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                used.update(part.strip() for part in group.split(","))
            legend = set(re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")))
            assert used | legend <= allowed, (expr, (used | legend) - allowed)
            seen |= families
    # What an operator looks at first is all there.
    assert {"imfed_requests", "imfed_outbox_depth", "imfed_tls_handshakes",
            "imfed_certificate_expiry_seconds", "process_resident_memory_bytes"} <= seen
