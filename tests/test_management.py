"""The management role end to end: registration and review, certificates, the incremental
directory, change notifications to a real HTTPS node stand-in, and the operator CLI."""

from __future__ import annotations

import json
import os
import sys

import attrs
import pytest
import pytest_twisted
from klein import Klein
from twisted.internet import reactor, task
from twisted.internet.utils import getProcessOutputAndValue

from imfed.config import Limits, Listen
from imfed.crypto import pki, signing, sm2
from imfed.crypto.tls import ServerTLS
from imfed.management.notifier import NOTIFY_PATH
from imfed.peer import PeerClient
from imfed.storage import run_sync
from imfed.listening import tls_listener
from imfed.web import SIGNED, Endpoints, endpoint, install_errors, read_json, sns_route
from imfed.wire.errors import Style, ok_body

from conftest import (REPO, Issued, PlainClientPolicy, free_port, http, json_of, openssl,
                      start_management, store_location)

M = "/sns/restApi/managerserver/"


async def admin(management, *args) -> tuple[int, str, str]:
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "imfed.cli", "admin", *management.where(),
                         "--operator", "alice", *args],
        env=dict(os.environ, PYTHONPATH=REPO), path=REPO)
    return code, out.decode(), err.decode()


async def wait_for(predicate, timeout: float = 15.0, what: str = "condition"):
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError("timed out waiting for %s" % what)
        await task.deferLater(reactor, 0.05, lambda: None)
        waited += 0.05


@attrs.define
class Applicant:
    """An IM server joining: its key, its CSR, its application, then its identity."""

    server_id: str
    folder: str
    management: object
    # One address per server: a second server at a registered address is refused.
    address: str = attrs.field(default=attrs.Factory(
        lambda self: "https://127.0.0.1:%d" % (9000 + sum(map(ord, self.server_id))),
        takes_self=True))
    key: sm2.PrivateKey = attrs.field(factory=sm2.generate_private_key)
    application_id: str = ""
    token: str = ""

    def body(self, **override) -> dict:
        body = {"ownerId": "owner-1", "contactName": "张三", "contactEmail": "ops@example.com",
                "contactMobile": "13500001111", "serverId": self.server_id,
                "serverName": "%s IM" % self.server_id, "serverAddress": self.address,
                "serverType": "北信源/信源豆豆", "area": "北京", "country": "CN",
                "csr": pki.make_csr(self.key, self.server_id).pem.decode()}
        body.update(override)
        return {k: v for k, v in body.items() if v is not None}

    async def post(self, path: str, body) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, _, content = await http(PlainClientPolicy(None), "POST",
                                        self.management.url + path, data)
        return status, json_of(content)

    async def apply(self, **override) -> dict:
        status, answer = await self.post(M + "apply", self.body(**override))
        assert status == 200 and answer["code"] == "0", answer
        self.application_id, self.token = answer["applicationId"], answer["applyToken"]
        return answer

    async def status(self) -> dict:
        status, answer = await self.post(M + "apply/status", {
            "applicationId": self.application_id, "applyToken": self.token})
        assert status == 200, answer
        return answer

    def install(self, answer: dict) -> Issued:
        os.makedirs(self.folder, exist_ok=True)
        base = os.path.join(self.folder, self.server_id)
        pki.write_file(base + ".key", self.key.to_pem(), private=True)
        pki.write_file(base + ".pem", answer["serverCert"].encode())
        pki.write_file(os.path.join(self.folder, "ca.pem"), answer["caCert"].encode())
        return Issued(self.server_id, self.key, pki.Certificate.from_pem(answer["serverCert"]),
                      base + ".key", base + ".pem", os.path.join(self.folder, "ca.pem"))

    async def join(self) -> Issued:
        """apply, approve through the CLI, install: the whole flow."""
        await self.apply()
        code, out, err = await admin(self.management, "approve", self.application_id)
        assert code == 0, err
        return self.install(await self.status())


