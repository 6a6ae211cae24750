"""Directory query time with N registered servers (default 10,000), full and incremental,
through the real stack: signed request over loopback mutual SM2 TLS to an in-process
management role, SQLite store, signed JSON answer.

    python bench/directory_query.py [--servers 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir))

from twisted.internet import defer, task  # noqa: E402

from imfed.testing import free_port  # noqa: E402

from imfed.config import parse  # noqa: E402
from imfed.crypto import pki, sm2  # noqa: E402
from imfed.crypto.tls import TLSIdentity  # noqa: E402
from imfed.management import store  # noqa: E402
from imfed.peer import PeerClient  # noqa: E402
from imfed.service import make_service  # noqa: E402
from imfed.storage import run_sync, transaction  # noqa: E402

SERVERS = "/sns/restApi/managerserver/servers"


@transaction
def fill(cur, count: int, cert: pki.Certificate, now_ms: int) -> None:
    rows = []
    for i in range(count):
        sid = "im-%05d" % i
        rows.append((sid, "IM server %d" % i, "https://im%d.example.com:443" % i, "vendor/x",
                     "北京", "CN", "owner-%d" % i, "联系人", "ops%d@example.com" % i,
                     "1350000%04d" % i, 0, cert.pem.decode(), cert.fingerprint, now_ms + i))
    cur.executemany("INSERT INTO servers (server_id, server_name, server_address, server_type, "
                    "area, country, owner_id, contact_name, contact_email, contact_mobile, "
                    "status, cert_pem, cert_fingerprint, changed_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)


@transaction
def touch(cur, ids: list[str], now_ms: int) -> None:
    for sid in ids:
        store.put_server(cur, store.get_server(cur, sid), now_ms)


async def main(reactor, args):
    folder = tempfile.mkdtemp(prefix="imfed-bench-")
    port = free_port()
    config = parse({"data_dir": folder, "management": {"listen": "127.0.0.1:%d" % port}})
    service = make_service(config, reactor)
    role = service.management
    key = sm2.generate_private_key()
    cert = role.ca.issue(pki.make_csr(key, "im-00000"), "im-00000", "127.0.0.1")
    for name, data in (("n.key", key.to_pem()), ("n.pem", cert.pem)):
        pki.write_file(os.path.join(folder, name), data, private=True)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    run_sync(role.db.path, fill, args.servers, cert, now - 10 * args.servers)
    print("filled %d servers in %.1f s" % (args.servers, time.perf_counter() - start))
    service.startService()

    async def certificate_of(server_id):
        return role.identity.certificate

    client = PeerClient(server_id="im-00000", key=key,
                        identity=TLSIdentity.load(os.path.join(folder, "n.key"),
                                                  os.path.join(folder, "n.pem"),
                                                  os.path.join(folder, "management", "ca",
                                                               "ca.pem")),
                        reactor=reactor, certificate_of=certificate_of, timeout=120)
    url = "https://127.0.0.1:%d" % port

    async def timed(body):
        t = time.perf_counter()
        answer = await client.call("manager", url, "POST", SERVERS, body)
        return (time.perf_counter() - t) * 1000, answer

    _, warm = await timed({"lastQueryTime": 0})
    mark = warm.body["serverTime"]
    full = []
    for _ in range(args.runs):
        ms, answer = await timed({"lastQueryTime": 0})
        full.append(ms)
    size = len(answer.body["servers"])
    changed = ["im-%05d" % i for i in range(1, 11)]
    await role.store.run(touch, changed, int(time.time() * 1000))
    inc = []
    for _ in range(args.runs):
        ms, answer = await timed({"lastQueryTime": mark})
        inc.append(ms)
    assert sorted(s["serverId"] for s in answer.body["servers"]) == changed
    t = time.perf_counter()
    for _ in range(args.runs):
        run_sync(role.db.path, store.changed_since, 0)
    store_ms = (time.perf_counter() - t) * 1000 / args.runs
    print("servers in directory:          %d" % size)
    print("full query (lastQueryTime 0):  median %.1f ms, min %.1f ms  (store alone %.1f ms)"
          % (statistics.median(full), min(full), store_ms))
    print("incremental (10 changed):      median %.1f ms, min %.1f ms"
          % (statistics.median(inc), min(inc)))
    await client.close()
    await service.stopService()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--servers", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=7)
    a = p.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, a)))
