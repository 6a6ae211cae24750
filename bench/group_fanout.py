"""Group fan-out: time for one group message, posted at the master, to reach a member on each
of N receiving servers (N = 1, 10, 50), and group throughput.  Everything runs in this one
process (management, master, N nodes on loopback with real mutual TLS and SQLite), so the
figures include every server sharing one core: pessimistic.

    python bench/group_fanout.py [--servers 1,10,50] [--messages 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import treq  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from benchlib import free_port  # noqa: E402

from imfed.config import parse  # noqa: E402
from imfed.devdefault import join_and_approve  # noqa: E402
from imfed.node import users  # noqa: E402
from imfed.service import make_service  # noqa: E402
from imfed.storage import run_sync  # noqa: E402



async def api(method, url, token=None, body=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    response = await treq.request(method, url, headers=headers,
                                  data=json.dumps(body).encode() if body is not None else None)
    return json.loads((await treq.content(response)).decode())


async def run(reactor, n: int, messages: int, password: str) -> None:
    folder = tempfile.mkdtemp(prefix="imfed-bench-group-")
    mport = free_port()
    management = make_service(parse({"data_dir": os.path.join(folder, "m"), "management": {
        "listen": "127.0.0.1:%d" % mport, "notify_poll_seconds": 0.2}}), reactor)
    management.startService()
    nodes = []
    for i in range(n + 1):
        sid = "n%03d" % i
        config = parse({"data_dir": os.path.join(folder, sid), "node": {
            "server_id": sid, "listen": "127.0.0.1:%d" % free_port(),
            "client_listen": "127.0.0.1:%d" % free_port(),
            "management_url": "https://127.0.0.1:%d" % mport,
            "outbox_retry_initial_seconds": 0.2, "outbox_retry_max_seconds": 1.0}})
        await join_and_approve(reactor, management.management, config.node, "bench")
        nodes.append(config)
    services = []
    for config in nodes:
        service = make_service(config, reactor)
        service.startService()
        services.append(service)
        run_sync(service.node.db.path, users.add_user, config.node.server_id, "1", "member",
                 password, 1)
    roles = [s.node for s in services]
    for role in roles:
        await role.directory.refresh()
    url = ["http://127.0.0.1:%d/api/v1/" % c.node.client_listen.port for c in nodes]
    tokens = [(await api("POST", u + "login", body={"login": "1", "password": "bench"}))
              ["token"] for u in url]
    gid = (await api("POST", url[0] + "groups", tokens[0], {"groupName": "bench"}))[
        "groupInfo"]["groupID"]
    await api("POST", url[0] + "groups/%s/invite" % gid, tokens[0],
              {"userIDs": ["1@%s" % c.node.server_id for c in nodes[1:]]})
    for i in range(1, n + 1):
        while True:
            pending = (await api("GET", url[i] + "groups/invitations", tokens[i]))["invitations"]
            if pending:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        await api("POST", url[i] + "groups/invitations/%s/answer" % pending[0]["invitationID"],
                  tokens[i], {"agree": True})
    while (await api("GET", url[0] + "groups/" + gid, tokens[0]))["groupInfo"][
            "groupMemberNum"] < n + 1:
        await task.deferLater(reactor, 0.05, lambda: None)
    await task.deferLater(reactor, 1.0, lambda: None)  # membership announcements settle

    def arrivals():
        """A Deferred per receiving member, fired at its next event."""
        return [roles[i].hub.wait("1@%s" % nodes[i].node.server_id) for i in range(1, n + 1)]

    latencies = []
    for k in range(messages):
        waiting = arrivals()
        start = time.perf_counter()
        reached = []
        for d in waiting:
            d.addCallback(lambda _: reached.append(time.perf_counter() - start))
        await api("POST", url[0] + "groups/%s/messages" % gid, tokens[0],
                  {"messageType": "text", "content": {"message": "m%d" % k}})
        await defer.gatherResults(waiting)
        latencies.append(max(reached) * 1000)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print("N=%2d receiving servers: one message to all members: p50 %.0f ms, p99 %.0f ms"
          % (n, statistics.median(latencies), p99))

    burst = 100
    start = time.perf_counter()
    for k in range(burst):
        await api("POST", url[0] + "groups/%s/messages" % gid, tokens[0],
                  {"messageType": "text", "content": {"message": "b%d" % k}})

    async def count(role):
        return await role.db.runInteraction(
            lambda cur: cur.execute("SELECT COUNT(*) FROM group_messages").fetchone()[0])

    while min([await count(r) for r in roles[1:]]) < messages + burst:
        await task.deferLater(reactor, 0.02, lambda: None)
    elapsed = time.perf_counter() - start
    print("N=%2d receiving servers: %d messages to every member in %.2f s = %.0f group "
          "messages/s (%.0f deliveries/s)" % (n, burst, elapsed, burst / elapsed,
                                              burst * n / elapsed))
    for service in reversed(services):
        await service.stopService()
    await management.stopService()


async def main(reactor, args):
    password = users.hash_password("bench")
    for n in [int(x) for x in args.servers.split(",")]:
        await run(reactor, n, args.messages, password)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--servers", default="1,10,50")
    p.add_argument("--messages", type=int, default=20)
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
