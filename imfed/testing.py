"""Helpers for the test suite and the benchmarks, which run imfed on loopback: a listening port
nobody else will take, and a config dict written as a TOML file."""

from __future__ import annotations

import random
import socket

__all__ = ["free_port", "write_toml"]

# Below Linux's ephemeral range (32768-60999): a port chosen here cannot be taken, between the
# choice and the listen, by one of the many outgoing connections a federation on loopback makes.
_LOW, _HIGH = 20000, 32767
_given: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not handed out before by this process."""
    for _ in range(1000):
        port = random.randint(_LOW, _HIGH)
        if port in _given:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _given.add(port)
        return port
    raise RuntimeError("no free loopback port between %d and %d" % (_LOW, _HIGH))


def write_toml(data: dict, path: str) -> str:
    """A config dict as a TOML file (flat tables of strings, numbers and booleans)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return '"%s"' % v if isinstance(v, str) else repr(v)

    lines = ["%s = %s" % (k, value(v)) for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append("[%s]" % key)
            lines.extend("%s = %s" % (k, value(v)) for k, v in table.items())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
