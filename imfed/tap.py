"""twistd glue: ``twistd -n imfed [--config FILE]``."""

from __future__ import annotations

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
        return make_service(config, reactor)
    except (ConfigError, StoreError) as e:
        # twistd would print a traceback; a config mistake deserves one clear line.
        sys.stderr.write("imfed: %s\n" % e)
        raise SystemExit(2)
