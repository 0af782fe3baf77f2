"""`make demo`: the whole pipeline on the local sandbox, no credentials, one command.

Starts the sandbox servers on free 127.0.0.1 ports, points the pipeline at them, materialises the
last 90 days of every asset through Dagster as ONE single-run backfill (not 90 runs), prints a short
KPI summary from DuckDB and stops the servers. Re-running is safe: every write replaces its window.
"""

import argparse
import os
import sys
from datetime import date, datetime, timedelta

import dagster as dg

from connectors.settings import load_settings
from connectors.warehouse import connect

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def demo_window(days: int, today: date) -> tuple[date, date]:
    end = today - timedelta(days=1)
    return end - timedelta(days=days - 1), end


def run_backfill(start: date, end: date) -> dg.ExecuteInProcessResult:
    """One run over the whole range; recorded in DAGSTER_HOME when set, so `make dev` shows it."""
    from pipelines.definitions import defs

    job = defs.resolve_job_def("daily_refresh_job")
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    with instance:
        return job.execute_in_process(
            instance=instance,
            tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat(), "mkpi/trigger": "demo"},
            raise_on_error=False,
        )


def print_summary(db_path: str, start: date, end: date) -> None:
    """Sessions and rates per channel over the window, each rate recomputed from summed parts."""
    with connect(db_path, read_only=True) as conn:
        rows = conn.execute(
            """
            SELECT channel, sum(sessions) AS sessions,
                   sum(engaged_sessions) / nullif(sum(sessions), 0) AS engagement_rate,
                   sum(bounced_sessions) / nullif(sum(sessions), 0) AS bounce_rate,
                   sum(converting_sessions) / nullif(sum(sessions), 0) AS conversion_rate,
                   sum(engagement_duration_seconds) / nullif(sum(sessions), 0) AS avg_session_duration
            FROM kpi.web_daily WHERE date BETWEEN ? AND ? GROUP BY channel ORDER BY sessions DESC
            """,
            [start, end],
        ).fetchall()
        raw = conn.execute("SELECT count(*) FROM ga4.traffic_by_channel").fetchone()
    print(f"\nWeb KPIs from GA4, {start} .. {end} ({raw[0] if raw else 0} raw rows) -> {db_path}")
    print(f"{'channel':<16}{'sessions':>10}{'engaged':>10}{'bounce':>9}{'convert':>9}{'avg dur':>9}")
    for channel, sessions, engagement, bounce, conversion, duration in rows:
        print(f"{channel:<16}{int(sessions):>10}{engagement:>10.1%}{bounce:>9.1%}{conversion:>9.2%}{duration:>8.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days to backfill, ending yesterday")
    args = parser.parse_args(argv)

    from sandbox.launcher import start_sandbox

    settings = load_settings()
    today = datetime.now(settings.tz).date()
    start, end = demo_window(args.days, today)
    with start_sandbox() as sandbox:
        os.environ.update(sandbox.env)
        os.environ.setdefault("MKPI_DUCKDB_PATH", settings.duckdb_path)
        print(f"Sandbox up: {', '.join(f'{k}={v}' for k, v in sandbox.env.items())}")
        print(f"Materialising {start} .. {end} ({args.days} days) as one run ...")
        result = run_backfill(start, end)
        if not result.success:
            for event in result.all_events:
                if event.is_failure and event.step_failure_data is not None:
                    print(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}",
                          file=sys.stderr)
            return 1
        print(f"Run {result.run_id} succeeded.")
        print_summary(os.environ["MKPI_DUCKDB_PATH"], start, end)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