def client_for(issued: Issued, management) -> PeerClient:
    async def certificate_of(server_id):
        if server_id == "manager":
            return management.role.identity.certificate
        record = await management.role.store.get(server_id)
        return pki.Certificate.from_pem(record.cert_pem) if record else None

    return PeerClient(server_id=issued.server_id, key=issued.key, identity=issued.identity(),
                      reactor=reactor, certificate_of=certificate_of)


@pytest_twisted.ensureDeferred
async def test_registration_review_certificates_and_directory(management, tmp_path):
    pinned = management.ca.cert.fingerprint
    # A newcomer has no certificate and no CA yet: it fetches cacert and checks the pin.
    status, _, content = await http(PlainClientPolicy(None), "POST", management.url + M + "cacert",
                                    b"{}")
    ca_pem = json_of(content)["caCert"]
    assert status == 200 and pki.Certificate.from_pem(ca_pem).fingerprint == pinned

    a = Applicant("node-a", str(tmp_path / "a"), management)
    await a.apply()
    assert (await a.status())["status"] == "pending"
    assert "serverCert" not in await a.status()
    code, out, _ = await admin(management, "applications")
    assert code == 0 and a.application_id in out and "pending" in out
    code, out, _ = await admin(management, "show", a.application_id)
    assert "CN node-a, SM2 key, self-signature OK" in out and "张三" in out

    code, out, err = await admin(management, "approve", a.application_id, "--days", "30")
    assert code == 0, err
    assert "issued certificate" in out
    answer = await a.status()
    assert answer["status"] == "approved" and answer["caCert"] == ca_pem
    node_a = a.install(answer)
    result = openssl("verify", "-vfyopt", "distid:1234567812345678", "-CAfile",
                     node_a.ca_file, node_a.cert_file, check=False)
    assert result.returncode == 0, result.stderr
    assert node_a.cert.subject_cn == "node-a" and node_a.cert.san == ["127.0.0.1"]
    assert (node_a.cert.not_after - node_a.cert.not_before).days <= 31
    code, out, _ = await admin(management, "applications")
    assert "no pending applications" in out

    node_b = await Applicant("node-b", str(tmp_path / "b"), management).join()

    client = client_for(node_a, management)
    try:
        full = await client.call("manager", management.url, "POST", M + "servers",
                                 {"lastQueryTime": 0, "serverIds": []})
        assert full.ok
        assert sorted(s["serverId"] for s in full.body["servers"]) == ["node-a", "node-b"]
        entry = next(s for s in full.body["servers"] if s["serverId"] == "node-a")
        address = "https://127.0.0.1:%d" % (9000 + sum(map(ord, "node-a")))
        assert entry["status"] == 0 and entry["serverAddress"] == address
        assert entry["certFingerprint"] == node_a.cert.fingerprint
        assert entry["productType"] == "北信源/信源豆豆" and entry["area"] == "北京"
        t1 = full.body["serverTime"]

        # A modification, signed by the server itself, waits for review...
        mod = await client.call("manager", management.url, "POST", M + "modify",
                                {"changes": {"serverName": "Node A renamed"}})
        assert mod.ok and mod.body["status"] == "pending"
        same = await client.call("manager", management.url, "POST", M + "servers",
                                 {"lastQueryTime": t1})
        assert same.body["servers"] == [] and same.body["serverTime"] == t1
        code, _, err = await admin(management, "approve", mod.body["applicationId"])
        assert code == 0, err
        # ...and then an incremental query returns only the changed server.
        inc = await client.call("manager", management.url, "POST", M + "servers",
                                {"lastQueryTime": t1})
        assert [s["serverId"] for s in inc.body["servers"]] == ["node-a"]
        assert inc.body["servers"][0]["serverName"] == "Node A renamed"
        t2 = inc.body["serverTime"]
        assert t2 > t1

        # node-b deregisters; after approval the id is retired for good.
        client_b = client_for(node_b, management)
        try:
            dereg = await client_b.call("manager", management.url, "POST", M + "deregister",
                                        {"reason": "moving to another platform"})
            assert dereg.ok
        finally:
            await client_b.close()
        code, _, err = await admin(management, "approve", dereg.body["applicationId"])
        assert code == 0, err
        inc = await client.call("manager", management.url, "POST", M + "servers",
                                {"lastQueryTime": t2})
        assert [(s["serverId"], s["status"]) for s in inc.body["servers"]] == [("node-b", 2)]
    finally:
        await client.close()

    status, answer = await a.post("/sns/restApi/getservercert", {"serverId": "node-b"})
    assert status == 404 and answer["code"] != "0" and answer["errcode"] == "deregistered"
    status, answer = await a.post("/sns/restApi/getservercert", {"serverId": "node-a"})
    assert status == 200 and answer["code"] == "0"
    assert pki.Certificate.from_pem(answer["serverCert"]).der == node_a.cert.der
    again = Applicant("node-b", str(tmp_path / "b2"), management)
    status, answer = await again.post(M + "apply", again.body())
    assert status == 409 and answer["errcode"] == "server_id_retired"
    status, answer = await again.post(M + "apply", Applicant("node-a", "", management).body())
    assert status == 409 and answer["errcode"] == "server_id_taken"

    code, out, _ = await admin(management, "audit")
    for action in ("submit-apply", "approve-apply", "issue-certificate", "submit-modify",
                   "approve-modify", "submit-deregister", "approve-deregister"):
        assert action in out, action
    assert "alice" in out and "applicant:node-a" in out and "server:node-b" in out


