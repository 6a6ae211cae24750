"""Operator commands that work on a whole installation (docs/operations.md):

- ``imfed backup --to DIR``: a consistent copy while the daemon runs (each SQLite store through
  SQLite's online backup, then keys, certificates and files);
- ``imfed restore --from DIR``: that copy put back into a data folder (daemon stopped);
- ``imfed check SERVER_ID``: a peer tested as a federation tester would, step by step;
- ``imfed db migrate``: each role's store brought to this imfed's schema (SQLite or PostgreSQL);
- ``imfed db copy --to postgresql://...``: a role's SQLite store into PostgreSQL (daemon
  stopped), every row, saying how long it took (docs/scaling.md).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import time
from typing import Any

from .. import __version__
from ..service import RUNNING_LOCK
from ..config import ConfigError, load
from ..wire.errors import ApiError

__all__ = ["add_parsers", "backup", "restore", "MANIFEST"]

MANIFEST = "imfed-backup.json"
_SKIP = ("-wal", "-shm", "-journal", ".part", ".lock")


def _data_dir(args) -> str:
    if args.config:
        return load(args.config).data_dir
    return os.path.abspath(args.data_dir or "imfed-data")


def backup(data_dir: str, dest: str, skip: tuple[str, ...] = ()) -> dict:
    """Copy ``data_dir`` to ``dest`` (new or empty): every ``*.sqlite3`` with SQLite's online
    backup (a consistent snapshot while the daemon writes), then every other file (keys,
    certificates, uploaded and cached files).  Stores first: a file is on disk before its row
    is committed, so every file a copied store names is copied too.  The manifest says what
    was copied."""
    if not os.path.isdir(data_dir):
        raise ApiError("%s is not a data folder" % data_dir)
    if os.path.exists(dest) and os.listdir(dest):
        raise ApiError("%s is not empty: back up into a new folder" % dest)
    os.makedirs(dest, mode=0o700, exist_ok=True)
    os.chmod(dest, 0o700)  # keys and stores: the operator's alone, whatever made the folder
    started = time.time()
    stores, others = [], []
    for folder, dirs, names in os.walk(data_dir):
        dirs.sort()
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(folder, name), data_dir)
            if rel in skip or any(rel.startswith(s + "-") or rel.startswith(s + ".before-")
                                  for s in skip):
                continue  # a store the role no longer uses (moved to PostgreSQL)
            if name.endswith(".sqlite3"):
                stores.append(rel)
            elif not name.endswith(_SKIP):
                others.append(rel)
    for rel in stores:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        source = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, rel), uri=True)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
    size = 0
    for rel in others:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        try:
            shutil.copy2(os.path.join(data_dir, rel), target)
        except FileNotFoundError:
            continue  # removed meanwhile (a partial upload, a rotated nonce file)
        size += os.path.getsize(target)
    manifest = {"imfed": __version__, "from": data_dir, "time": int(started),
                "seconds": round(time.time() - started, 3), "stores": stores,
                "files": len(others), "bytes": size}
    with open(os.path.join(dest, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _daemon_running(data_dir: str) -> str | None:
    """The lock file of a daemon running on ``data_dir`` (or on a folder above it: the
    development default's nodes live inside its data folder), or None."""
    folder = os.path.abspath(data_dir)
    for _ in range(3):
        path = os.path.join(folder, RUNNING_LOCK)
        if os.path.exists(path):
            with open(path, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return path
                fcntl.flock(f, fcntl.LOCK_UN)
        folder = os.path.dirname(folder)
    return None


def restore(source: str, data_dir: str, force: bool = False) -> dict:
    """Put a backup made by :func:`backup` into ``data_dir`` (the daemon stopped); refused
    over an installation's stores unless ``force``, and refused while a daemon runs on the
    folder, ``force`` or not (its stores would be replaced under it).  Each restored store is
    checked."""
    running = _daemon_running(data_dir)
    if running is not None:
        raise ApiError("a daemon is running on %s (it holds %s): stop it first, then restore"
                       % (data_dir, running))
    try:
        with open(os.path.join(source, MANIFEST)) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        raise ApiError("%s is not an imfed backup (no %s)" % (source, MANIFEST)) from None
    existing = [s for s in manifest["stores"] if os.path.exists(os.path.join(data_dir, s))]
    if existing and not force:
        raise ApiError("%s already has %s: stop the daemon and give --force to replace it"
                       % (data_dir, ", ".join(existing)))
    for folder, dirs, names in os.walk(source):
        for name in dirs + names:
            # A backup holds files and folders only: a link would restore whatever it points
            # at (another user's key, /etc/shadow) into the data folder.
            if os.path.islink(os.path.join(folder, name)):
                raise ApiError("%s holds a symbolic link (%s): not an imfed backup, nothing "
                               "restored" % (source, os.path.relpath(os.path.join(folder, name),
                                                                     source)))
    for folder, _, names in os.walk(source):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), source)
            if rel == MANIFEST:
                continue
            target = os.path.join(data_dir, rel)
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            for stale in ("-wal", "-shm"):
                if os.path.exists(target + stale):
                    os.unlink(target + stale)
            shutil.copy2(os.path.join(folder, name), target)
    for rel in manifest["stores"]:
        conn = sqlite3.connect(os.path.join(data_dir, rel))
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
        if result != [("ok",)]:
            raise ApiError("%s does not pass SQLite's integrity check: %s" % (rel, result[:3]))
    return manifest


