"""Target 7: `make demo` wall time, split into Dagster start-up, extract, load, KPI and dashboard.

The demo (`python -m pipelines.demo`) runs in a child process with its own DAGSTER_HOME and data paths (never
the repository's data/). Inside the child, the loader is wrapped so the time spent pulling batches from a
connector (extract: requests and parsing) is told apart from the time spent writing them (load); the Dagster
event log gives each step's start and end, so KPI steps (kpi/*) and publishing (publish/*: analysts' copy
and dashboard) are timed from it. Start-up is everything before the first step starts: interpreter, imports,
sandbox, loading the definitions and launching the run. The rest (between steps, the summary) is "other".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, Sample, table

PARTS = ("startup", "extract", "load", "kpi", "dashboard", "other")


def child(days: int, started: float) -> None:
    """In the child: wrap the loader, run the demo, print the split as one JSON line."""
    import pipelines.lib.resources as resources
    from connectors import warehouse

    spent = {"extract": 0.0, "load_total": 0.0}
    original = warehouse.load_batches

    def timed_batches(batches: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                spent["extract"] += time.perf_counter() - start
                return
            spent["extract"] += time.perf_counter() - start
            yield batch

    def load_batches(conn: Any, batches: Iterable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return original(conn, timed_batches(batches))
        finally:
            spent["load_total"] += time.perf_counter() - start

    warehouse.load_batches = load_batches
    resources.load_batches = load_batches

    import dagster as dg

    from pipelines import demo

    code = demo.main(["--days", str(days)])
    end = time.time()
    steps: dict[tuple[str, str], list[float]] = {}  # (run id, step key): a step key recurs in both demo runs
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            for entry in instance.all_logs(run_id):
                event = entry.dagster_event
                if event is None or not entry.step_key:
                    continue
                if event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
                    steps.setdefault((run_id, entry.step_key), []).append(entry.timestamp)
    first_step = min((min(t) for t in steps.values()), default=end)
    kpi = sum(max(t) - min(t) for (_, k), t in steps.items() if k.startswith("kpi"))
    dashboard = sum(max(t) - min(t) for (_, k), t in steps.items() if k.startswith("publish"))
    split = {
        "code": code,
        "wall": end - started,
        "startup": first_step - started,
        "extract": spent["extract"],
        "load": spent["load_total"] - spent["extract"],
        "kpi": kpi,
        "dashboard": dashboard,
    }
    split["other"] = split["wall"] - sum(split[p] for p in PARTS if p != "other")
    print("DEMO_SPLIT " + json.dumps(split), flush=True)


def run_once(days: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="mkpi-bench-demo-"))
    try:
        home = workdir / "dagster_home"
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": str(home), "MKPI_DUCKDB_PATH": str(workdir / "marketing.duckdb"),
               "MKPI_ANALYST_DB": str(workdir / "kpis.duckdb"), "MKPI_DASHBOARD_PATH": str(workdir / "dash.html"),
               "PYTHONPATH": str(ROOT)}
        started = time.time()
        proc = subprocess.run([sys.executable, "-m", "bench.bench_demo", "--child", "--days", str(days),
                               "--started", repr(started)], cwd=ROOT, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("DEMO_SPLIT "):
                split = json.loads(line[len("DEMO_SPLIT "):])
                if split["code"] != 0:
                    raise RuntimeError(f"the demo failed: {proc.stderr[-2000:]}")
                return split
        raise RuntimeError(f"the demo child printed no split (exit {proc.returncode}): {proc.stderr[-3000:]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def measure(days: int, runs: int) -> list[Row]:
    splits = [run_once(days) for _ in range(runs)]
    wall = Sample(tuple(s["wall"] for s in splits))
    parts = ", ".join(f"{p} {Sample(tuple(s[p] for s in splits)).median:.1f}" for p in PARTS)
    rows = [Row("7 demo", f"make demo ({days} days) wall time", wall.show(" s"), "", "", "", None,
                notes=[parts])]
    for part in PARTS:
        sample = Sample(tuple(s[part] for s in splits))
        rows.append(Row("7 demo", f"  {part}", sample.show(" s"), "", f"{sample.median / wall.median:.0%} of wall"))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.days, args.started or time.time())
        return []
    result = measure(args.days, args.runs)
    print(table(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