@pytest_twisted.ensureDeferred
async def test_key_rotation_and_new_address_issue_new_certificates(management, tmp_path):
    a = Applicant("node-a", str(tmp_path / "a"), management)
    node_a = await a.join()
    client = client_for(node_a, management)
    new_key = sm2.generate_private_key()
    try:
        # A CSR for another id is refused; one for our own id is a key rotation.
        other = pki.make_csr(new_key, "node-z").pem.decode()
        bad = await client.call("manager", management.url, "POST", M + "modify",
                                {"changes": {"csr": other}})
        assert bad.status == 400 and bad.body["errcode"] == "csr_cn_mismatch"
        mod = await client.call("manager", management.url, "POST", M + "modify",
                                {"changes": {"csr": pki.make_csr(new_key, "node-a").pem.decode()}})
        assert mod.ok
        code, _, err = await admin(management, "approve", mod.body["applicationId"])
        assert code == 0, err
        status, rotated = await a.post(M + "apply/status", {
            "applicationId": mod.body["applicationId"], "applyToken": mod.body["applyToken"]})
        assert status == 200 and rotated["status"] == "approved"
        cert = pki.Certificate.from_pem(rotated["serverCert"])
        assert cert.public_key == new_key.public_key() and cert.subject_cn == "node-a"
    finally:
        await client.close()
    # The old key no longer matches the directory: sign with the new one from now on.
    node_a = a.install(rotated)
    node_a = attrs.evolve(node_a, key=new_key)
    pki.write_file(node_a.key_file, new_key.to_pem(), private=True)
    client = client_for(node_a, management)
    try:
        move = await client.call("manager", management.url, "POST", M + "modify",
                                 {"changes": {"serverAddress": "https://im.node-a.example:8443"}})
        assert move.ok
        code, _, err = await admin(management, "approve", move.body["applicationId"])
        assert code == 0, err
    finally:
        await client.close()
    record = await management.role.store.get("node-a")
    moved = pki.Certificate.from_pem(record.cert_pem)
    assert moved.san == ["im.node-a.example"] and moved.public_key == new_key.public_key()
    assert record.server_address == "https://im.node-a.example:8443"


class StandIn(Endpoints):
    """A real HTTPS node standing in for the node role: it verifies the management server's
    signature on receivenotify and records what it was told."""

    app = Klein()
    install_errors(app)
    style = Style.MANAGEMENT

    def __init__(self, issued: Issued, management_cert: pki.Certificate) -> None:
        self.server_id, self.signing_key = issued.server_id, issued.key
        self.received: list[str] = []

        async def lookup(server_id):
            return management_cert if server_id == "manager" else None

        self.verifier = signing.RequestVerifier(server_id=issued.server_id,
                                                ca=issued.identity().ca, lookup=lookup,
                                                clock=reactor)

    @sns_route(app, NOTIFY_PATH[len("/sns/"):])
    @endpoint(SIGNED)
    def receivenotify(self, request, origin):
        self.received.append(read_json(request)["serverId"])
        return ok_body(self.style)


