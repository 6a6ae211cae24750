"""Client to client across two nodes, each a `twistd -n imfed` process on loopback, the
management role and the load in this process:

- sustained text throughput A -> B (messages/s, counted when Bob's event stream has them all)
- latency at a fixed rate (send request start -> Bob's event stream), p50 / p99
- latency of a single message on idle nodes (the same path; --idle messages, each sent 50 ms
  after the one before arrived), p50 / p99
- file relay: a large file uploaded to A, downloaded by Bob through B (MB/s), and B's peak RSS

    python bench/node_messaging.py [--messages 3000] [--concurrency 64] [--conversations 16]
                                   [--rate 200] [--seconds 10] [--file-mb 200]
                                   [--idle 200] [--no-access-log] [--pipeline 8]
                                   [--postgresql URL [--processes N]]
                                   [--profile DIR]

--profile records py-spy profiles of every node process during the many-conversation
throughput run, as collapsed stacks (DIR/A.txt, DIR/B.txt); py-spy comes with
.venv/bin/pip install '.[bench]'.

--postgresql puts each node on a new database of that PostgreSQL server (instead of SQLite);
--processes runs each node as N processes sharing its ports and database (docs/scaling.md).
CPU per message is printed per process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import treq  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from benchlib import (Node, Stream, call, cpu_seconds, login, postgres_cpu,  # noqa: E402
                      rss_kb)

from imfed.config import parse  # noqa: E402
from imfed.devdefault import join_and_approve  # noqa: E402
from imfed.node.store import users  # noqa: E402
from imfed.service import make_service  # noqa: E402
from imfed.storage import migrate, run_sync  # noqa: E402
from imfed.testing import free_port, postgresql_database  # noqa: E402


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in ms."""
    latencies = sorted(latencies)
    return (statistics.median(latencies), latencies[max(int(len(latencies) * 0.99) - 1, 0)],
            latencies[-1])


