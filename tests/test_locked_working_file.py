"""Someone holding the working DuckDB file (issue #19 item 4): the run names the file, the holding process and the
fix, at once and after one wait, and the CLI's `fix:` line is about the lock, not an account.

The holder is another process with the working file open, as an analyst's notebook or the DuckDB CLI would have
it: read-only (the analyst's likely mistake) in the short version, read-write too in the full one. DuckDB names the
holder's PID in its lock error; the run says it in a warning as soon as it finds the file locked and fails after
LOCK_WAIT_SECONDS (2 s here, 60 s in production and in the full version), each later step of the run at once.
Nothing is written to the working file, and the backfill does not run its extra publish (it would wait again).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

import pipelines.lib.resources as resources
from pipelines.cli import main
from sandbox.world import World
from tests import battery
from tests.sandboxes import start_servers

FULL = battery.FULL
LINE = "Locked working file"
HOLDER = """
import sys, time
import duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "read-only")
print("open", flush=True)
time.sleep(900)
"""


@pytest.fixture(scope="module")
def sandbox():
    with start_servers(World(seed=1, today=date(2026, 3, 31)), without=("hubspot",)) as running:  # GA4 only
        yield running


@contextlib.contextmanager
def held(path: Path, mode: str) -> Iterator[subprocess.Popen]:
    """Another process with `path` open (read-only or read-write) until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


MODES = ["read-only", pytest.param("read-write", marks=pytest.mark.full)]


@pytest.mark.battery(LINE)
@pytest.mark.parametrize("mode", MODES)
def test_a_locked_working_file_names_the_holder_and_the_analysts_copy(sandbox, monkeypatch, tmp_path, caplog, mode):
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    wait = resources.LOCK_WAIT_SECONDS if FULL else 1.0  # the short version: the message and one wait, not its length
    monkeypatch.setattr(resources, "LOCK_WAIT_SECONDS", wait)
    working, analyst = Path(os.environ["MKPI_DUCKDB_PATH"]), Path(os.environ["MKPI_ANALYST_DB"])
    duckdb.connect(str(working)).close()  # the file exists, as after any earlier run
    before = working.read_bytes()
    with held(working, mode) as holder, caplog.at_level(logging.WARNING, logger="mkpi"):
        began = time.monotonic()
        code, out, err = run_cli("backfill", "--source", "ga4", "--start", "2026-03-01", "--end", "2026-03-03")
        elapsed = time.monotonic() - began
    assert code == 1, out + err
    flat = " ".join(err.split())
    who = f"PID {holder.pid} (python"
    assert f"WorkingFileLocked: the working DuckDB file {working} is locked by {who}" in flat
    assert f"still after {wait:.0f} s: close that program" in flat
    assert f"read the analysts' copy {analyst} instead, then re-run; nothing was written" in flat
    assert (f"fix: close the program named above, which has the working DuckDB file open (a notebook, BI tool or "
            f"DuckDB CLI): analysts read the analysts' copy {analyst}, never the working file") in flat
    assert "names the account" not in flat and "Traceback" not in flat
    # said at once, before the wait: the file and the process
    warnings = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert warnings and f"the working DuckDB file {working}: it is locked by {who}" in warnings[0]
    assert "publish" not in [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    assert working.read_bytes() == before  # nothing written
    battery.count(LINE, "backfills against a held working file", 1)
    battery.note(LINE, f"working file held {mode} by another process: the backfill named its PID and the analysts' "
                       f"copy, and failed after {elapsed:.0f} s with a {wait:.0f} s lock wait")
    # one wait for the whole run (the other steps fail at once), plus the run's own seconds
    assert elapsed < wait + 45
