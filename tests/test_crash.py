"""Crash battery (issue #8): `kill -9` at 20 named points of a real run, then open, check, re-run, compare.

A child process (`tests/crash_child.py`) runs the pipeline against the sandbox servers this module starts
(every report source, HubSpot from its cursors, the KPI rebuild, the analysts' copy) and SIGKILLs itself
at one point: mid-request, mid-page, inside a load transaction, between COMMIT and CHECKPOINT, around the
HubSpot cursor write, inside the KPI rebuild, around the publish rename. After each kill:

- the DuckDB file opens read-write (DuckDB replays or drops its WAL);
- no committed HubSpot cursor is ahead of the rows it covers: every portal record last modified at or
  before a committed cursor is in the table (a cursor ahead would skip those records forever);
- the analysts' copy is the old one or the new one, whole (it opens and holds the complete tables);
  a half-built copy a kill leaves beside it is removed by the next publish;
- a re-run (this process, as the next scheduled run would) leaves every raw and KPI table with exactly
  the rows of an uninterrupted run (tests/checksums.py), and the analysts' copy too.

Most points start from the database an uninterrupted run left (a day's re-run, HubSpot incremental); the
ones marked cold start empty (first load, HubSpot full list, first cursor). Expected rows are the
uninterrupted run's, never read back from the crashed file.

`make test` (not the full battery: tests/battery.py full_mode) runs a short version: SHORT_POINTS, once, without
HubSpot (a cold full HubSpot list costs ~15 s per run); the other points are marked `full`. `make chaos` sets
MKPI_CRASH_REPEATS=5: all 20 points, 5 times each, HubSpot included.
"""

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.warehouse import connect
from sandbox.launcher import start_sandbox
from sandbox.world import World
from tests import battery
from tests.checksums import differences, table_checksums
from tests.crash_child import HUBSPOT_OBJECTS, POINTS, TODAY, pipeline_settings, run_pipeline
from tests.forkserver import writer_processes
from tests.sandboxes import start_servers

ROOT = Path(__file__).resolve().parent.parent
FULL = battery.FULL
REPEATS = int(os.environ.get("MKPI_CRASH_REPEATS") or "1")
WITH_HUBSPOT = FULL
# three places that need no HubSpot: mid-page (page 1 already in the open load transaction), between COMMIT
# and CHECKPOINT of a first load, the publish rename (~8 s of CPU each with the re-run)
SHORT_POINTS = ("ga4-page-2", "ga4-commit-checkpoint", "publish-before-rename")
CHILD_TIMEOUT = 300


@pytest.fixture(scope="module")
def children() -> Iterator[Any]:
    """The crash children's multiprocessing context: forks of one server that has imported tests.crash_child (the
    connectors, the loader, the KPI models; no connection or thread at import), stopped at the module's end. Each
    child is still a process of its own that SIGKILLs itself, without an interpreter importing the same modules
    each time (~0.5 CPU-s)."""
    with writer_processes(["tests.crash_child"]) as ctx:
        yield ctx


