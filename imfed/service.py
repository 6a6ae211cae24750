"""makeService: the whole service tree, in one place.

Each role lists its services in start order (its store first, its listeners after), and
InOrder stops them in reverse: the listeners close before the stores do.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from .adminapi import read_token
from .config import Config, Limits
from .crypto import signing
from .listening import InOrder, Listener, raise_file_limit
from .logs import log_observer
from .operations import operator_site

__all__ = ["make_service", "private_data_dir"]

log = Logger()


def private_data_dir(path: str) -> None:
    """Whatever the daemon writes from now on is its user's alone (umask 077: stores 0600,
    folders 0700), and the data folder and the folders and stores already in it are made so
    (a folder 0700 keeps out anything older inside it)."""
    os.umask(0o077)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
        elif entry.is_file(follow_symlinks=False) and entry.stat().st_mode & 0o077:
            os.chmod(entry.path, 0o600)


RUNNING_LOCK = "daemon.lock"
"""Held (shared: every process of a node) by a running daemon in its data folder, so that
`imfed restore` can tell that one runs there and refuse."""


class RunningLock(Service):
    """A shared lock on ``<data_dir>/daemon.lock`` from the daemon's making to its stop."""

    def __init__(self, data_dir: str) -> None:
        self.file = open(os.path.join(data_dir, RUNNING_LOCK), "a")
        fcntl.flock(self.file, fcntl.LOCK_SH)

    def stopService(self):
        super().stopService()
        if not self.file.closed:
            self.file.close()  # the lock goes with it


def make_service(config: Config, reactor) -> MultiService:
    top: Any = InOrder()  # the roles hang on it: top.management, top.node, top.dev
    raise_file_limit()
    private_data_dir(config.data_dir)
    RunningLock(config.data_dir).setServiceParent(top)  # first in, last out
    crypto_pool = signing.crypto.use(config.crypto_threads)
    if crypto_pool is not None:  # first in, last out: every role signs until it stops
        crypto_pool.setServiceParent(top)
    if config.management is not None:
        from .management.service import ManagementRole

        role = ManagementRole(config, reactor)
        for service in role.services(config.path("management-nonces.json")):
            service.setServiceParent(top)
        top.management = role
        log.info("management role {id} on https://{listen} (CA {fp})", id=role.config.server_id,
                 listen=config.management.listen, fp=role.ca.cert.fingerprint)
    if config.dev_nodes:
        from .devdefault import DevFederation

        dev = DevFederation(config, top.management, reactor)
        dev.setServiceParent(top)
        top.dev = dev
    if config.node is not None:
        from .node.service import NodeRole

        node = NodeRole(config, reactor)
        for service in node.services(config.path("node-nonces.json")):
            service.setServiceParent(top)
        top.node = node
        log.info("node role {id} on https://{listen}", id=config.node.server_id,
                 listen=config.node.listen)
    if config.metrics_listen is not None:
        fixed = [r for r in (getattr(top, "management", None), getattr(top, "node", None))
                 if r is not None]
        dev = getattr(top, "dev", None)
        # The development default's nodes come up after their join: asked for at each call.
        site = operator_site(lambda: fixed + (list(dev.nodes.values()) if dev else []),
                             config.metrics_hosts, read_token(config.admin_token_file))
        # Several processes on one PostgreSQL share the port unless each is given its own
        # (twistd imfed --metrics-listen): a scrape then sees the process that answered.
        shared = any(r.cluster.several for r in fixed)
        Listener(reactor, config.metrics_listen, site, Limits(), shared).setServiceParent(top)
        log.info("health and metrics on http://{listen}/health and /metrics",
                 listen=config.metrics_listen)
    if config.log.custom:
        top.log_observer = log_observer(config.log)
    return top
