"""`make bench`: every benchmark of issues #9 and #21, one table, docs/benchmarks.md and docs/benchmarks.json.

Baselines (bare DuckDB INSERT, dlt, the stock HubSpot models, the minimum request count, the latency lower
bound, the plain-Python pipeline) are measured in the same run as the figures they are compared with, never
copied. The latency benchmark runs last.

Parts can be re-measured alone: `--only load,kpi` runs those modules and REPLACES only their rows in
docs/benchmarks.json (each row keeps the commit and time it was measured at); docs/benchmarks.md is then
rewritten from the JSON alone, so the lead can measure parts on a quiet machine. `--runs N` overrides each
module's number of runs (medians of 5 by default) for a quick check; `--quick` shrinks every size for a smoke
run (its figures are not the documented ones, and the rows say so).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, machine, record, shown_row, table

FORMAT = 1


@dataclass(frozen=True)
class Step:
    """One benchmark module run: its short name (for `--only`), module and the arguments of each mode."""

    name: str
    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...]


# Every figure is a median of 5 runs (min-max beside it), at the sizes of issue #21.
PLAN: list[Step] = [
    Step("hubspot_parse", "bench.bench_hubspot_parse", ("--runs", "5", "--pages", "20"),
         ("--runs", "2", "--pages", "5")),
    Step("requests", "bench.bench_requests", ("--runs", "5"), ("--days", "30")),
    Step("load", "bench.bench_load", ("--sizes", "1000000,5000000,10000000", "--runs", "5"),
         ("--sizes", "100000", "--runs", "1", "--dlt-runs", "1")),
    Step("memory", "bench.bench_memory", ("--sizes", "1000000,5000000,10000000", "--runs", "5"),
         ("--sizes", "100000,300000", "--runs", "1")),
    Step("hubspot_upsert", "bench.bench_hubspot_upsert", ("--sizes", "20000,500000", "--runs", "5"),
         ("--sizes", "2000,20000", "--runs", "1", "--tail-pages", "5")),
    Step("search_console", "bench.bench_search_console", ("--days", "30", "--rows-per-day", "1000000", "--runs", "5"),
         ("--days", "3", "--rows-per-day", "60000", "--runs", "1")),
    Step("kpi", "bench.bench_kpi", ("--raw-rows", "10000000", "--runs", "5"),
         ("--raw-rows", "200000", "--runs", "1", "--days", "60")),
    Step("demo", "bench.bench_demo", ("--runs", "5", "--days", "90,365"), ("--runs", "1", "--days", "7")),
    Step("latency", "bench.bench_latency", ("--runs", "5", "--ga4", "3", "--search-console", "3",
                                             "--google-ads", "3", "--matomo", "3", "--hubspot-step"),
         ("--runs", "1", "--days", "30", "--ga4", "2", "--search-console", "2", "--google-ads", "2", "--matomo", "2")),
]

# What each module's figures are compared with and what they include (docs/benchmarks.md, issue #21 target 8);
# a row's own `size` and `includes` say more where it has them.
DESCRIPTIONS: dict[str, str] = {
    "requests": "A 365-day backfill of every report stream through the connectors against the sandbox (default "
                "accounts: 1 GA4 property, 1 site, 2 Ads customers, 1 Matomo site, 1 HubSpot portal). Requests are "
                "counted by the connectors' request statistics (retries included, so min-max shows any retry). "
                "Baseline: the minimum computed from the rows each stream and account returned (GA4 250,000 per "
                "page, Search Console 25,000, Google Ads one stream per customer, Matomo one bulk request per site, "
                "HubSpot 100 per list page, 1,000 deals per association batch read, one request for the portal "
                "details, one histogram per automated e-mail, one request per metadata list); also the per-day "
                "pattern (one request per day per stream per account).",
    "latency": "Every sandbox response delayed (100 ms), one sandbox process per platform, the five sources at "
               "once, one process each (as the multiprocess executor runs steps). Baseline: the lower bound "
               "computed per platform from its documented constraints (the longest cursor chain, the quota, the "
               "allowed concurrency; each constraint cited in bench/bench_latency.py; HubSpot's also the schedule "
               "its chains and its rolling quota allow together), the backfill's the largest. HubSpot's Dagster step "
               "(hubspot_portal: the portal read, load and cursors, as the pipeline runs it) is timed too, "
               "against the same bound.",
    "load": "Typed rows in pages through the loader into a fresh DuckDB file (delete window, insert, key check, "
            "commit, CHECKPOINT), then again onto the file holding them. Baselines: a bare streamed INSERT of the "
            "same rows, and dlt's fastest configuration (Arrow input, parquet files) with replace and merge.",
    "memory": "Peak RSS (VmHWM of a fresh child process) of a backfill of synthetic rows streamed page by page "
              "through the loader; the RSS after imports beside it.",
    "search_console": "A big site (the sandbox's `big_site` knob: Search Console's own limits, 25,000 rows per "
                      "request and 50,000 rows per day per search type per property, so 1M query rows a day "
                      "are 20 URL-prefix properties of one site) backfilled in one run: the queries stream of every "
                      "property through the connector (real discovery client over HTTP, sandbox in its own "
                      "process) and the loader into a fresh DuckDB file, in one child process whose VmHWM is the "
                      "peak RSS. Rows/s is rows loaded over the child's wall time from first request to commit.",
    "kpi": "The KPI SQL over 10M raw rows (a 365-day sandbox backfill copied with renamed accounts): every KPI "
           "table rebuilt, then one day re-read (changed raw rows) and recomputed; beside the same SQL run once "
           "by hand, and the full rebuild beside its lower bound: only writing the rows it stores.",
    "hubspot_upsert": "HubSpot records upserted by id in 100-record pages at 20k and 500k records: the loader "
                      "(pages staged, merged once per load) against the per-page delete it replaced, run here; "
                      "flat means the per-page cost at 500k over the same at 20k.",
    "hubspot_parse": "One real sandbox page of 100 contacts: the project's `json.loads` + `records_to_table` "
                     "(validation included) against the stock client's `ApiClient.deserialize` into its models.",
    "demo": "`make demo` through Dagster against the same work in one plain Python process (connectors, loader, "
            "KPI SQL, checks, publish); the split separates Dagster's bookkeeping from step work.",
}


def git_commit() -> str:
    """The commit the figures were measured at (`+dirty` when tracked files differ from it)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+dirty", "--abbrev=10"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def with_runs(args: Sequence[str], runs: int | None) -> list[str]:
    """The arguments with `--runs` set to `runs` (replaced, or added), unless `runs` is None."""
    out = list(args)
    if runs is None:
        return out
    if "--runs" in out:
        out[out.index("--runs") + 1] = str(runs)
    else:
        out += ["--runs", str(runs)]
    return out


