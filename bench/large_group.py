"""A large group across two servers: N members (four fifths on the master, the rest on another
server) join one by one, then one message to all, then a rename.  Both nodes, the management
role and the load in this process (one core; real mutual TLS, SQLite on loopback).  Prints the
time of each step and the events stored (joins are told to the joiner and the admins once a
group has LARGE_GROUP members, so the events grow with the members, not with their square).

    python bench/large_group.py [--members 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from twisted.internet import task  # noqa: E402

from imfed.config import parse  # noqa: E402
from imfed.devdefault import join_and_approve  # noqa: E402
from imfed.node.store import users  # noqa: E402
from imfed.node.store.groups import LARGE_GROUP  # noqa: E402
from imfed.service import make_service  # noqa: E402
from imfed.storage import run_sync, transaction  # noqa: E402
from imfed.testing import free_port  # noqa: E402


def _count(node, sql: str, *args) -> int:
    return run_sync(node.db.path, lambda cur: cur.execute(sql, args).fetchone()[0])


async def _until(reactor, check, timeout: float = 600.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit("timed out")
        await task.deferLater(reactor, 0.05, lambda: None)
    return time.monotonic() - started


async def _members(node, prefix: str, n: int) -> list:
    @transaction
    def add(cur):
        cur.executemany("INSERT INTO users (user_id, phone, name, portrait, password_hash, "
                        "verify_type, searchable, update_time) VALUES (?, ?, ?, '', 'x', 2, 1, "
                        "1)", [("%s%05d@%s" % (prefix, i, node.server_id), "%s%05d" % (prefix, i),
                                "M%d" % i) for i in range(n)])

    await node.store.run(add)
    return [await node.store.run(users.get_user, "%s%05d@%s" % (prefix, i, node.server_id))
            for i in range(n)]


async def main(reactor, args) -> None:
    folder = tempfile.mkdtemp(prefix="imfed-bench-large-group-")
    mport = free_port()
    management = make_service(parse({"data_dir": os.path.join(folder, "m"), "management": {
        "listen": "127.0.0.1:%d" % mport, "notify_poll_seconds": 0.2}}), reactor)
    management.startService()
    services = []
    try:
        for name in ("node-a", "node-b"):
            config = parse({"data_dir": os.path.join(folder, name), "node": {
                "server_id": name, "listen": "127.0.0.1:%d" % free_port(),
                "client_listen": "127.0.0.1:%d" % free_port(),
                "management_url": "https://127.0.0.1:%d" % mport, "access_log": False,
                "outbox_retry_max_seconds": 1.0}})
            await join_and_approve(reactor, management.management, config.node, "bench")
            service = make_service(config, reactor)
            service.startService()
            services.append(service)
        a, b = services[0].node, services[1].node
        await a.refresher.refresh()
        await b.refresher.refresh()
        here = args.members * 4 // 5
        local = await _members(a, "2", here)
        remote = await _members(b, "3", args.members - here)
        owner = (await _members(a, "1", 1))[0]
        ga, gb = a.handlers.groups, b.handlers.groups
        group = await ga.create(owner, "large", "")
        gid = group.group_id

        started = time.monotonic()
        ids = [u.user_id for u in local + remote]
        for i in range(0, len(ids), 100):
            await ga.invite(owner, gid, ids[i:i + 100])
        await _until(reactor, lambda: _count(b, "SELECT COUNT(*) FROM group_invitations "
                                             "WHERE status = 'pending'") == len(remote))
        for node, handler, people in ((a, ga, local), (b, gb, remote)):
            rows = run_sync(node.db.path, lambda cur: cur.execute(
                "SELECT invitee_id, invitation_id FROM group_invitations WHERE group_id = ? "
                "AND status = 'pending'", (gid,)).fetchall())
            by_user = dict(rows)
            for user in people:
                await handler.answer(user, by_user[user.user_id], True)
        await _until(reactor, lambda: _count(a, "SELECT COUNT(*) FROM group_members WHERE "
                                             "group_id = ?", gid) == args.members + 1)
        joined = time.monotonic() - started
        notices = (_count(a, "SELECT COUNT(*) FROM events WHERE type = 'group_notify'"),
                   _count(b, "SELECT COUNT(*) FROM events WHERE type = 'group_notify'"))
        print("%d members (%d on the master, %d on the other server) joined one by one in "
              "%.1f s = %.0f joins/s" % (args.members, here, len(remote), joined,
                                         args.members / joined))
        print("  group_notify events stored: master %d, other %d (%.1f per member; told to "
              "every member, about %d)" % (notices[0], notices[1],
                                           sum(notices) / args.members,
                                           args.members ** 2 // 2))

        before = _count(b, "SELECT COUNT(*) FROM events WHERE type = 'group_message'")
        started = time.monotonic()
        await ga.send(owner, gid, "text", {"message": "hello all"})
        took = await _until(reactor, lambda: _count(
            b, "SELECT COUNT(*) FROM events WHERE type = 'group_message'") >= before +
            len(remote))
        print("one message to all %d members: on every member's list here and on the other "
              "server in %.2f s" % (args.members, time.monotonic() - started))
        del took
        started = time.monotonic()
        await ga.update(owner, gid, name="renamed")
        await _until(reactor, lambda: run_sync(b.db.path, lambda cur: cur.execute(
            "SELECT name FROM groups WHERE group_id = ?", (gid,)).fetchone()[0]) == "renamed")
        print("a rename, told to every member: %.2f s (LARGE_GROUP = %d)"
              % (time.monotonic() - started, LARGE_GROUP))
    finally:
        for service in reversed(services):
            await service.stopService()
        await management.stopService()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--members", type=int, default=5000)
    task.react(main, [p.parse_args()])
