"""The embedded development default (``twistd -n imfed`` with no config): the management role
plus two nodes on loopback, each joining through the same apply/approve flow as a real one,
approved automatically (here only), with demo users.  What it prints says how to reach them."""

from __future__ import annotations

import os

import attrs
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from .config import Config
from .management import review, store
from .management.service import ManagementRole
from .node.store import users
from .node.clients.join import application_fields, join
from .listening import InOrder
from .storage import run_sync

__all__ = ["DevFederation", "DEMO_USERS", "DEMO_PASSWORD", "join_and_approve"]

log = Logger()

DEMO_PASSWORD = "demo"
DEMO_USERS = {"node-a": [("13500000001", "Alice Demo")],
              "node-b": [("13600000002", "Bob Demo"), ("13600000003", "Carol Demo")]}


async def join_and_approve(reactor, management: ManagementRole, node_config,
                           operator: str) -> None:
    """Run a node's real join flow against a management role in this process, approving its
    application as soon as it arrives (development default, benchmarks, tests)."""
    fields = application_fields(node_config, contactName="Developer",
                                contactEmail="dev@example.com", contactMobile="13500000000",
                                serverName="%s (development)" % node_config.server_id)
    joining = ensureDeferred(join(reactor, node_config, management.ca.cert.fingerprint, fields,
                                  poll_seconds=0.05))
    registry = management.store
    while not joining.called:
        app = await registry.run(store.pending_for, node_config.server_id)
        if app is not None:
            await registry.run(review.approve, app.application_id, management.ca, operator,
                               management.config.cert_validity_days, registry.now_ms())
            break
        await deferLater(reactor, 0.02, lambda: None)
    await joining


class DevFederation(InOrder):
    """Joins each dev node once the management listener is up, then runs it."""

    def __init__(self, config: Config, management: ManagementRole, reactor) -> None:
        super().__init__()
        self.config, self.management, self.reactor = config, management, reactor
        self.nodes: dict = {}

    def startService(self) -> None:
        super().startService()
        d = ensureDeferred(self._bring_up())
        d.addErrback(self._failed)

    def _failed(self, failure) -> None:
        """Half a federation is no use: say why and stop."""
        if failure.check(SystemExit):  # a port taken: its one line says which
            log.critical("the development federation did not start: {why}",
                         why=failure.value.code)
        else:
            log.failure("the development federation did not start", failure)
        if self.reactor.running:
            self.reactor.stop()
        else:  # failed while twistd was still starting the services
            self.reactor.callWhenRunning(self.reactor.stop)

    async def _bring_up(self) -> None:
        for node_config in self.config.dev_nodes:
            if not os.path.exists(node_config.cert_file):
                await self._join(node_config)
            self._start(node_config)
        for node_config in self.config.dev_nodes:
            c = node_config
            log.info("{id}: web client http://{listen}/  client API http://{listen}/api/v1/  "
                     "demo users: {users} (password {pw})", id=c.server_id,
                     listen=c.client_listen,
                     users=", ".join("%s@%s" % (p, c.server_id)
                                     for p, _ in DEMO_USERS.get(c.server_id, [])),
                     pw=DEMO_PASSWORD)

    async def _join(self, node_config) -> None:
        await join_and_approve(self.reactor, self.management, node_config,
                               "dev-default (automatic approval)")
        log.info("{id} joined the development federation", id=node_config.server_id)

    def _start(self, node_config) -> None:
        from .node.service import NodeRole

        config = attrs.evolve(self.config, data_dir=os.path.dirname(node_config.key_file)
                              .rsplit(os.sep, 1)[0], management=None, node=node_config,
                              dev_nodes=())
        role = NodeRole(config, self.reactor)
        for server_id, phone_name in DEMO_USERS.items():
            if server_id != node_config.server_id:
                continue
            for phone, name in phone_name:
                if run_sync(role.db.path, users.find_user, phone) is None:
                    run_sync(role.db.path, users.add_user, server_id, phone, name,
                             users.hash_password(DEMO_PASSWORD), int(self.reactor.seconds()
                                                                     * 1000))
        for service in role.services(config.path("node-nonces.json")):
            service.setServiceParent(self)
        self.nodes[node_config.server_id] = role