def runs_of(args: Sequence[str]) -> int | None:
    """The `--runs` the module was given (None: its own default)."""
    return int(args[args.index("--runs") + 1]) if "--runs" in args else None


def size_of(args: Sequence[str]) -> str:
    """The sizes a module was run at, from its arguments (a row's own `size` is preferred)."""
    pairs = [f"{args[i][2:]} {args[i + 1]}" for i in range(0, len(args) - 1, 2)
             if args[i].startswith("--") and args[i] not in ("--runs", "--dlt-runs")]
    return ", ".join(pairs)


def run_step(step: Step, main: Callable[[list[str]], list[Row]], args: list[str], quick: bool,
             commit: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one module; its rows as JSON objects and what the Commands section says of it."""
    print(f"\n== {step.module} {' '.join(args)}", flush=True)
    load_start, start = os.getloadavg()[0], time.perf_counter()
    try:
        rows = main(args)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        rows = [Row(step.name, f"ERROR: {type(exc).__name__}: {str(exc)[:200]}", "-", ok=False)]
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    size = size_of(args) + (" (--quick: not the documented size)" if quick else "")
    objs = [record(r, module=step.name, runs=runs_of(args), size=size, commit=commit, measured_at=measured_at)
            for r in rows]
    info = {"module": step.name, "command": f".venv/bin/python -m {step.module} {' '.join(args)}",
            "seconds": round(time.perf_counter() - start, 1), "commit": commit, "measured_at": measured_at,
            "load_average": [round(load_start, 2), round(os.getloadavg()[0], 2)], "quick": quick}
    return objs, info


def _loader(step: Step) -> Callable[[list[str]], list[Row]]:
    """The module's `main`, imported only when it runs (a broken module fails its own rows only)."""
    def main(args: list[str]) -> list[Row]:
        return importlib.import_module(step.module).main(args)
    return main


def run(quick: bool, only: set[str] | None,
        runs: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the plan's steps (those named in `only`, else all); their row objects and command infos."""
    commit = git_commit()
    objs: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for step in PLAN:
        if only and step.name not in only:
            continue
        args = with_runs(step.quick if quick else step.full, runs)
        rows, info = run_step(step, _loader(step), args, quick, commit)
        objs.extend(rows)
        infos.append(info)
    return objs, infos


def merge(previous: dict[str, Any] | None, objs: list[dict[str, Any]], infos: list[dict[str, Any]],
          order: Sequence[str]) -> dict[str, Any]:
    """The JSON document after this run: the modules re-measured now replace ALL their earlier rows and
    commands; every other module's rows stay as they were (with their own commit and time). Rows are ordered
    by the plan's module order, a module's rows in the order it returned them."""
    measured = {o["module"] for o in objs} | {i["module"] for i in infos}
    kept = [o for o in (previous or {}).get("targets", []) if o.get("module") not in measured]
    kept_cmds = [c for c in (previous or {}).get("commands", []) if c.get("module") not in measured]
    rank = {name: i for i, name in enumerate(dict.fromkeys(order))}

    def position(item: tuple[int, dict[str, Any]]) -> tuple[int, int]:
        return rank.get(item[1].get("module", ""), len(rank)), item[0]

    targets = [o for _, o in sorted(enumerate(kept + objs), key=position)]
    commands = [c for _, c in sorted(enumerate(kept_cmds + infos), key=position)]
    return {"format": FORMAT, "written_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "targets": targets, "commands": commands}


def read_json(path: Path) -> dict[str, Any] | None:
    """The previous docs/benchmarks.json, or None (absent, or not this format: it is then rewritten whole)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == FORMAT else None


def markdown(doc: dict[str, Any]) -> str:
    """docs/benchmarks.md, written from the JSON document alone (issue #21 target 8: each figure's baseline,
    size and what it includes)."""
    rows = [shown_row(o) for o in doc["targets"]]
    objs = doc["targets"]
    passed = sum(1 for o in objs if o.get("met") is True)
    failed = sum(1 for o in objs if o.get("met") is False)
    lines = [f"| {o['target']} | {o['measure']} | {_baseline(o)} | {o['size'] or '-'} | "
             f"{o.get('includes') or 'see the module above'} | {o['commit']}, {o['measured_at']} |" for o in objs]
    notes = [f"- {r.target} / {r.what.strip()}: {n}" for r in rows for n in r.notes]
    described = list(dict.fromkeys(o["module"] for o in objs))
    sections = "\n".join(f"- **{m}**: {DESCRIPTIONS.get(m, 'see the module docstring.')}" for m in described)
    commands = "\n".join(f"{c['command']}    # {c['seconds']:.0f} s, {c['commit']}, {c['measured_at']}, load "
                         f"{c['load_average'][0]:.2f} -> {c['load_average'][1]:.2f}"
                         + (" (--quick)" if c.get("quick") else "") for c in doc["commands"])
    info = doc.get("machine", {})
    return f"""# Benchmarks (issues #9 and #21)

Written by `bench/run_all.py` (`make bench`) from `docs/benchmarks.json` on {doc['written_at']}; the same figures,
one object per row, are in that file for programs (`target`, `value`, `baseline`, `ratio`, `goal`, `met`, `size`,
`runs`, `min`, `max`, `commit`). Every baseline was measured in the same run as its figure; ratios are per run
(figure / same-run baseline), then the median, with min-max in brackets. Rows re-measured alone
(`bench/run_all.py --only NAME`) keep their own commit and time (the last table).

Goals met: {passed}, missed: {failed}.

Absolute times are the machine's (its load average at each module's start and end is under Commands); the
same-run ratios are what to read.

## Results

{table(rows)}

{chr(10).join(notes)}

## What each figure is compared with, its size and what it includes

{sections}

Each figure:

| target | measure | baseline | size | includes | measured at (commit, time) |
|---|---|---|---|---|---|
{chr(10).join(lines)}

## Machine and versions (of the last write)

{chr(10).join(f'- {k}: {v}' for k, v in info.items())}

## Commands

`make bench` installs the `bench` extra (`dlt[duckdb]`, `psutil`) and runs `bench/run_all.py`, which runs each
module below (seconds, commit, time and load average each). Each is runnable alone
(`PYTHONPATH=. .venv/bin/python -m bench.<module> --help`); `tests/test_bench_setup.py` and
`tests/test_bench_report.py` (in `make test`) check the setups and this report's format, never timings.

```
{commands}
```
"""


def _baseline(obj: dict[str, Any]) -> str:
    """What a figure is compared with, as the per-figure table says it."""
    shown = obj.get("shown", {}).get("baseline", "")
    if shown:
        return shown
    return "none: an absolute goal" if obj.get("goal") is not None else "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="",
                        help=f"comma-separated module names, of {', '.join(dict.fromkeys(s.name for s in PLAN))}: "
                             "re-measure those and replace only their rows")
    parser.add_argument("--runs", type=int, default=None, help="override every module's number of runs")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=None, help="the JSON file (default: beside --output, .json)")
    parser.add_argument("--no-doc", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    only = {s.strip().removeprefix("bench_") for s in args.only.split(",") if s.strip()} or None
    unknown = (only or set()) - {s.name for s in PLAN}
    if unknown:
        parser.error(f"unknown module(s) {', '.join(sorted(unknown))}; known: "
                     f"{', '.join(dict.fromkeys(s.name for s in PLAN))}")
    objs, infos = run(args.quick, only, args.runs)
    print("\n" + table([shown_row(o) for o in objs]))
    if not args.no_doc:
        md_path = Path(args.output)
        json_path = Path(args.json) if args.json else md_path.with_suffix(".json")
        doc = merge(read_json(json_path), objs, infos, [s.name for s in PLAN])
        json_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        md_path.write_text(markdown(doc), encoding="utf-8")
        print(f"\nwrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