def start_stand_in(stand_in: StandIn, issued: Issued, port: int):
    service = tls_listener(reactor, Listen("127.0.0.1", port), ServerTLS(issued.identity()),
                           stand_in.resource(), Limits(), Style.INTERCONNECT,
                           lambda method, path: 1 << 20)
    service.startService()
    return service


@pytest_twisted.ensureDeferred
async def test_every_change_is_notified_even_to_a_node_down_at_first(tmp_path):
    management = start_management(str(tmp_path / "m"))
    port = free_port()
    listener = None
    try:
        watcher = Applicant("watcher", str(tmp_path / "w"), management,
                            address="https://127.0.0.1:%d" % port)
        issued = await watcher.join()
        stand_in = StandIn(issued, management.role.identity.certificate)

        # The watcher is down while node-x joins: the notification waits and is retried.
        x = Applicant("node-x", str(tmp_path / "x"), management)
        node_x = await x.join()
        await wait_for(lambda: any(row[1] == "node-x" and row[2] >= 2 for row in
                                   _queue(management)), what="failed attempts")
        # Owed: news of its own approval, and of node-x.
        owed = {row[:2] for row in _queue(management)}
        assert {("watcher", "watcher"), ("watcher", "node-x")} <= owed
        listener = start_stand_in(stand_in, issued, port)
        await wait_for(lambda: {"watcher", "node-x"} <= set(stand_in.received),
                       what="first notifications")

        client = client_for(node_x, management)
        try:
            mod = await client.call("manager", management.url, "POST", M + "modify",
                                    {"changes": {"area": "上海"}})
        finally:
            await client.close()

        async def deregister():
            client = client_for(node_x, management)
            try:
                answer = await client.call("manager", management.url, "POST",
                                           M + "deregister", {"reason": "closing"})
            finally:
                await client.close()
            return ("approve", answer.body["applicationId"])

        steps = [
            ("approve", mod.body["applicationId"]),
            ("suspend", "node-x", "--reason", "abuse report"),
            ("resume", "node-x", "--reason", "resolved"),
            deregister,
        ]
        for step in steps:
            if callable(step):
                step = await step()
            before = stand_in.received.count("node-x")
            code, _, err = await admin(management, *step)
            assert code == 0, err
            await wait_for(lambda: stand_in.received.count("node-x") > before, what=step[0])
        # node-x, deregistered, is owed nothing any more; the watcher got everything.
        await wait_for(lambda: _queue(management) == [], what="an empty queue")
        code, out, _ = await admin(management, "queue")
        assert "no notifications owed" in out
    finally:
        if listener is not None:
            await listener.stopService()
        await management.service.stopService()


def _queue(management):
    def read(cur):
        cur.execute("SELECT target_id, changed_id, attempts FROM notify_queue")
        return [tuple(r) for r in cur.fetchall()]

    return run_sync(management.role.db.path, read)


