"""Group fan-out: time for one group message, posted at the master's client API, to reach the
event stream of a member on each of N receiving servers (N = 1, 10, 50), and group throughput.
Management, the load and the event streams are in this process; the master and the N
receiving nodes are separate `twistd -n imfed` processes (``--in-process`` puts them all in
this one, on one core: pessimistic), real mutual TLS and SQLite on loopback.

    python bench/group_fanout.py [--servers 1,10,50] [--messages 20] [--in-process]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from twisted.internet import defer, task  # noqa: E402

from benchlib import Node, Stream, call, login  # noqa: E402

from imfed.config import parse  # noqa: E402
from imfed.devdefault import join_and_approve  # noqa: E402
from imfed.node.store import users  # noqa: E402
from imfed.service import make_service  # noqa: E402
from imfed.storage import migrate, run_sync  # noqa: E402
from imfed.testing import free_port  # noqa: E402


async def api(method, url, token=None, body=None):
    return (await call(method, url, token, body))[1]


async def run(reactor, n: int, messages: int, password: str, in_process: bool) -> None:
    folder = tempfile.mkdtemp(prefix="imfed-bench-group-")
    mport = free_port()
    management = make_service(parse({"data_dir": os.path.join(folder, "m"), "management": {
        "listen": "127.0.0.1:%d" % mport, "notify_poll_seconds": 0.2,
        "apply_per_source_per_hour": 1000}}), reactor)  # every node applies from 127.0.0.1
    management.startService()
    nodes = [Node(os.path.join(folder, "n%03d" % i), "n%03d" % i,
                  "https://127.0.0.1:%d" % mport, outbox_retry_max_seconds=1.0)
             for i in range(n + 1)]
    services = []
    for node in nodes:
        await join_and_approve(reactor, management.management, node.config.node, "bench")
        db = node.config.path("node.sqlite3")
        migrate(db, "node")
        run_sync(db, users.add_user, node.server_id, "1", "member", password, 1)
        if in_process:
            service = make_service(node.config, reactor)
            service.startService()
            services.append(service)
        else:
            node.start()
    try:
        tokens = [await login(reactor, node, "1") for node in nodes]
        streams = [await Stream().open(node.url, token)
                   for node, token in zip(nodes[1:], tokens[1:])]
        master, token = nodes[0], tokens[0]
        gid = (await api("POST", master.url + "groups", token, {"groupName": "bench"}))[
            "groupInfo"]["groupID"]
        for _ in range(100):  # until every node's directory knows every other
            answer = await api("POST", master.url + "groups/%s/invite" % gid, token,
                               {"userIDs": ["1@%s" % node.server_id for node in nodes[1:]]})
            if answer.get("code") == 0:
                break
            await task.deferLater(reactor, 0.2, lambda: None)
        for node, t in zip(nodes[1:], tokens[1:]):
            while True:
                pending = (await api("GET", node.url + "groups/invitations", t))["invitations"]
                if pending:
                    break
                await task.deferLater(reactor, 0.05, lambda: None)
            await api("POST", node.url + "groups/invitations/%s/answer"
                      % pending[0]["invitationID"], t, {"agree": True})
        while (await api("GET", master.url + "groups/" + gid, token))["groupInfo"][
                "groupMemberNum"] < n + 1:
            await task.deferLater(reactor, 0.05, lambda: None)
        await task.deferLater(reactor, 1.0, lambda: None)  # membership announcements settle

        async def reached_all(texts, timeout=300):
            deadline = time.perf_counter() + timeout
            while not all(t in s.arrived for s in streams for t in texts):
                if time.perf_counter() > deadline:
                    raise RuntimeError("not every member got %d messages" % len(texts))
                await task.deferLater(reactor, 0.002, lambda: None)

        latencies = []
        for k in range(messages):
            text = "m%d" % k
            start = time.perf_counter()
            await api("POST", master.url + "groups/%s/messages" % gid, token,
                      {"messageType": "text", "content": {"message": text}})
            await reached_all([text])
            latencies.append((max(s.arrived[text] for s in streams) - start) * 1000)
        latencies.sort()
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
        print("N=%2d receiving servers: one message to all members: p50 %.0f ms, p99 %.0f ms"
              % (n, statistics.median(latencies), p99))

        burst = ["b%d" % k for k in range(100)]
        start = time.perf_counter()
        for text in burst:
            await api("POST", master.url + "groups/%s/messages" % gid, token,
                      {"messageType": "text", "content": {"message": text}})
        await reached_all(burst)
        elapsed = max(s.arrived[t] for s in streams for t in burst) - start
        print("N=%2d receiving servers: %d messages to every member in %.2f s = %.0f group "
              "messages/s (%.0f deliveries/s)" % (n, len(burst), elapsed, len(burst) / elapsed,
                                                  len(burst) * n / elapsed))
    finally:
        for service in reversed(services):
            await service.stopService()
        if not in_process:
            await defer.gatherResults([defer.ensureDeferred(node.stop(reactor))
                                       for node in nodes])
        await management.stopService()
        shutil.rmtree(folder, ignore_errors=True)  # stores, logs: nothing is kept


async def main(reactor, args):
    password = users.hash_password("bench")
    print("nodes %s" % ("all in this process" if args.in_process else "each in its own process"))
    for n in [int(x) for x in args.servers.split(",")]:
        await run(reactor, n, args.messages, password, args.in_process)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--servers", default="1,10,50")
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--in-process", action="store_true")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
