"""Issue #21 target 1: `make demo` and a 365-day backfill through Dagster against the same work in plain Python.

Three ways of doing the demo's work, each in a fresh child process with its own data paths (never the repository's
data/), all against the demo's sandbox (pipelines/demo.py `demo_sandbox`, the same seeded shop):

- `plain`: the baseline. The connectors, the loader, the KPI SQL, the checks, the objectives, the analysts' copy,
  the dashboard and the alerts called directly from one Python process, in the demo's order (HubSpot, then the
  report sources over the backfill window, then the last two days), no Dagster at all.
- `sqlite`: `python -m pipelines.demo --days N` on a DAGSTER_HOME holding the project's dagster.yaml (SQLite).
  Like the baseline, the demo keeps its working DuckDB file open while its runs execute (pipelines/demo.py
  `working_file_held`); every step still opens and closes its own connection.
- `postgres`: the same on a PostgreSQL instance (deploy/dagster.yaml's storage; a local server started for the
  benchmark as tests/postgres.py starts one for the tests).

Each Dagster run's wall time is split by wrapping, inside the child: run creation (`DagsterInstance.create_run`,
which writes the planned events), event writes (the event log storage's `store_event` / `store_event_batch`
outside run creation), extract (pulling batches from a connector) and load (writing them); the rest of the steps'
time (KPI SQL, checks, publish, alerts) is "steps"; "startup" is interpreter, imports, sandbox and definitions
before the first run; "other" is what is left (the executor between steps, the summary). Bookkeeping = run
creation + event writes. The ratio is per run (Dagster wall / plain wall of the same repetition, so machine noise
cancels); medians of N, min-max beside them. Goal (issue #21): at most 1.3x at 90 and 365 days.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.common import ROOT, Row, Sample, ratio_sample, table

GOAL = 1.3
MODES = ("plain", "sqlite", "postgres")
PARTS = ("startup", "run_creation", "event_writes", "extract", "load", "steps", "other")


class Timers:
    """Seconds spent inside wrapped functions, by name; nested calls of one name count once."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.depth: dict[str, int] = {}

    def wrap(self, name: str, fn: Callable[..., Any], skip_inside: str | None = None) -> Callable[..., Any]:
        # functools.wraps: the wrapped method's source stays readable through `__wrapped__`, so the code location's
        # patches, installed only over the Dagster methods they were written against (pipelines/lib/event_storage.py
        # `written_against`), still recognise Dagster's methods wrapped here
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth.get(name) or (skip_inside and self.depth.get(skip_inside)):
                return fn(*args, **kwargs)
            self.depth[name] = 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - start
                self.depth[name] = 0
        return timed

    def get(self, name: str) -> float:
        return self.spent.get(name, 0.0)


