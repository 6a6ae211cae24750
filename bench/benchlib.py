"""What the benchmark scripts share: free loopback ports, config files, nodes as separate
`twistd -n imfed` processes, client API calls, a client's event stream, process figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import treq
from twisted.internet import task

from imfed.testing import free_port, write_toml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL server process on this machine (the backends
    serving the nodes' connections among them), by pid."""
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/comm" % entry) as f:
                    if f.read().strip() in ("postgres", "postmaster"):
                        out[int(entry)] = cpu_seconds(int(entry))
            except OSError:
                pass
    return out


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Node:
    """A node's config file in ``folder``; start() runs it as its own twistd process."""

    def __init__(self, folder, server_id, management_url, processes=1, **settings):
        from imfed.config import parse

        self.server_id, self.processes = server_id, processes
        self.client_port = free_port()
        section = {"server_id": server_id, "listen": "127.0.0.1:%d" % free_port(),
                   "client_listen": "127.0.0.1:%d" % self.client_port,
                   "management_url": management_url,
                   "outbox_retry_initial_seconds": 0.2, "outbox_retry_max_seconds": 2.0,
                   # The load's users are not friends: the daily limits on strangers'
                   # messages (docs/client-api.md) would stop a throughput run.
                   "stranger_messages_per_sender": 10 ** 9,
                   "stranger_messages_per_user": 10 ** 9,
                   # Nor may the per-user minute's limits on client sends (a load's user
                   # sends far more than a person).
                   "sends_per_minute": 10 ** 9, "uploads_per_minute": 10 ** 9,
                   # The load opens --concurrency connections at once from one address: more
                   # than the 32 not-yet-speaking connections an address may have by default.
                   "max_pending_connections_per_source": 1024}
        section.update(settings)
        self.data = {"data_dir": folder, "node": section}
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "imfed.toml")
        write_toml(self.data, self.path)
        self.config = parse(self.data)
        self.url = "http://127.0.0.1:%d/api/v1/" % self.client_port

    def start(self):
        """``processes`` identical processes (more than one needs a PostgreSQL database)."""
        self.log = open(self.path + ".log", "wb")
        self.procs = [subprocess.Popen([TWISTD, "-n", "--pidfile=", "imfed", "--config",
                                        self.path], cwd=REPO, stdout=self.log,
                                       stderr=subprocess.STDOUT,
                                       env=dict(os.environ, PYTHONPATH=REPO))
                      for _ in range(self.processes)]
        self.proc = self.procs[0]

    async def stop(self, reactor):
        # Not proc.wait(): this process's reactor may serve the management role the node is
        # still talking to while it shuts down.
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for _ in range(600):
            if all(proc.poll() is not None for proc in self.procs):
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        self.log.close()

    def negotiated(self) -> str:
        """The protocols and suites of the federation calls this node answered, as its access
        log's last field has them (counted), once the node has stopped."""
        import collections

        seen = collections.Counter()
        with open(self.path + ".log", "rb") as f:
            for line in f:
                text = line.decode("utf-8", "replace").rstrip()
                if '"POST /sns/' in text or '"GET /sns/' in text:
                    seen[text.rsplit(" ", 1)[-1]] += 1
        if not seen:
            return "not in the log (access_log off?)"
        return ", ".join("%s (%d calls)" % kv for kv in seen.most_common())


async def call(method, url, token=None, body=None, **kw):
    """(status, JSON answer) of a client API call."""
    headers = {"Authorization": "Bearer " + token} if token else {}
    data = json.dumps(body).encode() if body is not None else kw.pop("data", None)
    response = await treq.request(method, url, data=data, headers=headers, **kw)
    return response.code, json.loads((await treq.content(response)).decode())


async def login(reactor, node, login_name, password="bench"):
    """A session token, once the node answers (it may still be starting)."""
    for _ in range(600):
        try:
            code, answer = await call("POST", node.url + "login",
                                      body={"login": login_name, "password": password})
            if code == 200:
                return answer["token"]
        except Exception:
            pass
        await task.deferLater(reactor, 0.1, lambda: None)
    raise RuntimeError("cannot log in at %s" % node.url)


class Stream:
    """A client's server-sent event stream: arrival time of each message and group message,
    by its text."""

    def __init__(self):
        self.arrived = {}
        self.buffer = b""

    async def open(self, url, token):
        response = await treq.get(url + "events/stream",
                                  headers={"Authorization": "Bearer " + token})
        # Runs in the background; it ends with the connection when the node stops.
        treq.collect(response, self.feed).addErrback(lambda _: None)
        return self

    def feed(self, chunk: bytes):
        now = time.perf_counter()
        self.buffer += chunk
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            lines = dict(line.split(b": ", 1) for line in block.split(b"\n")
                         if b": " in line and not line.startswith(b":"))
            if lines.get(b"event") in (b"message", b"group_message"):
                text = json.loads(lines[b"data"])["messageInfo"].get("content", {}).get("message")
                self.arrived.setdefault(text, now)