def _crash_child(argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked child: the test's environment and folder, its output to `log`, then the child's run to its
    point (tests/crash_child.py main, as `python -m tests.crash_child` runs it)."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    from tests.crash_child import main

    sys.exit(main(argv))


@pytest.fixture(scope="module")
def sandbox():
    # seed 5 is test_hubspot_e2e's world: the portal's records are built once per (seed, today) per session
    world = World(seed=5, today=TODAY)
    if not WITH_HUBSPOT:  # building the portal's 25,000 records alone takes ~10 s
        with start_servers(world, without=("hubspot",)) as running:
            yield running
        return
    with start_sandbox(world) as running:
        portal = running.server("hubspot")
        # throttling is the chaos battery's subject: here the portal answers as fast as it can
        portal.requests_per_10s = 1_000_000
        portal.search_per_second = 1_000_000
        # The portal restates the last 30 days' e-mail counters on every read (they really keep growing), so
        # two reads differ by design. Its clock is moved past that window: every read sees final counters,
        # and a re-run can be compared with the uninterrupted run (restatement is the idempotence battery's).
        portal.now_ms += 31 * 86_400_000
        yield running


def environment(sandbox, db: Path, analyst: Path) -> dict[str, str]:
    """The child's (and the re-run's) environment: no developer MKPI_* setting, the sandbox's endpoints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MKPI_")}
    env.update(sandbox.env)
    env.update(MKPI_DUCKDB_PATH=str(db), MKPI_ANALYST_DB=str(analyst), PYTHONPATH=str(ROOT))
    return env


def run_in_process(sandbox, db: Path, analyst: Path) -> None:
    settings = pipeline_settings(environment(sandbox, db, analyst))
    with connect(db) as conn:
        run_pipeline(conn, settings, with_hubspot=WITH_HUBSPOT)


def build_id(analyst: Path) -> str:
    conn = duckdb.connect(str(analyst), read_only=True)
    try:
        rows = conn.execute("SELECT build_id FROM meta.build").fetchall()
    finally:
        conn.close()
    assert len(rows) == 1
    return str(rows[0][0])


@dataclass(frozen=True)
class Uninterrupted:
    db: Path
    analyst: Path
    tables: dict[str, str]
    analyst_tables: dict[str, str]
    build_id: str


@pytest.fixture(scope="module")
def uninterrupted(sandbox, tmp_path_factory) -> Uninterrupted:
    folder = tmp_path_factory.mktemp("uninterrupted")
    db, analyst = folder / "work.duckdb", folder / "kpis.duckdb"
    run_in_process(sandbox, db, analyst)
    tables = table_checksums(db)
    assert tables["kpi.web_daily"].split(":")[0] != "0" and tables["ga4.traffic_by_channel"].split(":")[0] != "0"
    if WITH_HUBSPOT:
        assert tables["hubspot.contacts"].split(":")[0] != "0"
    return Uninterrupted(db, analyst, tables, table_checksums(analyst), build_id(analyst))


def selected_points() -> list[Any]:
    """Every kill point; those beyond SHORT_POINTS only in the full battery (they need the HubSpot portal)."""
    return [p if p.name in SHORT_POINTS else pytest.param(p, marks=pytest.mark.full, id=p.name)
            for p in POINTS.values()]


def check_cursors(conn: duckdb.DuckDBPyConnection, sandbox) -> int:
    """Every committed HubSpot cursor covers its rows: no portal record modified at or before it is missing."""
    has_cursors = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = '_mkpi' "
                               "AND table_name = 'cursors'").fetchone()[0]
    if not has_cursors:
        return 0
    cursors = dict(conn.execute("SELECT stream, value FROM _mkpi.cursors WHERE source = 'hubspot'").fetchall())
    store = sandbox.server("hubspot").store
    for object_type in (*HUBSPOT_OBJECTS, "deals"):
        if object_type not in cursors:
            continue
        cursor_ms = int(cursors[object_type])
        loaded = {r[0] for r in conn.execute(f'SELECT id FROM hubspot."{object_type}"').fetchall()}
        covered = {r.id for r in store.tables[object_type].records.values() if r.updated_ms <= cursor_ms}
        missing = covered - loaded
        assert not missing, f"cursor {object_type}={cursor_ms} is ahead of its rows: {len(missing)} records missing"
    return len(cursors)


@pytest.mark.battery("Crash")
@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("point", selected_points(), ids=lambda p: p.name)
def test_a_kill_leaves_a_usable_file_and_a_rerun_gives_the_uninterrupted_rows(point, repeat, sandbox, uninterrupted,
                                                                              children, tmp_path):
    db, analyst = tmp_path / "work.duckdb", tmp_path / "kpis.duckdb"
    if point.warm:
        shutil.copyfile(uninterrupted.db, db)
        shutil.copyfile(uninterrupted.analyst, analyst)
    argv, log = [point.name, *(["--with-hubspot"] if WITH_HUBSPOT else [])], tmp_path / "child.log"
    child = children.Process(target=_crash_child, args=(argv, environment(sandbox, db, analyst), str(log)))
    child.start()
    child.join(CHILD_TIMEOUT)
    if child.exitcode is None:
        child.kill()
        child.join()
    output = log.read_text(errors="replace")[-2000:] if log.exists() else "(no output)"
    assert child.exitcode == -signal.SIGKILL, (
        f"{point.name}: the child was not killed at its point (exit {child.exitcode}): {output}")
    battery.count("Crash", "kills", 1)
    if repeat == 0:
        battery.count("Crash", "points", 1)

    # the file opens read-write, and no cursor is ahead of its rows
    with connect(db, lock_timeout=10) as conn:
        conn.execute("SELECT count(*) FROM information_schema.tables").fetchone()
        battery.count("Crash", "cursors checked", check_cursors(conn, sandbox))

    # the analysts' copy is whole: the old one or the new one, never a half-written file
    if analyst.exists():
        assert table_checksums(analyst) == uninterrupted.analyst_tables
        if point.kind == "replace-after":
            assert build_id(analyst) != uninterrupted.build_id  # the new copy, swapped in whole
        elif point.warm:
            assert build_id(analyst) == uninterrupted.build_id  # still the old copy
    else:
        assert not point.warm
    half_built = list(tmp_path.glob(f".{analyst.name}.*.tmp*"))  # a copy being built when the kill came
    battery.count("Crash", "half-built copies left (removed by the re-run)", len(half_built))

    run_in_process(sandbox, db, analyst)  # the next run, in a new process
    assert differences(uninterrupted.tables, table_checksums(db)) == {}
    assert differences(uninterrupted.analyst_tables, table_checksums(analyst)) == {}
    assert list(tmp_path.glob(f".{analyst.name}.*.tmp*")) == []
    battery.count("Crash", "re-runs identical", 1)
