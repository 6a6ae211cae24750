"""twistd glue: ``twistd -n imfed [--config FILE]``."""

from __future__ import annotations

import signal
import sys

import attrs
from twisted.python import usage

from .config import ConfigError, default_config, load, parse_listen
from .storage import StoreError

__all__ = ["Options", "makeService"]


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = ("Run the imfed IM interconnection daemon: the management role, the node role, or "
                "both, as the config file names.  Without --config, a local development setup "
                "in ./imfed-data on 127.0.0.1.")
    optParameters = [
        ["config", "c", None, "TOML config file (see etc/ for commented examples)"],
        ["port-offset", None, "0", "without --config: add this to every port of the "
         "development default (to run a second one beside the first)"],
        ["metrics-listen", None, None, "IP:PORT for /health and /metrics instead of the "
         "config's [metrics] listen: one per process when several serve a node "
         "(docs/scaling.md)"],
    ]


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    from .service import make_service

    try:
        if options["config"]:
            config = load(options["config"])
        else:
            offset = options["port-offset"]
            if not offset.isascii() or not offset.isdigit():
                raise ConfigError("--port-offset", "must be a number")
            config = default_config(int(offset))
        if options["metrics-listen"]:
            config = attrs.evolve(config, metrics_listen=parse_listen(
                options["metrics-listen"], "--metrics-listen"))
        service = make_service(config, reactor)
        _on_hangup(reactor, options["config"], service)
        return service
    except (ConfigError, StoreError) as e:
        # twistd would print a traceback; a config mistake deserves one clear line.
        sys.stderr.write("imfed: %s\n" % e)
        raise SystemExit(2)


def _on_hangup(reactor, path: str | None, service) -> None:
    """SIGHUP (``systemctl reload``, logrotate's ``postrotate``) is not the end of the daemon,
    as its default action would make it: the log file is reopened (what twistd's SIGUSR1 does,
    with ``--logfile``) and the config's ``[log]`` levels are read again; access lists and
    directory changes are taken up without a signal; anything else needs a restart."""

    def hangup(signum, frame):
        reactor.callFromThread(_reload, path, service)

    signal.signal(signal.SIGHUP, hangup)


def _reload(path: str | None, service) -> None:
    from twisted.logger import Logger

    from .logs import set_levels

    log = Logger(namespace="imfed")
    rotate = signal.getsignal(signal.SIGUSR1)
    if callable(rotate):
        rotate(signal.SIGUSR1, None)  # twistd's own: reopens --logfile
    observer = getattr(service, "log_observer", None)
    if path and observer is not None:
        try:
            set_levels(observer.imfed_levels, load(path).log)
        except ConfigError as e:
            log.error("SIGHUP: {path} not read again ({error}); levels unchanged", path=path,
                      error=str(e))
            return
    log.info("SIGHUP: log file reopened{levels}; other changes need a restart",
             levels=", [log] levels read again from %s" % path if path and observer else "")
