"""A node process killed with SIGKILL while messages wait in its queue loses none of them and
delivers each exactly once, in order, after it restarts."""

from __future__ import annotations

import os
import signal
import sys

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater

from imfed.management import review, store
from imfed.node.join import application_fields, join

from conftest import REPO, ApiClient, RunningNode, add_user, join_node, node_config, wait_until
from test_node_delivery import _received

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


async def joined_config(management, folder: str, server_id: str):
    """Join through the real flow but leave starting the daemon to the caller."""
    config = node_config(folder, server_id, management)
    fields = application_fields(config.node, contactName="Ops",
                                contactEmail="ops@example.com", contactMobile="13500001111")
    d = ensureDeferred(join(reactor, config.node, management.ca.cert.fingerprint, fields,
                            poll_seconds=0.05))
    app = await wait_until(lambda: management.role.store.run(store.pending_for, server_id),
                           what="the application")
    await management.role.store.run(review.approve, app.application_id, management.ca,
                                    "test", 30, management.role.store.now_ms())
    await d
    return config


class Daemon:
    """``twistd -n imfed --config FILE`` as a child process."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self.transport = None

    def start(self):
        from twisted.internet.protocol import ProcessProtocol

        self.ended = []
        outer = self

        class Proto(ProcessProtocol):
            def processEnded(self, reason):
                outer.ended.append(reason)

        self.transport = reactor.spawnProcess(
            Proto(), TWISTD, [TWISTD, "-n", "--pidfile=", "imfed", "--config", self.config_path],
            env=dict(os.environ, PYTHONPATH=REPO), path=REPO)
        return self

    async def kill(self, sig=signal.SIGKILL):
        self.transport.signalProcess(sig)
        await wait_until(lambda: self.ended, what="the process to end")


@pytest_twisted.ensureDeferred
async def test_sigkill_with_queued_messages(management, tmp_path):
    a_config = await joined_config(management, str(tmp_path / "a"), "node-a")
    a_path = os.path.join(a_config.data_dir, "imfed.toml")
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    await wait_until(lambda: b.role.directory.active("node-a"), what="B to know A")
    from imfed.node import users
    from imfed.storage import migrate, run_sync

    db = a_config.path("node.sqlite3")
    migrate(db, "node")
    run_sync(db, users.add_user, "node-a", "100", "Alice", users.hash_password("secret"), 1)
    add_user(b, "200", "Bob")
    await b.stop()

    daemon = Daemon(a_path).start()
    try:
        node_a = RunningNode(a_config)
        alice = ApiClient(node_a, "100")

        async def logged_in():
            try:
                await alice.login()
                return True
            except Exception:
                return False

        await wait_until(logged_in, timeout=30, what="A's client API")
        texts = ["k%02d" % i for i in range(50)]
        for text in texts:
            await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                                "content": {"message": text}})
        await daemon.kill()                       # SIGKILL, 50 messages queued
        daemon = Daemon(a_path).start()           # A again...
        b = RunningNode(b.config).start()         # ...and B back
        await wait_until(lambda: len(_received(b, "100@node-a")) >= 50, timeout=60,
                         what="all 50 messages")
        await deferLater(reactor, 1.0, lambda: None)  # any duplicate would land by now
        assert _received(b, "100@node-a") == texts
    finally:
        await daemon.kill(signal.SIGTERM)
        if b.service is not None and b.service.running:
            await b.stop()
