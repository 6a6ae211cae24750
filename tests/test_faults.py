"""Faults around the store and files (docs/security.md): a full disk, leftovers of a killed
daemon, a damaged store, data at rest, durable commits."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import pytest_twisted

from conftest import REPO, SQLITE, RunningNode, join_node, signed_up, start_management
from imfed.storage import StoreError


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest_twisted.ensureDeferred
async def test_disk_full_during_an_upload_answers_507_and_leaves_nothing(tmp_path):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a")
    files = a.role.file_dir
    # A 1 MiB file system over the node's files folder (root is needed: CI runs as root).
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", files],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, "cannot mount a small tmpfs: %s" % mounted.stderr
    try:
        alice = await signed_up(a, "100", "Alice")
        status, answer = await alice.call("POST", "files?name=big.bin", os.urandom(3 << 20))
        assert (status, answer["errcode"]) == (507, "disk_full"), answer
        assert os.listdir(files) == []
        # Room again: a small one goes in.
        status, answer = await alice.call("POST", "files?name=small.txt", b"small")
        assert status == 200, answer
    finally:
        await a.stop()
        subprocess.run(["umount", files], check=True)
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_partial_files_of_a_killed_daemon_are_removed_at_start(tmp_path):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a", **SQLITE)
    alice = await signed_up(a, "100", "Alice")
    kept = (await alice.ok("POST", "files?name=k.txt", b"kept"))["fileID"].split("@")[0]
    await a.stop()
    files = a.role.file_dir
    for name in ("0123abcd.part", "cache-9876.part"):
        with open(os.path.join(files, name), "wb") as f:
            f.write(b"half a file")
    a = RunningNode(a.config).start()
    try:
        assert sorted(os.listdir(files)) == [kept]
        # Data at rest is the daemon user's alone.
        assert _mode(a.config.data_dir) == 0o700
        assert _mode(a.role.db.path) == 0o600
        assert _mode(files) == 0o700
        assert _mode(os.path.join(files, kept)) == 0o600
        # Acknowledged writes are on disk at COMMIT: synchronous=FULL on the store's connection.
        rows = await a.role.db.runQuery("PRAGMA synchronous")
        assert rows == [(2,)]
    finally:
        await a.stop()
        await running.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_damaged_store_stops_the_start_with_one_clear_line(tmp_path):
    running = start_management(str(tmp_path / "m"))
    a = await join_node(running, str(tmp_path / "a"), "node-a", **SQLITE)
    await signed_up(a, "100", "Alice")
    await a.stop()
    await running.service.stopService()
    path = a.role.db.path
    size = os.path.getsize(path)
    assert size >= 6 * 4096
    with open(path, "r+b") as f:  # pages 3-5: tables and indexes, overwritten
        f.seek(2 * 4096)
        f.write(os.urandom(3 * 4096))
    with pytest.raises(StoreError, match="damaged"):
        RunningNode(a.config).start()
    # As the daemon: one line, no traceback, a non-zero exit.
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    done = subprocess.run([twistd, "-n", "--pidfile=", "imfed", "--config", a.config_path],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode != 0
    assert "is damaged" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_postgresql_store_that_cannot_be_reached_stops_the_start(tmp_path):
    """A role whose PostgreSQL is not there: one line naming the store (no password), no
    traceback, a non-zero exit."""
    from imfed.testing import free_port, write_toml

    nobody = free_port()
    config = write_toml({"data_dir": str(tmp_path / "d"), "management": {
        "listen": "127.0.0.1:%d" % free_port(),
        "database": "postgresql://imfed:secret@127.0.0.1:%d/imfed" % nobody}},
        str(tmp_path / "imfed.toml"))
    from imfed.storage import migrate

    with pytest.raises(StoreError, match="cannot open the node store"):
        migrate("postgresql://imfed:secret@127.0.0.1:%d/imfed" % nobody, "node")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    done = subprocess.run([twistd, "-n", "--pidfile=", "imfed", "--config", config],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode != 0
    assert "cannot open the management store" in done.stderr, done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr, done.stderr
