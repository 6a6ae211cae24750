"""Two processes serving one node on one PostgreSQL (docs/scaling.md), one of them SIGKILLed
and restarted twice while another node sends them 5,000 messages over many conversations:
every message arrives once, each conversation in order, and every one reaches its recipient's
event stream, whichever process serves the stream."""

from __future__ import annotations

import json
import os
import signal

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred, maybeDeferred
from twisted.internet.task import deferLater
from twisted.web.client import HTTPConnectionPool

from imfed.devdefault import join_and_approve
from imfed.storage import migrate, run_sync
from imfed.node.store import users
from imfed.testing import postgresql_database

from conftest import ApiClient, RunningNode, add_user, join_node, node_config, wait_until
from test_node_crash import Daemon

pytestmark = pytest.mark.postgresql

CONVERSATIONS = 20
PER_CONVERSATION = 250  # 5,000 messages in all


def _fresh_connections():
    """A pool that makes a new connection per request: the kernel spreads them over the
    processes sharing the port (SO_REUSEPORT), so each stream is served by both."""
    return HTTPConnectionPool(reactor, persistent=False)


async def _stream(node: RunningNode, login: str, got: list, stop: Deferred) -> None:
    """``login``'s event stream on ``node`` (any process), its message texts into ``got``,
    until ``stop`` has fired and a poll came back empty; a refused or cut request (a process
    being killed) is simply made again."""
    client = ApiClient(node, login)
    pool = _fresh_connections()
    while True:
        try:
            if client.token is None:
                await client.login()
            response = await treq.get(
                node.client_url + "events", params={"since": str(client.last_event), "wait": "1"},
                headers={"Authorization": "Bearer " + client.token}, pool=pool, timeout=10)
            answer = json.loads(await treq.content(response))
        except Exception:
            await deferLater(reactor, 0.2, lambda: None)
            continue
        if response.code != 200:
            await deferLater(reactor, 0.2, lambda: None)
            continue
        client.last_event = answer["last"]
        for event in answer["events"]:
            if event["type"] == "message":
                info = event["data"]["messageInfo"]
                got.append((info["senderID"], info["messageID"], info["content"]["message"]))
        if stop.called and not answer["events"]:
            return


@pytest_twisted.ensureDeferred
async def test_two_processes_one_killed_twice_lose_nothing(management, tmp_path,
                                                           postgresql_server):
    folder = str(tmp_path / "a")
    database = postgresql_database(postgresql_server, "cluster_node_a")
    # (Senders and receivers are not friends: 250 messages each is over the daily limit on
    # strangers' messages, lifted here; this test is about crashes.)
    config = node_config(folder, "node-a", management, database=database,
                         outbox_retry_initial_seconds=0.2, outbox_retry_max_seconds=1.0,
                         stranger_messages_per_sender=10 ** 6,
                         stranger_messages_per_user=10 ** 6)
    await join_and_approve(reactor, management.role, config.node, "test")
    migrate(database, "node")
    receivers = ["139%08d" % i for i in range(CONVERSATIONS)]
    for phone in receivers:
        run_sync(database, users.add_user, "node-a", phone, "R" + phone,
                 users.hash_password("secret"), 1)
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    senders = []
    for i in range(CONVERSATIONS):
        add_user(b, "138%08d" % i, "S%d" % i)
        senders.append(await ApiClient(b, "138%08d" % i).login())

    config_path = os.path.join(folder, "imfed.toml")
    logs = [str(tmp_path / ("a%d.log" % i)) for i in range(2)]
    daemons = [Daemon(config_path, logs[0]).start(), Daemon(config_path, logs[1]).start()]
    node_a = RunningNode(config)
    stop = Deferred()
    try:
        await wait_until(lambda: _ready(node_a), timeout=60, what="A's two processes")
        await wait_until(lambda: b.role.directory.active("node-a"), what="B to know A")
        streams = [[] for _ in receivers]
        readers = [ensureDeferred(_stream(node_a, phone, streams[i], stop))
                   for i, phone in enumerate(receivers)]

        async def converse(i: int) -> None:
            for n in range(PER_CONVERSATION):
                await senders[i].ok("POST", "messages", {
                    "recvID": receivers[i] + "@node-a", "messageType": "text",
                    "content": {"message": "c%02d-%03d" % (i, n)}})

        sending = DeferredList([ensureDeferred(converse(i)) for i in range(CONVERSATIONS)],
                               fireOnOneErrback=True, consumeErrors=True)
        # While the messages flow, one process is killed and started again, twice.
        for victim in (0, 1):
            await _until_received(database, 1200 * (victim + 1))
            await daemons[victim].kill()
            await deferLater(reactor, 0.5, lambda: None)
            daemons[victim] = Daemon(config_path, logs[victim]).start()
        await sending
        total = CONVERSATIONS * PER_CONVERSATION
        await wait_until(lambda: _count(database) >= total, timeout=180,
                         what="all %d messages stored on A" % total)
        await wait_until(lambda: sum(map(len, streams)) >= total, timeout=60,
                         what="every message in its recipient's stream")
        await deferLater(reactor, 1.0, lambda: None)  # a duplicate would land by now
        stop.callback(None)
        await DeferredList(readers)

        # Stored once each, each conversation in the order it was sent.
        rows = run_sync(database, lambda cur: cur.execute(
            "SELECT sender_id, content FROM messages ORDER BY seq").fetchall())
        assert len(rows) == total
        for i in range(CONVERSATIONS):
            sent = ["c%02d-%03d" % (i, n) for n in range(PER_CONVERSATION)]
            stored = [json.loads(c)["message"] for s, c in rows if s == "138%08d@node-b" % i]
            assert stored == sent, "conversation %d stored out of order" % i
            # The stream shows each message once, in order, whichever process served it.
            shown = [text for _, _, text in streams[i]]
            assert shown == sent, "conversation %d streamed wrong" % i
        # The sender's queue is empty: every delivery was acknowledged.
        assert await b.role.outbox.depth() == 0
        # Both processes served event streams and took deliveries; neither logged an error.
        for log in logs:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            assert "GET /api/v1/events" in text and "POST /sns/chat" in text
            assert "Traceback" not in text, text[-3000:]
    finally:
        if not stop.called:
            stop.callback(None)
        for daemon in daemons:
            await daemon.kill(signal.SIGTERM)
        await b.stop()


