"""What the benchmark scripts share: a free loopback port, a config file."""

from __future__ import annotations

import socket


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_toml(data: dict, path: str) -> None:
    """A config dict as TOML (flat tables of strings and numbers)."""

    def value(v):
        return '"%s"' % v if isinstance(v, str) else repr(v)

    lines = ["%s = %s" % (k, value(v)) for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append("[%s]" % key)
            lines += ["%s = %s" % (k, value(v)) for k, v in table.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