def profile(folder, a, b) -> list[subprocess.Popen]:
    """py-spy on every process of both nodes, until sent SIGINT."""
    os.makedirs(folder, exist_ok=True)
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")  # in the same venv
    spy = beside if os.path.exists(beside) else "py-spy"
    spies = []
    for node, name in ((a, "A"), (b, "B")):
        for i, proc in enumerate(node.procs):
            out = os.path.join(folder, "%s%s.txt" % (name, i + 1 if i else ""))
            spies.append(subprocess.Popen(
                [spy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                 "--threads", "-o", out, "--pid", str(proc.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # attached before the load starts
    return spies


async def main(reactor, args):
    folder = tempfile.mkdtemp(prefix="imfed-bench-node-")
    port = free_port()
    mconfig = parse({"data_dir": os.path.join(folder, "m"),
                     "management": {"listen": "127.0.0.1:%d" % port}})
    management = make_service(mconfig, reactor)
    management.startService()
    limit = (args.file_mb + 1) << 20
    if args.processes > 1 and not args.postgresql:
        raise SystemExit("--processes needs --postgresql")
    store = {}
    nodes = []
    for name in ("a", "b"):
        if args.postgresql:
            store = {"database": postgresql_database(args.postgresql)}
        nodes.append(Node(os.path.join(folder, name), "node-" + name,
                          "https://127.0.0.1:%d" % port, processes=args.processes,
                          max_file_bytes=limit, access_log=not args.no_access_log,
                          outbox_pipeline=args.pipeline, **store))
    a, b = nodes
    senders = ["%d" % (100 + i) for i in range(args.conversations)]
    password = users.hash_password("bench")
    for node, phones in ((a, senders), (b, ["200"])):
        await join_and_approve(reactor, management.management, node.config.node, "bench")
        db = node.config.node.database
        migrate(db, "node")
        for phone in phones:
            run_sync(db, users.add_user, node.server_id, phone, phone, password, 1)
        node.start()
    try:
        tokens = [await login(reactor, a, phone) for phone in senders]
        alice = tokens[0]
        bob = await login(reactor, b, "200")
        stream = await Stream().open(b.url, bob)

        async def send(text, sender=0):
            for _ in range(100):
                code, answer = await call("POST", a.url + "messages", tokens[sender], body={
                    "recvID": "200@node-b", "messageType": "text",
                    "content": {"message": text}})
                if code == 200:
                    return
                await task.deferLater(reactor, 0.1, lambda: None)  # directory warming up
            raise RuntimeError(answer)

        async def wait_for(texts, timeout=300):
            deadline = time.perf_counter() + timeout
            while not all(t in stream.arrived for t in texts):
                if time.perf_counter() > deadline:
                    raise RuntimeError("%d of %d arrived" % (
                        sum(t in stream.arrived for t in texts), len(texts)))
                await task.deferLater(reactor, 0.01, lambda: None)

        await send("warm-up")
        await wait_for(["warm-up"])

        # 1. Throughput: one conversation, then many.
        for conversations in (1, args.conversations):
            texts = ["t%d-%05d" % (conversations, i) for i in range(args.messages)]
            queue = list(enumerate(texts))
            pids = [p.pid for p in a.procs] + [p.pid for p in b.procs] + [os.getpid()]
            cpu_before = [cpu_seconds(pid) for pid in pids]
            pg_before = postgres_cpu() if args.postgresql else {}
            spies = profile(args.profile, a, b) \
                if args.profile and conversations == args.conversations else []
            start = time.perf_counter()

            async def worker():
                while queue:
                    i, text = queue.pop(0)
                    await send(text, i % conversations)

            await defer.gatherResults([defer.ensureDeferred(worker())
                                       for _ in range(args.concurrency)])
            accepted = time.perf_counter() - start
            await wait_for(texts)
            elapsed = max(stream.arrived[t] for t in texts) - start
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait()
            cpu = [(cpu_seconds(pid) - before) * 1000 / len(texts)
                   for pid, before in zip(pids, cpu_before)]
            pg = sum(now - pg_before.get(pid, 0.0) for pid, now in postgres_cpu().items()) \
                * 1000 / len(texts) if args.postgresql else 0.0
            print("throughput, %d conversation(s): %d messages A->B in %.2f s = %.0f "
                  "messages/s (accepted by A at %.0f/s)"
                  % (conversations, len(texts), elapsed, len(texts) / elapsed,
                     len(texts) / accepted))
            names = ["A%d" % (i + 1) for i in range(len(a.procs))] + \
                ["B%d" % (i + 1) for i in range(len(b.procs))]
            if len(a.procs) == 1:
                names = ["A", "B"]
            print("  CPU per message: %s, load and management %.2f ms (all threads)%s; total "
                  "%.2f ms" % (", ".join("%s %.2f ms" % nc for nc in zip(names, cpu)), cpu[-1],
                               ", PostgreSQL %.2f ms (the server on this machine, both "
                               "nodes' databases)" % pg if args.postgresql else "",
                               sum(cpu) + pg))

        # 2. Latency at a fixed rate.
        count = int(args.rate * args.seconds)
        sent_at = {}
        sends = []

        def fire(i=[0]):
            if i[0] >= count:
                return
            text = "l%05d" % i[0]
            sender = i[0] % len(tokens)
            i[0] += 1
            sent_at[text] = time.perf_counter()
            sends.append(defer.ensureDeferred(send(text, sender)))

        loop = task.LoopingCall(fire)
        loop.clock = reactor
        loop.start(1.0 / args.rate, now=True)
        while len(sent_at) < count:
            await task.deferLater(reactor, 0.05, lambda: None)
        loop.stop()
        await defer.gatherResults(sends)
        await wait_for(list(sent_at))
        print("latency at %d messages/s for %d s over %d conversations: p50 %.1f ms, "
              "p99 %.1f ms, max %.1f ms" % (args.rate, args.seconds, len(tokens), *percentiles(
                  [(stream.arrived[t] - sent_at[t]) * 1000 for t in sent_at])))

        # 2b. One message at a time on idle nodes.
        if args.idle:
            await task.deferLater(reactor, 1.0, lambda: None)
            idle = []
            for i in range(args.idle):
                await task.deferLater(reactor, 0.05, lambda: None)
                text = "i%05d" % i
                start = time.perf_counter()
                await send(text)
                await wait_for([text])
                idle.append((stream.arrived[text] - start) * 1000)
            print("idle latency, %d single messages 50 ms apart: p50 %.1f ms, p99 %.1f ms, "
                  "max %.1f ms" % (args.idle, *percentiles(idle)))

        # 3. File relay.
        if args.file_mb:
            path = os.path.join(folder, "big.bin")
            with open(path, "wb") as f:
                for _ in range(args.file_mb):
                    f.write(os.urandom(1 << 20))
            with open(path, "rb") as f:
                code, uploaded = await call("POST", a.url + "files", alice, data=f,
                                            params={"name": "big.bin"})
            assert code == 200, uploaded
            await call("POST", a.url + "messages", alice, body={
                "recvID": "200@node-b", "messageType": "file",
                "content": {"fileID": uploaded["fileID"]}})
            await task.deferLater(reactor, 1.0, lambda: None)
            rss_before = rss_kb(b.proc.pid)
            got, first = [0], []

            def take(chunk):
                if not first:
                    first.append(time.perf_counter())
                got[0] += len(chunk)

            start = time.perf_counter()
            response = await treq.get(b.url + "files/" + uploaded["fileID"],
                                      headers={"Authorization": "Bearer " + bob})
            await treq.collect(response, take)
            elapsed = time.perf_counter() - start
            assert got[0] == args.file_mb << 20, got
            peak = rss_kb(b.proc.pid, "VmHWM")
            print("file relay: %d MB through B in %.2f s = %.0f MB/s (first download: fetch "
                  "from A, check, cache, serve; first byte after %.2f s); B RSS %d MB before, "
                  "peak %d MB (+%d MB)"
                  % (args.file_mb, elapsed, args.file_mb / elapsed, first[0] - start,
                     rss_before >> 10, peak >> 10, (peak - rss_before) >> 10))
    finally:
        await a.stop(reactor)
        await b.stop(reactor)
        print("TLS between the nodes (B's access log): %s" % b.negotiated())
        await management.stopService()
        shutil.rmtree(folder, ignore_errors=True)  # stores, logs: nothing is kept


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--conversations", type=int, default=16)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--file-mb", type=int, default=200)
    p.add_argument("--idle", type=int, default=200)
    p.add_argument("--no-access-log", action="store_true",
                   help="run the nodes with access_log = false")
    p.add_argument("--pipeline", type=int, default=8, metavar="N",
                   help="the nodes' outbox_pipeline (1: each lane one call at a time)")
    p.add_argument("--postgresql", metavar="URL",
                   help="a PostgreSQL server: each node on a new database of it")
    p.add_argument("--processes", type=int, default=1,
                   help="processes per node (with --postgresql)")
    p.add_argument("--profile", metavar="DIR",
                   help="py-spy profiles of the node processes during the many-conversation "
                        "throughput run")
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, p.parse_args())))