def wrap_loader(timers: Timers) -> None:
    """Tell extract (pulling batches from a connector) from load (writing them) wherever the loader is called."""
    import pipelines.lib.resources as resources
    from connectors import warehouse

    original = warehouse.load_batches

    def timed_batches(batches: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                timers.spent["extract"] = timers.get("extract") + time.perf_counter() - start
                return
            timers.spent["extract"] = timers.get("extract") + time.perf_counter() - start
            yield batch

    def load_batches(conn: Any, batches: Iterable[Any]) -> Any:
        start = time.perf_counter()
        try:
            return original(conn, timed_batches(batches))
        finally:
            timers.spent["load_total"] = timers.get("load_total") + time.perf_counter() - start

    warehouse.load_batches = load_batches
    resources.load_batches = load_batches


def wrap_dagster(timers: Timers) -> None:
    """Time run creation (planned events included) and every event write outside it, whatever the storage."""
    import dagster as dg
    from dagster._core.instance.runs.run_domain import RunDomain
    from dagster._core.storage.event_log.base import EventLogStorage

    # every way of creating a run (execute_in_process, a launch) ends in RunDomain.create_run, which writes the
    # planned events; the instance's create_run_for_job builds the execution plan first (also run creation)
    RunDomain.create_run = timers.wrap("run_creation", RunDomain.create_run)
    dg.DagsterInstance.create_run_for_job = timers.wrap("run_creation", dg.DagsterInstance.create_run_for_job)
    import dagster._core.storage.event_log.sqlite  # noqa: F401 - load the storages so their classes are wrapped
    try:
        import dagster_postgres  # noqa: F401
    except ImportError:
        pass
    storages: set[type] = set()
    pending: list[type] = [EventLogStorage]
    while pending:
        cls = pending.pop()
        storages.add(cls)
        pending.extend(cls.__subclasses__())
    for cls in storages:
        for method in ("store_event", "store_event_batch"):
            if method in vars(cls):
                setattr(cls, method, timers.wrap("event_writes", vars(cls)[method], skip_inside="run_creation"))
    # the code location, when it is imported, puts the pipeline's own batch writes (a range step's per-day
    # materialisations, pipelines/lib/event_storage.py `install`) in place of Dagster's methods wrapped above: wrap
    # those too, or their time would be counted as step work
    from pipelines.lib import event_storage

    for name in ("store_event_batch", "store_event_batch_in_memory"):
        setattr(event_storage, name, timers.wrap("event_writes", getattr(event_storage, name),
                                                 skip_inside="run_creation"))
    # and the PostgreSQL storage's, which install() takes from event_storage.PG_PATCHES (the code location installs
    # again when it is imported: the wrapped ones must be those it installs)
    for index, (cls, name, ours, dagsters) in enumerate(event_storage.PG_PATCHES):
        if name in ("store_event", "store_event_batch"):
            event_storage.PG_PATCHES[index] = (cls, name, timers.wrap("event_writes", ours,
                                                                      skip_inside="run_creation"), dagsters)
    event_storage.install()


def dagster_child(days: int, started: float) -> dict[str, float]:
    """In the child: the demo through Dagster, timed part by part."""
    timers = Timers()
    wrap_loader(timers)
    wrap_dagster(timers)
    import dagster as dg

    from pipelines import demo

    code = demo.main(["--days", str(days)])
    end = time.time()
    steps: dict[tuple[str, str], list[float]] = {}  # (run id, step key): a step key recurs in several demo runs
    with dg.DagsterInstance.get() as instance:
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START,
                                                            dg.DagsterEventType.STEP_SUCCESS,
                                                            dg.DagsterEventType.STEP_FAILURE}):
                if entry.step_key:
                    steps.setdefault((run_id, entry.step_key), []).append(entry.timestamp)
    first_step = min((min(t) for t in steps.values()), default=end)
    in_steps = sum(max(t) - min(t) for t in steps.values())
    split = {"code": code, "wall": end - started, "startup": first_step - started,
             "run_creation": timers.get("run_creation"), "event_writes": timers.get("event_writes"),
             "extract": timers.get("extract"), "load": timers.get("load_total") - timers.get("extract")}
    # step work besides extract and load (KPI SQL, checks, publish, alerts): the steps' time less what was timed
    # inside them (event writes happen inside steps too; run creation never does)
    split["steps"] = max(0.0, in_steps - split["extract"] - split["load"] - split["event_writes"])
    split["other"] = split["wall"] - sum(split[p] for p in PARTS if p != "other")
    split["cpu"] = _cpu_seconds()
    return split


def _cpu_seconds() -> float:
    """This process's CPU time and its finished children's (user + system): on a busy machine, where wall time
    mostly measures the wait for a core, the work each way does."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def plain_child(days: int, started: float) -> dict[str, float]:
    """In the child: the demo's work with no Dagster (the baseline)."""
    timers = Timers()
    wrap_loader(timers)
    from datetime import datetime

    from connectors.settings import load_settings
    from pipelines import demo

    settings = load_settings()
    start, end = demo.demo_window(days, datetime.now(settings.tz).date())
    with demo.demo_sandbox(start, end, settings.duckdb_path):
        first_work = time.time()
        plain_pipeline(start, end)
        demo.print_summary(load_settings().warehouse, start, end)
    finish = time.time()
    split = {"code": 0, "wall": finish - started, "startup": first_work - started, "run_creation": 0.0,
             "event_writes": 0.0, "extract": timers.get("extract"),
             "load": timers.get("load_total") - timers.get("extract")}
    split["steps"] = max(0.0, finish - first_work - split["extract"] - split["load"])
    split["other"] = 0.0
    split["cpu"] = _cpu_seconds()
    return split


def plain_pipeline(start: Any, end: Any) -> None:
    """HubSpot, then the report sources over each of the demo's windows, each followed by the KPI tables, checks,
    objectives, analysts' copy, dashboard and alerts, as the demo's Dagster runs do; the same library calls."""
    from connectors.settings import load_settings
    from connectors.warehouse import open_warehouse
    from pipelines import demo

    settings = load_settings()
    with open_warehouse(settings.warehouse) as conn:
        _plain_hubspot(conn, settings)
        _plain_publish(conn, settings, end)
        for first, last in demo.refresh_windows(start, end):
            _plain_report_sources(conn, settings, first, last)
            _plain_publish(conn, settings, last)
            _plain_alerts(conn, settings, last)