def _roles(args) -> list[tuple[str, Any]]:
    """(role, its config section) of the config file named, the roles it runs."""
    if not args.config:
        raise ConfigError("--config", "imfed db needs the daemon's config file")
    config = load(args.config)
    return [(name, section) for name, section in (("management", config.management),
                                                  ("node", config.node)) if section is not None]


def cmd_db_migrate(args) -> None:
    from ..storage import migrate, safe_location

    for role, section in _roles(args):
        print("%s store %s: schema version %d" % (role, safe_location(section.database),
                                                  migrate(section.database, role)))


def cmd_db_copy(args) -> None:
    import socket

    from ..storage import is_postgresql, safe_location
    from ..storage.copy import copy_to_postgresql

    if not is_postgresql(args.to):
        raise ConfigError("--to", "must be a postgresql:// URL")
    roles = [(r, s) for r, s in _roles(args) if args.role in (None, r)]
    if not roles:
        raise ConfigError("--role", "the config runs no %s role" % args.role)
    if len(roles) > 1:
        raise ConfigError("--role", "the config runs both roles: copy each into its own "
                          "database, --role node or --role management")
    role, section = roles[0]
    if is_postgresql(section.database):
        raise ConfigError("%s.database" % role, "is PostgreSQL already")
    # The daemon must be stopped: what it wrote after the copy would not be in PostgreSQL.
    with socket.socket(socket.AF_INET6 if ":" in section.listen.host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections: fine
        try:
            s.bind((section.listen.host, section.listen.port))
        except OSError:
            raise ApiError("%s:%d is in use: stop the daemon first (what it wrote after the "
                           "copy would not be in PostgreSQL)" % (section.listen.host,
                                                                section.listen.port)) from None
    print("copying the %s store %s to %s" % (role, section.database,
                                              safe_location(args.to)))
    done = copy_to_postgresql(section.database, args.to, role, progress=print)
    print("copied %d rows in %.1f s; now set database = \"%s\" in [%s] and start the daemon"
          % (done["rows"], done["seconds"], safe_location(args.to), role))


def cmd_backup(args) -> None:
    data_dir = _data_dir(args)
    stale: tuple[str, ...] = ()
    if args.config:
        from ..storage import is_postgresql

        # A role on PostgreSQL may have left its SQLite store behind (imfed db copy): that
        # file is out of date, and restored it would be taken for the store.
        stale = tuple("%s.sqlite3" % role for role, section in _roles(args)
                      if is_postgresql(section.database))
    manifest = backup(data_dir, os.path.abspath(args.to), stale)
    print("backed up %s to %s in %.1f s: %s, %d other files (%d bytes)" % (
        manifest["from"], args.to, manifest["seconds"], ", ".join(manifest["stores"]) or
        "no store", manifest["files"], manifest["bytes"]))
    if args.config:
        from ..storage import is_postgresql, safe_location

        for role, section in _roles(args):
            if is_postgresql(section.database):
                print("the %s store is PostgreSQL (%s): back it up with pg_dump"
                      % (role, safe_location(section.database)))


def cmd_restore(args) -> None:
    data_dir = _data_dir(args)
    manifest = restore(os.path.abspath(args.source), data_dir, args.force)
    print("restored the backup of %s (imfed %s) into %s; start the daemon" % (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(manifest["time"])),
        manifest["imfed"], data_dir))


def cmd_check(args) -> None:
    from twisted.internet import defer, task

    from .node import _node_config
    from .check import check

    config = _node_config(args)
    if config.node.management_url == "https://127.0.0.1":
        raise ConfigError("--config", "imfed check needs the node's config file")
    failed = []

    def report(step: str, ok: bool, detail: str) -> None:
        print("%-22s %s  %s" % (step, "ok    " if ok else "FAILED", detail), flush=True)
        if not ok:
            failed.append(step)

    try:
        task.react(lambda reactor: defer.ensureDeferred(check(reactor, config, args.server_id,
                                                              report)))
    except SystemExit as e:  # react ends with sys.exit, 0 when check() returned
        if e.code:
            raise
    if failed:
        raise ApiError("%s: %s failed" % (args.server_id, ", ".join(failed)))


def add_parsers(sub) -> None:
    b = sub.add_parser("backup", help="copy a data folder while the daemon runs (stores, "
                       "keys, certificates, files)")
    b.add_argument("--to", required=True, metavar="DIR", help="a new or empty folder")
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="put a backup back into a data folder (stop the daemon "
                       "first)")
    r.add_argument("--from", dest="source", required=True, metavar="DIR")
    r.add_argument("--force", action="store_true", help="replace the stores already there")
    r.set_defaults(func=cmd_restore)
    d = sub.add_parser("db", help="the stores: migrate them, copy SQLite into PostgreSQL")
    ds = d.add_subparsers(dest="command", required=True)
    m = ds.add_parser("migrate", help="bring each role's store to this imfed's schema")
    m.set_defaults(func=cmd_db_migrate)
    c = ds.add_parser("copy", help="copy a role's SQLite store into an empty PostgreSQL "
                      "database (stop the daemon first)")
    c.add_argument("--to", required=True, metavar="URL", help="postgresql://user@host/dbname")
    c.add_argument("--role", choices=("node", "management"),
                   help="which role's store, when the config runs both")
    c.set_defaults(func=cmd_db_copy)
    c = sub.add_parser("check", help="test a peer: directory entry, TLS handshake and "
                       "certificate, a signed round trip (node role)")
    c.add_argument("server_id", metavar="SERVER_ID")
    c.set_defaults(func=cmd_check)