@pytest_twisted.ensureDeferred
async def test_notification_queue_survives_a_restart(tmp_path):
    data_dir = str(tmp_path / "m")
    port = free_port()
    management = start_management(data_dir, notify_retry_initial_seconds=5.0)
    watcher = Applicant("watcher", str(tmp_path / "w"), management,
                        address="https://127.0.0.1:%d" % port)
    issued = await watcher.join()
    await Applicant("node-y", str(tmp_path / "y"), management).join()
    await wait_for(lambda: sum(1 for row in _queue(management) if row[0] == "watcher") == 2,
                   what="queued notifications")
    await management.service.stopService()

    management = start_management(data_dir, port=management.port)
    stand_in = StandIn(issued, management.role.identity.certificate)
    listener = start_stand_in(stand_in, issued, port)
    try:
        # The retry delay was 5 s; a restart keeps each row's schedule, and delivers.
        await wait_for(lambda: sorted(stand_in.received) == ["node-y", "watcher"], timeout=20,
                       what="notifications after restart")
        await wait_for(lambda: all(row[0] != "watcher" for row in _queue(management)),
                       what="the watcher's queue emptied")
    finally:
        await listener.stopService()
        await management.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_suspended_node_is_owed_nothing(management, tmp_path):
    watcher = await Applicant("watcher", str(tmp_path / "w"), management).join()
    code, _, err = await admin(management, "suspend", "watcher", "--reason", "maintenance")
    assert code == 0, err
    await Applicant("node-z", str(tmp_path / "z"), management).join()
    await task.deferLater(reactor, 0.5, lambda: None)
    assert [row for row in _queue(management) if row[0] == "watcher"] == []
    assert watcher.server_id == "watcher"


@pytest_twisted.ensureDeferred
async def test_operator_cli(management, tmp_path):
    a = Applicant("node-a", str(tmp_path / "a"), management)
    await a.apply()
    code, _, err = await admin(management, "reject", a.application_id)
    assert code != 0 and "--reason" in err
    code, out, _ = await admin(management, "reject", a.application_id, "--reason",
                               "contact e-mail unverified")
    assert code == 0 and "rejected" in out
    answer = await a.status()
    assert answer["status"] == "rejected" and answer["reason"] == "contact e-mail unverified"
    code, _, err = await admin(management, "approve", a.application_id)
    assert code == 1 and "already rejected" in err
    code, _, err = await admin(management, "approve", "nope")
    assert code == 1 and "no application" in err

    # Rejected: the id is free to apply again.
    await a.apply()
    code, out, _ = await admin(management, "applications", "--json")
    assert [x["application_id"] for x in json.loads(out)] == [a.application_id]
    code, out, _ = await admin(management, "applications", "--all")
    assert out.count("node-a") == 2
    code, _, _ = await admin(management, "approve", a.application_id)
    code, out, _ = await admin(management, "servers")
    assert "node-a" in out and "active" in out
    code, _, err = await admin(management, "resume", "node-a")
    assert code == 1 and "already active" in err
    code, _, err = await admin(management, "suspend", "node-a", "--reason", "audit")
    assert code == 0, err
    code, out, _ = await admin(management, "servers", "--json")
    assert json.loads(out)[0]["status"] == 1
    code, out, _ = await admin(management, "audit", "--json", "--subject", "node-a")
    entries = json.loads(out)
    assert [e["action"] for e in entries] == [
        "submit-apply", "reject-apply", "submit-apply", "issue-certificate", "approve-apply",
        "suspend"]
    reject = entries[1]
    assert reject["actor"] == "alice" and reject["reason"] == "contact e-mail unverified"
    assert entries[3]["detail"]["fingerprint"] and entries[0]["detail"]["data"]["contactName"]

    # The audit log is append-only, even for someone with the database file.
    for sql in ("UPDATE audit SET reason = 'x'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"):
            run_sync(management.role.db.path, lambda cur: cur.execute(sql))

    _, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "imfed.cli", "admin", "--data-dir", str(tmp_path / "none"),
                         "servers"], env=dict(os.environ, PYTHONPATH=REPO), path=REPO)
    assert code == 1 and b"no management store" in err


