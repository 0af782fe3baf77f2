"""A full disk while the analysts' copy is written (issue #19 item 5): the error says the disk is full and which
file, the previous copy stays as it was, and no temporary copy is left behind (neither the failed one nor one a
killed publish left earlier).

The disk is a 1 MB tmpfs mounted in a mount namespace of its own (`unshare --mount --map-root-user`), so the test
needs no root and changes nothing outside; where user namespaces are not allowed it is skipped with the reason.
Short version: `publish_analyst_copy` itself (tests/disk_full_child.py). Full version (`make chaos`): a whole
`mkpi backfill` whose analysts' copy is on the full disk: its publish step fails saying so, the CLI's fix line
talks about disk space (not an account), and nothing is left in the folder but what was there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests import battery

REPO = Path(__file__).resolve().parents[1]
LINE = "Disk full"
UNSHARE = shutil.which("unshare")


def in_small_disk(folder: Path, command: str, env: dict[str, str] | None = None,
                  size: str = "1m") -> subprocess.CompletedProcess:
    """`command` (a shell line) run in a new mount namespace where `folder` is a tmpfs of `size`."""
    if UNSHARE is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run([UNSHARE, "--mount", "--map-root-user", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are not allowed here: {probe.stderr.strip()}")
    folder.mkdir(parents=True, exist_ok=True)
    script = f"mount -t tmpfs -o size={size} tmpfs '{folder}' && {command}"
    return subprocess.run([UNSHARE, "--mount", "--map-root-user", "sh", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.battery(LINE)
def test_a_full_disk_says_so_keeps_the_previous_copy_and_leaves_no_temporary_copy(tmp_path):
    folder = tmp_path / "small-disk"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = in_small_disk(folder, f"exec '{sys.executable}' -m tests.disk_full_child '{folder}'", env)
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    # the first publish removed what a killed publish had left, and kept only its own copy
    assert outcome["after_first"] == ["kpis.duckdb"]
    assert outcome["error"] == "DiskFull"
    message = outcome["message"]
    assert message.startswith(f"the disk is full: no space left in {folder} to write the analysts' copy "
                              "kpis.duckdb;")
    assert "The previous copy is unchanged" in message and "the unfinished copy was removed" in message
    assert "MKPI_ANALYST_DB" in message
    assert "No space left on device" in outcome["cause"]  # DuckDB's own words stay in the chain (--debug)
    assert "CHECKPOINT during DETACH" not in message  # the misleading wording is no longer the message
    assert outcome["files"] == ["kpis.duckdb"]  # no .tmp, no .tmp.wal
    assert outcome["build_now"] == outcome["first_build"]  # analysts still read the previous copy, whole
    battery.count(LINE, "full-disk publishes", 1)
    battery.note(LINE, "publish on a full 1 MB disk: 'the disk is full' naming the folder and file, previous copy "
                       "kept, no temporary copy left (nor the one a killed publish had left)")


@pytest.mark.battery(LINE)
@pytest.mark.full  # a whole mkpi backfill publishing onto a full disk
def test_a_backfill_whose_analysts_copy_is_on_a_full_disk_says_free_space(tmp_path):
    from sandbox.launcher import start_sandbox
    from sandbox.world import World

    folder = tmp_path / "small-disk"
    with start_sandbox(World(seed=1, today=date(2026, 3, 31))) as sandbox:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MKPI_") and k != "DAGSTER_HOME"}
        env.update(sandbox.env)
        env.update(MKPI_DUCKDB_PATH=str(tmp_path / "work.duckdb"), MKPI_ANALYST_DB=str(folder / "kpis.duckdb"),
                   MKPI_DASHBOARD_PATH=str(tmp_path / "dashboard.html"), PYTHONPATH=str(REPO), COLUMNS="250")
        mkpi = Path(sys.executable).parent / "mkpi"
        child = in_small_disk(folder, f"'{mkpi}' backfill --source ga4 --start 2026-03-01 --end 2026-03-03; "
                                      f"echo \"exit=$?\"; ls -A '{folder}'", env, size="256k")
    lines = child.stdout.strip().splitlines()
    exit_line = next(line for line in lines if line.startswith("exit="))
    assert exit_line == "exit=1", child.stdout[-3000:] + child.stderr[-3000:]
    left = lines[lines.index(exit_line) + 1:]
    assert left == []  # nothing: no copy fitted, and the unfinished one was removed
    err = " ".join(child.stderr.split())
    assert "DiskFull: the disk is full: no space left in" in err and "kpis.duckdb" in err
    assert "fix: free space on the disk named above" in err
    assert "names the account" not in err
    battery.count(LINE, "backfills onto a full disk", 1)