def _count(database: str) -> int:
    return run_sync(database, lambda cur: cur.execute(
        "SELECT COUNT(*) FROM messages").fetchone()[0])


async def _until_received(database: str, n: int) -> None:
    await wait_until(lambda: _count(database) >= n, timeout=120, what="%d messages on A" % n)


async def _ready(node: RunningNode) -> bool:
    try:
        response = await treq.get(node.client_url.replace("/api/v1/", "/"), timeout=2)
        await treq.content(response)
        return True
    except Exception:
        return False


@pytest_twisted.ensureDeferred
async def test_what_processes_share_nonces_leases_and_notifications(postgresql_server):
    """The three things two processes of one node share, each seen from both sides: a nonce
    one took is refused by the other; a lease one holds the other cannot take until the holder
    is gone; a NOTIFY in one's transaction reaches the other's handler."""
    from imfed.cluster import EVENTS, Cluster, StoredNonces, notify
    from imfed.storage import Database

    database = postgresql_database(postgresql_server)
    one, two = (Database(database, "node", reactor) for _ in range(2))
    first, second = Cluster(database, reactor), Cluster(database, reactor)
    for service in (one, two, first, second):
        service.startService()
    try:
        mine, theirs = StoredNonces(one, 300_000), StoredNonces(two, 300_000)
        assert await mine.check_and_add("node-b", "ab" * 16, 1_000, 1_000) is True
        assert await theirs.check_and_add("node-b", "ab" * 16, 1_001, 1_000) is False
        assert await theirs.check_and_add("node-c", "ab" * 16, 1_001, 1_000) is True

        assert await first.claim("lane:node-b\nx") is True
        assert await second.claim("lane:node-b\nx") is False
        assert await second.claim("lane:node-b\ny") is True
        job_first, job_second = first.lease("directory"), second.lease("directory")
        assert await job_first() is True and await job_first() is True  # held, still held
        assert await job_second() is False
        await maybeDeferred(first.stopService)  # its connection closes: its leases go too
        assert await second.claim("lane:node-b\nx") is True
        assert await job_second() is True

        woken = []
        second.on(EVENTS, woken.append)
        await deferLater(reactor, 0.5, lambda: None)  # its LISTEN is in place
        await one.runInteraction(lambda cur: notify(cur, EVENTS, ["a@node-a", "b@node-a"]))
        await wait_until(lambda: woken, what="the notification")
        assert woken == [["a@node-a", "b@node-a"]]
    finally:
        for service in (second, first, two, one):
            if service.running:
                await maybeDeferred(service.stopService)