def _plain_hubspot(conn: Any, settings: Any) -> None:
    from datetime import datetime

    from connectors import registry
    from connectors.batches import Window
    from connectors.hubspot import SOURCE, connect
    from connectors.warehouse import load_batches, read_cursor, table_exists
    from kpi_models.context import KpiContext
    from kpi_models.layer import create_rollup_views, rebuild_hubspot_kpi_daily
    from kpi_models.runner import MODELS, rebuild

    if not registry.source(SOURCE).configured(settings):
        return
    connector = connect(settings)
    connector.check()
    today = datetime.now(settings.tz).date()
    window = Window(today, today)
    for object_type in ("contacts", "companies", "feedback_submissions", "deals"):
        load_batches(conn, connector.fetch_objects(object_type, read_cursor(conn, SOURCE, object_type, "portal"),
                                                   window))
    load_batches(conn, [*connector.fetch_owners(window), *connector.fetch_deal_stages(window),
                        *connector.fetch_account_details(window)])
    known = {r[0] for r in conn.execute("SELECT email_id FROM hubspot.email_statistics").fetchall()} if (
        table_exists(conn, "hubspot.email_statistics")) else set()
    load_batches(conn, connector.fetch_email_statistics(window, known_ids=known))
    context = KpiContext.from_settings(settings)
    for model in MODELS.values():
        if model.partition_column is None and any(s.schema_name == SOURCE for s in model.inputs):
            rebuild(conn, model, None, context, sources=model.sources, isolate_sources=True)
    rebuild_hubspot_kpi_daily(conn, context)
    create_rollup_views(conn)


def _plain_report_sources(conn: Any, settings: Any, first: Any, last: Any) -> None:
    from connectors import registry
    from connectors.batches import Window
    from connectors.parallel import AccountLog
    from connectors.warehouse import load_batches
    from kpi_models import checks
    from kpi_models.context import KpiContext
    from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
    from kpi_models.reconciliation import Site, rebuild_reconciliation
    from kpi_models.runner import MODELS, GeneratedKpiModel, rebuild
    from pipelines.components.source_assets import source_component
    from pipelines.defs.kpi.checks import kpi_table_problems

    window = Window(first, last)
    codes = [c for c in registry.codes("report") if registry.source(c).configured(settings)]
    streams = []
    for code in codes:
        component = source_component(code)
        hooks = component.source_hooks()
        connector = hooks.spec.connector_module().connect(settings)
        hooks.account_ids(connector)
        source_streams = list(component.raw_streams())
        streams += source_streams
        groups = [[s] for s in source_streams] if component.step == "per_stream" else [source_streams]
        for group in groups:
            load_batches(conn, hooks.batches(connector, group, window, AccountLog(code)))
        for rule in component.row_checks:
            conn.execute(f"SELECT count(*) FROM {rule.table} WHERE {rule.violation}").fetchone()
    checks.check_raw_contract(conn, streams)
    context = KpiContext.from_settings(settings)
    for model in MODELS.values():
        if isinstance(model, GeneratedKpiModel) or model.partition_column is None:
            continue
        rebuild(conn, model, window, context, sources=model.sources, isolate_sources=True)
        kpi_table_problems(conn, model, window, model.sources)
    rebuild_kpi_daily(conn, window, context, sources=registry.codes("report"), isolate_sources=True)
    create_rollup_views(conn)
    checks.run_all_checks(conn, window, settings.reporting_timezone)
    sites = [Site(s.name, s.ga4_property, s.matomo_site, s.search_console_site, s.google_ads_customers)
             for s in settings.reconciliation.sites]
    rebuild_reconciliation(conn, window, sites, settings.reconciliation.bands)


def _plain_publish(conn: Any, settings: Any, as_of: Any) -> None:
    from connectors.publish import publish_analyst_copy
    from kpi_models.dashboard import write_settings_dashboard
    from kpi_models.objectives import build_kpi_vs_objective

    build_kpi_vs_objective(conn, settings.objectives_path, tz=settings.reporting_timezone,
                           min_denominators=settings.min_denominators)
    publish_analyst_copy(conn, settings.analyst_db, run_id="plain")
    write_settings_dashboard(conn, settings)


def _plain_alerts(conn: Any, settings: Any, as_of: Any) -> None:
    from kpi_models.alert_delivery import deliver
    from kpi_models.alerts import configured_accounts, evaluate
    from kpi_models.dashboard import dashboard_path, write_settings_dashboard

    if not settings.alerts.enabled:
        return
    evaluation = evaluate(conn, settings.alerts, as_of, min_denominators=settings.min_denominators,
                          configured=configured_accounts(settings))
    deliver(conn, settings.alerts, evaluation.created_at, as_of)
    if dashboard_path().exists():  # as the digest step does: the published page again, with the day's alerts
        write_settings_dashboard(conn, settings)


