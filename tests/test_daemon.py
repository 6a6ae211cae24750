"""`twistd -n imfed --config ...` as a real process: mutual SM2 TLS on loopback, a signed call,
clean shutdown, and a config mistake that stops the start with the key named."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor

from imfed.crypto import pki
from imfed.peer import PeerClient

from conftest import (REFUSED, REPO, PlainClientPolicy, free_port, http, issue_from, json_of,
                      write_toml)

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def _start(config_path: str, cwd: str) -> subprocess.Popen:
    """The daemon, its output in <cwd>/twistd.log (a file: a pipe nobody reads fills up)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    log_path = os.path.join(cwd, "twistd.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([TWISTD, "-n", "--pidfile=", "imfed", "--config", config_path],
                                cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = log_path
    return proc


def _output(proc: subprocess.Popen) -> bytes:
    with open(proc.log_path, "rb") as f:
        return f.read()


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("daemon exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("daemon did not listen on %d" % port)


def example_management(tmp_path) -> tuple[dict, int]:
    """etc/management.toml with its data in ``tmp_path``/data and a free port: (data, port)."""
    with open(os.path.join(REPO, "etc", "management.toml"), "rb") as f:
        data = tomllib.load(f)
    port = free_port()
    data["data_dir"] = str(tmp_path / "data")
    data["management"]["listen"] = "127.0.0.1:%d" % port
    data["management"]["address"] = "https://127.0.0.1:%d" % port
    return data, port


@pytest.fixture
def daemon(tmp_path):
    data, port = example_management(tmp_path)
    data["metrics"]["listen"] = "127.0.0.1:%d" % free_port()
    write_toml(data, str(tmp_path / "imfed.toml"))
    proc = _start(str(tmp_path / "imfed.toml"), str(tmp_path))
    try:
        _wait_port(port, proc)
        yield port, data["data_dir"], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


@pytest_twisted.ensureDeferred
async def test_daemon_serves_mutual_sm2_tls(daemon, tmp_path, other_ca):
    port, data_dir, proc = daemon
    url = "https://127.0.0.1:%d" % port
    authority = pki.CertificateAuthority.load(os.path.join(data_dir, "management", "ca"))
    own = pki.load_pem_certificate(os.path.join(data_dir, "management", "server.pem"))
    assert own.subject_cn == "manager" and own.san == ["127.0.0.1"]

    # The operator's side of an approval, straight into the daemon's store.
    node = issue_from(authority, str(tmp_path / "node"), "node-a")
    db = sqlite3.connect(os.path.join(data_dir, "management.sqlite3"))
    with db:
        db.execute("INSERT INTO servers (server_id, server_name, server_address, server_type,"
                   " area, country, owner_id, contact_name, contact_email, contact_mobile, "
                   "status, cert_pem, cert_fingerprint, changed_at) "
                   "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   ("node-a", "Node A", "https://127.0.0.1:1", "", "", "CN", "o", "Ops",
                    "ops@example.com", "13500001111", 0, node.cert.pem.decode(),
                    node.cert.fingerprint, 1))
    db.close()

    async def certificate_of(server_id):
        return own if server_id == "manager" else None

    client = PeerClient(server_id="node-a", key=node.key, identity=node.identity(),
                        reactor=reactor, certificate_of=certificate_of)
    try:
        answer = await client.call("manager", url, "POST",
                                   "/sns/restApi/managerserver/servers", {"lastQueryTime": 0})
        assert answer.ok and answer.body["servers"][0]["serverId"] == "node-a"
    finally:
        await client.close()

    # A certificate from another CA fails the handshake; none at all still reaches cacert.
    foreign = other_ca.issue("node-a")
    with pytest.raises(REFUSED):
        await http(PlainClientPolicy(node.ca_file, foreign.cert_file, foreign.key_file), "GET",
                   url + "/sns/restApi/managerserver/cacert")
    status, _, content = await http(PlainClientPolicy(node.ca_file), "GET",
                                    url + "/sns/restApi/managerserver/cacert")
    assert status == 200 and json_of(content)["caCert"].encode() == authority.cert.pem

    proc.send_signal(signal.SIGTERM)
    # twistd 26 re-raises the signal once it has shut down cleanly.
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    log = _output(proc).decode()
    assert "management role manager" in log and "Server Shut Down" in log


def test_config_mistake_stops_start_naming_the_key(tmp_path):
    (tmp_path / "bad.toml").write_text('data_dir = "d"\n[management]\nlisten = "nowhere"\n')
    proc = _start(str(tmp_path / "bad.toml"), str(tmp_path))
    proc.wait(timeout=60)
    out = _output(proc)
    assert proc.returncode != 0
    assert b"management.listen" in out
    assert b"Traceback" not in out


def test_a_port_taken_stops_start_naming_it(tmp_path):
    """Twisted alone would log the failed listen and run on, unreachable; imfed exits."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        write_toml({"data_dir": str(tmp_path / "data"),
                    "management": {"listen": "127.0.0.1:%d" % port}},
                   str(tmp_path / "imfed.toml"))
        proc = _start(str(tmp_path / "imfed.toml"), str(tmp_path))
        proc.wait(timeout=60)
    finally:
        busy.close()
    out = _output(proc)
    assert proc.returncode != 0
    assert b"imfed: cannot listen on 127.0.0.1:%d: Address already in use" % port in out
    assert b"Traceback" not in out


def test_twistd_help_lists_the_options():
    out = subprocess.run([TWISTD, "imfed", "--help"], cwd=REPO, capture_output=True,
                         env=dict(os.environ, PYTHONPATH=REPO))
    assert out.returncode == 0
    assert b"--config" in out.stdout


@pytest_twisted.ensureDeferred
async def test_embedded_default_is_a_small_federation(tmp_path):
    """`twistd -n imfed` with no config: management and two nodes on loopback, joined through
    apply/approve, with demo users who can write to each other; /health and /metrics on the
    operator listener, whose counters move with the traffic.  Every port moved by a free
    offset (--port-offset), so a busy 8443 or 9100 on the machine does not matter."""
    from twisted.internet.task import deferLater

    from conftest import ApiClient, RunningNode, free_port_offset
    from imfed.config import DEV_PORTS, default_config

    offset = free_port_offset(DEV_PORTS)
    env = dict(os.environ, PYTHONPATH=REPO)
    command = [TWISTD, "-n", "--pidfile=", "imfed", "--port-offset", str(offset)]
    metrics_url = "http://127.0.0.1:%d/" % (9100 + offset)
    for round_ in ("first start", "restart"):
        log_path = tmp_path / ("%s.log" % round_.replace(" ", "-"))
        with open(log_path, "wb") as log:  # a file, not a pipe nobody reads until the end
            proc = subprocess.Popen(command, cwd=str(tmp_path), env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            _wait_port(9081 + offset, proc, timeout=60)
            os.chdir(str(tmp_path))
            try:
                config = default_config(offset)
            finally:
                os.chdir(REPO)
            a, b = (RunningNode(attrs_evolve(config, n)) for n in config.dev_nodes)
            alice = ApiClient(a, "13500000001", "demo")
            bob = ApiClient(b, "13600000002", "demo")
            for client in (alice, bob):
                for _ in range(100):
                    try:
                        await client.login()
                        break
                    except Exception:
                        await deferLater(reactor, 0.1, lambda: None)
            text = "hello from the %s" % round_
            for _ in range(100):  # until both directories know each other
                status, _ = await alice.call("POST", "messages", {
                    "recvID": "13600000002@node-b", "messageType": "text",
                    "content": {"message": text}})
                if status == 200:
                    break
                await deferLater(reactor, 0.1, lambda: None)
            got = await bob.wait_event("message", match=lambda m: m["messageInfo"]["content"]
                                       ["message"] == text)
            assert got["messageInfo"]["senderID"] == "13500000001@node-a"
            await _health_and_metrics_move(metrics_url, alice, bob)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            out = log_path.read_text()
        assert "Traceback" not in out, out
        if round_ == "first start":
            assert "node-a joined the development federation" in out
        else:
            assert "joined" not in out  # the certificates from the first start are used
        assert "client API http://127.0.0.1:%d/api/v1/" % (9080 + offset) in out
        assert "web client http://127.0.0.1:%d/" % (9080 + offset) in out
        assert "health and metrics on http://127.0.0.1:%d/health" % (9100 + offset) in out
        assert "Starting factory" not in out  # no noise per connection


def _metric(text: str, name: str, **labels) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all('%s="%s"' % item in head for item in labels.items()):
            total += float(value)
    return total


async def _health_and_metrics_move(url: str, alice, bob) -> None:
    from twisted.internet.task import deferLater

    response = await treq.get(url + "health")
    health = json.loads(await treq.content(response))
    assert response.code == 200 and health["status"] == "ok", health
    assert set(health["servers"]) == {"manager", "node-a", "node-b"}
    node = health["servers"]["node-a"]
    assert node["ok"] and node["database"] == "writable" and node["certificateDaysLeft"] > 300
    assert node["management"]["reachable"] is True and node["outboxDepth"] >= 0

    async def scrape() -> str:
        response = await treq.get(url + "metrics")
        assert response.code == 200
        assert response.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
        return (await treq.content(response)).decode()

    before = await scrape()
    assert [line for line in before.splitlines() if not line.startswith("#")]
    assert all(line.startswith(("imfed_", "process_", "python_"))
               for line in before.splitlines() if line and not line.startswith("#"))
    for i in range(5):
        status, _ = await alice.call("POST", "messages", {
            "recvID": "13600000002@node-b", "messageType": "text",
            "content": {"message": "counted %d" % i}})
        assert status == 200
    await bob.wait_event("message", match=lambda m: m["messageInfo"]["content"]["message"]
                         == "counted 4")
    delivered = dict(server="node-a", destination="node-b", result="sent")
    for _ in range(100):  # A counts a delivery once B's signed answer is back: a moment after
        after = await scrape()
        if _metric(after, "imfed_deliveries_total", **delivered) >= \
                _metric(before, "imfed_deliveries_total", **delivered) + 5:
            break
        await deferLater(reactor, 0.05, lambda: None)
    sent = dict(server="node-a", interface="client", endpoint="send", status="200")
    assert _metric(after, "imfed_requests_total", **sent) >= \
        _metric(before, "imfed_requests_total", **sent) + 5
    received = dict(server="node-b", interface="federation", endpoint="chat", peer="node-a")
    assert _metric(after, "imfed_requests_total", **received) >= \
        _metric(before, "imfed_requests_total", **received) + 5
    assert _metric(after, "imfed_deliveries_total", server="node-a", destination="node-b",
                   result="sent") >= \
        _metric(before, "imfed_deliveries_total", server="node-a", destination="node-b",
                result="sent") + 5
    assert _metric(after, "imfed_sm2_operations_total", operation="sign") > \
        _metric(before, "imfed_sm2_operations_total", operation="sign")
    assert _metric(after, "imfed_request_seconds_count", server="node-b", endpoint="chat") >= 5
    # B stored the five messages in at most five commits, each carrying at least one unit.
    commits = _metric(after, "imfed_store_commits_total", server="node-b") - \
        _metric(before, "imfed_store_commits_total", server="node-b")
    units = _metric(after, "imfed_store_units_total", server="node-b") - \
        _metric(before, "imfed_store_units_total", server="node-b")
    assert 1 <= commits <= units and units >= 5
    # The process's own figures (issue #30): memory, CPU, descriptors, the collector's work.
    assert _metric(after, "process_resident_memory_bytes") > 10 << 20
    assert _metric(after, "process_cpu_seconds_total") > _metric(before,
                                                                 "process_cpu_seconds_total")
    assert 10 < _metric(after, "process_open_fds") < _metric(after, "process_max_fds")
    assert _metric(after, "python_gc_objects_collected_total") > 0
    assert _metric(after, "imfed_certificate_expiry_seconds", server="node-a") > 300 * 86400
    assert _metric(after, "imfed_applications", server="manager", state="approved") >= 2


def attrs_evolve(config, node):
    import attrs

    return attrs.evolve(config, node=node, management=None, dev_nodes=())


def test_sighup_reopens_the_log_and_reads_the_levels_again(tmp_path):
    """Issue #30, 5 and 6: SIGHUP (logrotate's postrotate, ``systemctl reload``) does not
    end the daemon: its [log] levels are read again; a [log] section equal to the defaults
    is the daemon's own log all the same (no debug lines)."""
    data, port = example_management(tmp_path)
    data.pop("metrics", None)
    data["log"] = {"format": "text", "level": "info"}  # the defaults, written out
    path = str(tmp_path / "imfed.toml")
    write_toml(data, path)
    proc = _start(path, str(tmp_path))
    try:
        _wait_port(port, proc)
        data["log"] = {"format": "text", "level": "warn"}
        write_toml(data, path)
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 15
        while b"SIGHUP: log file reopened" not in _output(proc) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None, _output(proc)[-2000:]
        out = _output(proc).decode("utf-8", "replace")
        assert "SIGHUP: log file reopened, [log] levels read again" in out, out[-2000:]
        assert "#debug]" not in out and "Starting factory" not in out
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # still listening
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