def test_server_time_never_misses_a_change(tmp_path):
    """Change marks are unique and increasing: changes in one millisecond, and a clock that
    steps back, still leave every change after the serverTime handed out before it."""
    from imfed.management import store
    from imfed.storage import migrate, run_sync, transaction

    path = store_location(tmp_path, "m")
    migrate(path, "management")
    put = transaction(store.put_server)

    def record(sid):
        return store.ServerRecord(sid, sid, "https://127.0.0.1:1", "", "", "", "", "n",
                                  "e@example.com", "13500001111", 0, "pem", "fp")

    first = run_sync(path, put, record("a"), 1_000)
    _, t1 = run_sync(path, store.changed_since, 0)
    same_ms = run_sync(path, put, record("b"), 1_000)          # same millisecond
    stepped = run_sync(path, put, record("c"), 500)            # clock stepped back
    assert first.changed_at == t1 == 1_000
    assert same_ms.changed_at == 1_001 and stepped.changed_at == 1_002
    changed, t2 = run_sync(path, store.changed_since, t1)
    assert [r["serverId"] for r in changed] == ["b", "c"] and t2 == 1_002
    again = run_sync(path, put, record("a"), 400)
    changed, t3 = run_sync(path, store.changed_since, t2)
    assert [r["serverId"] for r in changed] == ["a"] and t3 == again.changed_at == 1_003
    assert run_sync(path, store.changed_since, t3) == ([], t3)
    assert run_sync(path, store.changed_since, 5_000) == ([], 5_000)
    assert [r["serverId"] for r in run_sync(path, store.changed_since, 0, ["c"])[0]] == ["c"]


def test_a_change_owed_again_during_delivery_is_not_lost(tmp_path):
    from imfed.management import store
    from imfed.storage import migrate, run_sync, transaction

    path = store_location(tmp_path, "m")
    migrate(path, "management")
    node = store.ServerRecord("node", "n", "https://127.0.0.1:1", "", "", "", "", "n",
                              "e@example.com", "13500001111", 0, "pem", "fp")
    run_sync(path, transaction(store.put_server), node, 1)
    run_sync(path, transaction(store.enqueue_notifications), "node-x", 10)
    [(target, changed, version, attempts, _)] = run_sync(path, store.due_notifications, 10)
    # The same change is owed again while that delivery is in flight...
    run_sync(path, transaction(store.enqueue_notifications), "node-x", 11)
    # ...so the delivery's success (or failure) leaves the newer debt due.
    run_sync(path, transaction(store.notification_done), target, changed, version)
    run_sync(path, transaction(store.notification_failed), target, changed, version, 1, 99, "x")
    [(_, _, newer, attempts, _)] = run_sync(path, store.due_notifications, 11)
    assert newer == version + 1 and attempts == 0
    run_sync(path, transaction(store.notification_done), target, changed, newer)
    assert run_sync(path, store.due_notifications, 10**12) == []


@pytest_twisted.ensureDeferred
async def test_a_silent_member_does_not_delay_anyone_elses_notifications(tmp_path):
    """Issue #29, 2: a registered member whose address takes TCP connections and never
    answers holds only what is owed to it; a suspension reaches the other nodes at once."""
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.internet.protocol import Factory, Protocol

    silent_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(Protocol))  # accepts, reads, never answers
    management = start_management(str(tmp_path / "m"))
    port = free_port()
    listener = None
    try:
        silent = Applicant("node-s", str(tmp_path / "s"), management,
                           address="https://127.0.0.1:%d" % silent_port.getHost().port)
        await silent.join()
        watcher = Applicant("watcher", str(tmp_path / "w"), management,
                            address="https://127.0.0.1:%d" % port)
        issued = await watcher.join()
        stand_in = StandIn(issued, management.role.identity.certificate)
        listener = start_stand_in(stand_in, issued, port)
        x = Applicant("node-x", str(tmp_path / "x"), management)
        await x.join()
        await wait_for(lambda: "node-x" in stand_in.received, what="node-x's approval")
        # Now a delivery to the silent member is on its way (and will be until its timeout).
        assert any(row[0] == "node-s" for row in _queue(management))
        for step in (("suspend", "node-x", "--reason", "abuse"),
                     ("resume", "node-x", "--reason", "resolved")):
            before = stand_in.received.count("node-x")
            started = reactor.seconds()
            code, _, err = await admin(management, *step)
            assert code == 0, err
            await wait_for(lambda: stand_in.received.count("node-x") > before, timeout=5,
                           what="%s reaching the watcher" % step[0])
            assert reactor.seconds() - started < 5
    finally:
        if listener is not None:
            await listener.stopService()
        await management.service.stopService()
        await silent_port.stopListening()