@contextmanager
def postgres_instance(workdir: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL server for the Dagster instance (tests/postgres.py), and the variables deploy/dagster.yaml
    reads; one database per run is created by `run_once`."""
    from tests.postgres import postgres_server

    with postgres_server(workdir / "pg") as server:
        yield {"DAGSTER_PG_HOST": server.host, "DAGSTER_PG_PORT": str(server.port),
               "DAGSTER_PG_USERNAME": server.user, "DAGSTER_PG_PASSWORD": ""}


def run_once(mode: str, days: int, pg: dict[str, str] | None = None, serial: int = 0) -> dict[str, float]:
    """One child process doing the demo's work `mode`'s way; its split."""
    workdir = Path(tempfile.mkdtemp(prefix=f"mkpi-bench-demo-{mode}-"))
    try:
        home = workdir / "dagster_home"
        home.mkdir()
        env = {**os.environ, "DAGSTER_HOME": str(home), "MKPI_DUCKDB_PATH": str(workdir / "marketing.duckdb"),
               "MKPI_ANALYST_DB": str(workdir / "kpis.duckdb"), "MKPI_DASHBOARD_PATH": str(workdir / "dash.html"),
               "MKPI_ALERTS_DIGEST_FILE": str(workdir / "digest.md"), "PYTHONPATH": str(ROOT)}
        if mode == "postgres":
            if pg is None:
                raise ValueError("the postgres mode needs a server")
            from tests.postgres import Postgres

            server = Postgres(pg["DAGSTER_PG_HOST"], int(pg["DAGSTER_PG_PORT"]), pg["DAGSTER_PG_USERNAME"],
                              "postgres")
            database = f"bench_{serial}_{days}"
            server.create_database(database)
            env.update(pg, DAGSTER_PG_DB=database)
            shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
        else:
            shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        if mode != "plain":  # the duckdb_write pool's slot, as make demo creates it
            subprocess.run([sys.executable, "-m", "dagster", "instance", "concurrency", "set", "duckdb_write", "1"],
                           cwd=ROOT, env=env, capture_output=True, check=False)
        server_before = server_cpu_seconds(server) if mode == "postgres" else None
        started = time.time()
        proc = subprocess.run([sys.executable, "-m", "bench.bench_demo", "--child", mode, "--days", str(days),
                               "--started", repr(started)], cwd=ROOT, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("DEMO_SPLIT "):
                split = json.loads(line[len("DEMO_SPLIT "):])
                if split["code"] != 0:
                    raise RuntimeError(f"the {mode} demo failed: {proc.stderr[-2000:]}")
                if server_before is not None:
                    _wait_for_backends_to_end(server, database)
                    server_after = server_cpu_seconds(server)
                    if server_after is not None:
                        split["server_cpu"] = server_after - server_before
                return split
        raise RuntimeError(f"the {mode} child printed no split (exit {proc.returncode}): {proc.stderr[-3000:]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def server_cpu_seconds(server: Any) -> float | None:
    """CPU seconds (user + system) the PostgreSQL server has spent so far: its postmaster, the backends it has reaped
    (every connection the demo opened and closed) and its live processes; None where /proc cannot tell. The server
    works for the Dagster instance (a new backend process per connection, every statement), so the postgres mode's
    CPU is the demo process's plus this."""
    try:
        postmaster = int((Path(server.psql("SHOW data_directory")) / "postmaster.pid").read_text().split()[0])
        ticks = _proc_ticks(postmaster, reaped=True)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _proc_stat(int(entry.name))[1] == postmaster:
                ticks += _proc_ticks(int(entry.name))
    except (OSError, ValueError, IndexError, subprocess.CalledProcessError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[int]:
    """/proc/PID/stat's numeric fields after the state, stat(5)'s field N at index N - 3 (1: ppid, 11: utime); [0, 0]
    for a process gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return [0, 0]
    return [0, *[int(f) for f in fields[1:]]]


def _proc_ticks(pid: int, reaped: bool = False) -> int:
    """Clock ticks of user + system time of a process (and of its waited-for children, if `reaped`)."""
    stat = _proc_stat(pid)
    if len(stat) < 15:
        return 0
    return stat[11] + stat[12] + ((stat[13] + stat[14]) if reaped else 0)


def _wait_for_backends_to_end(server: Any, database: str) -> None:
    """Until the demo's connections' backends have exited (they end just after the process that held them), 5 s at
    most, so that their CPU is the postmaster's reaped children's."""
    deadline = time.time() + 5
    while time.time() < deadline and int(server.psql(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'") or 0):
        time.sleep(0.1)


def measure(days: int, runs: int, modes: Sequence[str], pg: dict[str, str] | None) -> list[Row]:
    """`runs` repetitions, each running every mode once (so a repetition's ratio compares neighbours in time)."""
    splits: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for repetition in range(runs):
        for mode in modes:
            splits[mode].append(run_once(mode, days, pg, serial=repetition))
    plain = [s["wall"] for s in splits["plain"]]
    rows = [Row("1 dagster overhead", f"plain Python, {days} days (baseline)", Sample(tuple(plain)).show(" s"),
                notes=[_parts(splits["plain"])])]
    for mode in modes:
        if mode == "plain":
            continue
        wall = [s["wall"] for s in splits[mode]]
        ratio = ratio_sample(wall, plain)
        rows.append(Row("1 dagster overhead", f"make demo via Dagster ({mode} instance), {days} days",
                        Sample(tuple(wall)).show(" s"), Sample(tuple(plain)).show(" s"), ratio.show("x"),
                        f"<= {GOAL}x", ratio.median <= GOAL, notes=[_parts(splits[mode])]))
        bookkeeping = Sample(tuple(s["run_creation"] + s["event_writes"] for s in splits[mode]))
        rows.append(Row("1 dagster overhead", f"  Dagster bookkeeping ({mode}, run creation + event writes)",
                        bookkeeping.show(" s"), "", f"{bookkeeping.median / Sample(tuple(wall)).median:.0%} of wall"))
        for part in PARTS:
            sample = Sample(tuple(s[part] for s in splits[mode]))
            rows.append(Row("1 dagster overhead", f"    {part} ({mode})", sample.show(" s")))
        cpu = ratio_sample([s.get("cpu", 0.0) for s in splits[mode]], [s.get("cpu", 0.0) for s in splits["plain"]])
        rows.append(Row("1 dagster overhead", f"  CPU time, user + system ({mode} vs plain)",
                        Sample(tuple(s.get("cpu", 0.0) for s in splits[mode])).show(" s"),
                        Sample(tuple(s.get("cpu", 0.0) for s in splits["plain"])).show(" s"), cpu.show("x")))
        if all("server_cpu" in s for s in splits[mode]):
            whole = [s["cpu"] + s["server_cpu"] for s in splits[mode]]
            rows.append(Row("1 dagster overhead", f"  CPU time with the PostgreSQL server's ({mode} vs plain)",
                            Sample(tuple(whole)).show(" s"),
                            Sample(tuple(s.get("cpu", 0.0) for s in splits["plain"])).show(" s"),
                            ratio_sample(whole, [s.get("cpu", 0.0) for s in splits["plain"]]).show("x"),
                            notes=[f"server {Sample(tuple(s['server_cpu'] for s in splits[mode])).median:.2f} s"]))
    return rows


def _parts(splits: Sequence[dict[str, float]]) -> str:
    return ", ".join(f"{p} {Sample(tuple(s[p] for s in splits)).median:.1f} s" for p in PARTS)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="90,365", help="sizes in days, comma-separated (default 90,365)")
    parser.add_argument("--runs", type=int, default=5, help="repetitions of every mode at every size (median)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="plain (the baseline, always run), sqlite, postgres (skipped without PostgreSQL)")
    parser.add_argument("--child", choices=("plain", "sqlite", "postgres"), help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(d) for d in str(args.days).split(",") if d.strip()]
    if args.child:
        started = args.started or time.time()
        split = plain_child(sizes[0], started) if args.child == "plain" else dagster_child(sizes[0], started)
        print("DEMO_SPLIT " + json.dumps(split), flush=True)
        return []
    modes = ["plain", *[m for m in args.modes.split(",") if m in MODES and m != "plain"]]
    rows: list[Row] = []
    with ExitStack() as stack:
        pg = None
        if "postgres" in modes:
            try:
                # the server's folder removed after it stops (the ExitStack unwinds the server first)
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="mkpi-bench-pg-"))
                pg = stack.enter_context(postgres_instance(Path(folder)))
            except Exception as exc:  # noqa: BLE001 - no PostgreSQL here: measure the others, say why
                modes.remove("postgres")
                rows.append(Row("1 dagster overhead", f"PostgreSQL instance skipped: {exc}"[:200], "-"))
        for days in sizes:
            rows += measure(days, args.runs, modes, pg)
    print(table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
