"""The benchmark scripts the README lists run to the end and print their figures (tiny sizes:
this checks the scripts, not the speed; no timing is asserted)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("script, args, expected", [
    ("sm2_speed.py", ["--seconds", "0.2", "--no-others"], b"sign"),
    ("directory_query.py", ["--servers", "200", "--runs", "1"], b"incremental"),
    ("node_messaging.py", ["--messages", "40", "--concurrency", "8", "--conversations", "4",
                           "--rate", "20", "--seconds", "1", "--file-mb", "2", "--idle", "5"],
     b"TLS between the nodes (B's access log): TLSv1.3/TLS_SM4_GCM_SM3"),
    ("tls_records.py", ["--seconds", "0.05"], b"TLCP ECDHE_SM4_GCM_SM3 (Tongsuo)"),
    ("large_group.py", ["--members", "300"], b"group_notify events stored"),
    ("group_fanout.py", ["--servers", "2", "--messages", "3"], b"N= 2 receiving servers"),
    pytest.param("webclient.py", ["--messages", "60", "--reloads", "1"], b"reload to a usable",
                 marks=pytest.mark.browser),
])
def test_bench_script_runs(script, args, expected):
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out.decode(errors="replace")[-3000:]
    assert expected in done.stdout, out.decode(errors="replace")[-3000:]


@pytest.mark.postgresql
def test_node_messaging_runs_on_postgresql_with_two_processes(postgresql_server):
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", "node_messaging.py"),
                           "--messages", "40", "--concurrency", "8", "--conversations", "4",
                           "--rate", "20", "--seconds", "1", "--file-mb", "2", "--idle", "5",
                           "--postgresql", postgresql_server, "--processes", "2"],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out.decode(errors="replace")[-3000:]
    assert b"CPU per message: A1 " in done.stdout and b" B2 " in done.stdout, out[-3000:]
    assert b"idle latency, 5 single messages" in done.stdout, out[-3000:]
