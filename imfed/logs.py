"""The daemon's log as ``[log]`` sets it (docs/operations.md): text or one JSON object per
line with stable keys, a level for everything and one per role.  twistd takes the observer
from the application (imfed/listening.py InOrder.setServiceParent), so twistd's own options
(``--logfile``, ``--syslog``) apply only when ``[log]`` is not set."""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any

from twisted.logger import (FilteringLogObserver, ILogObserver, LogLevel,
                            LogLevelFilterPredicate, formatEvent, textFileLogObserver)
from zope.interface import implementer

from .config import LogConfig

__all__ = ["log_observer", "set_levels", "JsonLines"]

_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn,
           "error": LogLevel.error, "critical": LogLevel.critical}


@implementer(ILogObserver)
class JsonLines:
    """One JSON object a line: ``time`` (ISO 8601, UTC), ``level``, ``namespace``,
    ``message`` and, for an error with a traceback, ``failure``."""

    def __init__(self, out) -> None:
        self.out = out

    def __call__(self, event: dict) -> None:
        level = event.get("log_level")
        record = {
            "time": datetime.datetime.fromtimestamp(event.get("log_time", 0),
                                                     datetime.timezone.utc)
            .isoformat(timespec="milliseconds"),
            "level": level.name if level is not None else "info",
            "namespace": event.get("log_namespace", "-"),
            "message": formatEvent(event),
        }
        failure = event.get("log_failure")
        if failure is not None:
            record["failure"] = failure.getTraceback()
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()


def log_observer(config: LogConfig, out=None) -> ILogObserver:
    out = out if out is not None else sys.stdout
    base = JsonLines(out) if config.format == "json" else textFileLogObserver(out)
    predicate = LogLevelFilterPredicate()
    set_levels(predicate, config)
    observer: Any = FilteringLogObserver(base, [predicate])  # type: ignore[arg-type,list-item]
    observer.imfed_levels = predicate  # what SIGHUP changes (set_levels)
    return observer


def set_levels(predicate: LogLevelFilterPredicate, config: LogConfig) -> None:
    """The levels of ``[log]`` on ``predicate``, in place of what it had."""
    predicate.clearLogLevels()
    predicate.defaultLogLevel = _LEVELS[config.level]
    for namespace, level in (("imfed.node", config.node_level),
                             ("imfed.management", config.management_level)):
        if level is not None:
            predicate.setLogLevelForNamespace(namespace, _LEVELS[level])
