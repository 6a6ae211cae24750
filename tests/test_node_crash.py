"""A node process killed with SIGKILL while messages wait in its queue loses none of them and
delivers each exactly once, in order, after it restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from imfed.devdefault import join_and_approve

from conftest import REPO, ApiClient, RunningNode, add_user, join_node, node_config, wait_until
from test_node_delivery import _received

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


async def joined_config(management, folder: str, server_id: str):
    """Join through the real flow but leave starting the daemon to the caller."""
    config = node_config(folder, server_id, management)
    await join_and_approve(reactor, management.role, config.node, "test")
    return config


class Daemon:
    """``twistd -n imfed --config FILE`` as a child process, its log in a file."""

    def __init__(self, config_path: str, log_path: str) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", "imfed", "--config", self.config_path],
                env=dict(os.environ, PYTHONPATH=REPO), cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT)
        return self

    async def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            await wait_until(lambda: self.proc.poll() is not None, timeout=30,
                             what="the process to end")
        except AssertionError:
            self.proc.kill()  # never leave a daemon behind
            raise


@pytest_twisted.ensureDeferred
async def test_sigkill_with_queued_messages(management, tmp_path):
    a_config = await joined_config(management, str(tmp_path / "a"), "node-a")
    a_path = os.path.join(a_config.data_dir, "imfed.toml")
    b = await join_node(management, str(tmp_path / "b"), "node-b")
    await wait_until(lambda: b.role.directory.active("node-a"), what="B to know A")
    from imfed.node.store import users
    from imfed.storage import migrate, run_sync

    db = a_config.node.database
    migrate(db, "node")
    run_sync(db, users.add_user, "node-a", "100", "Alice", users.hash_password("secret"), 1)
    add_user(b, "200", "Bob")
    await b.stop()

    log_path = str(tmp_path / "node-a.log")
    daemon = Daemon(a_path, log_path).start()
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

        async def first_accepted():
            # A's very first directory query may still be on its way.
            status, _ = await alice.call("POST", "messages", {
                "recvID": "200@node-b", "messageType": "text", "content": {"message": texts[0]}})
            return status == 200

        await wait_until(first_accepted, what="A to know B")
        for text in texts[1:]:
            await alice.ok("POST", "messages", {"recvID": "200@node-b", "messageType": "text",
                                                "content": {"message": text}})
        await daemon.kill()                       # SIGKILL, 50 messages queued
        daemon = Daemon(a_path, log_path).start()  # A again...
        b = RunningNode(b.config).start()         # ...and B back
        await wait_until(lambda: len(_received(b, "100@node-a")) >= 50, timeout=60,
                         what="all 50 messages")
        await deferLater(reactor, 1.0, lambda: None)  # any duplicate would land by now
        assert _received(b, "100@node-a") == texts
    finally:
        await daemon.kill(signal.SIGTERM)
        if b.service is not None and b.service.running:
            await b.stop()
