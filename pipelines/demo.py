"""`make demo`: the whole pipeline on the local sandbox, no credentials, one command.

Starts the sandbox servers on free 127.0.0.1 ports, points the pipeline at them, materialises the
last 90 days of every asset through Dagster as ONE single-run backfill (not 90 runs), prints a short
KPI summary from DuckDB and stops the servers. Re-running is safe: every write replaces its window.
"""

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from connectors.settings import PROJECT_ROOT, WarehouseSettings, load_settings
from connectors.warehouse import open_warehouse
from kpi_models.formatting import format_attainment, format_value
from pipelines.defs.alerts.assets import AFTER_RUN_TAG, AS_OF_TAG
from sandbox.world import DEFAULT_ADS_CUSTOMER_ID, DEFAULT_GA4_PROPERTY_ID, Incident, World

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def demo_window(days: int, today: date) -> tuple[date, date]:
    end = today - timedelta(days=1)
    return end - timedelta(days=days - 1), end


# The alerts part of the demo (issue #23, docs/alerts.md): the sandbox injects a CPC spike on the French Google Ads
# customer and a GA4 tracking break (40% of sessions recorded) on the last two days; the backfill stops before them
# and the alerts job takes its baseline; then "the next morning's" refresh re-reads them and the alerts job writes
# its digest to a local file.
DEMO_DIGEST = "data/alerts_digest.md"


def demo_incidents(first: date) -> tuple[Incident, ...]:
    return (Incident("cpc_spike", DEFAULT_ADS_CUSTOMER_ID, first, factor=3.0),
            Incident("tracking_break", DEFAULT_GA4_PROPERTY_ID, first, factor=0.4))


def refresh_windows(start: date, end: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """The demo's two report-source runs: the backfill up to two days before `end`, then the next morning's refresh
    of the last two days (which the incidents hit)."""
    return (start, end - timedelta(days=2)), (end - timedelta(days=1), end)


@contextmanager
def working_file_held() -> Iterator[None]:
    """The demo's working DuckDB file kept open while its runs execute in this process (issue #21 target 1), as one
    plain Python process would keep it: each step still opens and closes its own connection, but DuckDB hands it the
    database already open here (well under 1 ms) instead of opening the file (~20 ms: its catalogue read) and
    checkpointing it at close, some 190 times in the demo. Only the demo does this: it is the one process writing
    its file (its own sandbox, one run at a time); a run the daemon launches, or `mkpi backfill` beside it, opens
    the file per step so that other processes' steps can take their turn in between. A DuckLake is not held."""
    settings = load_settings().warehouse
    if settings.backend != "duckdb":
        yield
        return
    with open_warehouse(settings):
        yield


def run_backfill(start: date, end: date) -> list[dg.ExecuteInProcessResult]:
    """HubSpot (incremental, not partitioned) as one run, then the report sources over the range up to two days
    before `end` as ONE run, and the alerts (baseline); then a morning refresh of the last two days and the alerts
    again (the digest). Recorded in DAGSTER_HOME when set, so `make dev` shows them."""
    from pipelines.definitions import defs

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    results = []
    with instance, working_file_held():
        # the same order as the schedules (HubSpot 05:30, report sources 06:00)
        results.append(defs.resolve_job_def("hubspot_refresh_job").execute_in_process(
            instance=instance, tags={"mkpi/trigger": "demo"}, raise_on_error=False))
        for first, last in refresh_windows(start, end):
            daily = defs.resolve_job_def("daily_refresh_job").execute_in_process(
                instance=instance,
                tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat(), "mkpi/trigger": "demo"},
                raise_on_error=False,
            )
            # what the alerts_after_a_run sensor launches after each refresh run
            alerts = defs.resolve_job_def("alerts_job").execute_in_process(
                instance=instance, tags={AFTER_RUN_TAG: daily.run_id, AS_OF_TAG: last.isoformat(),
                                         "mkpi/trigger": "demo"}, raise_on_error=False)
            results += [daily, alerts]
    return results


def print_digest(path: str) -> None:
    """The last alerts digest, as the file sink received it."""
    digest = Path(path)
    if not digest.exists():
        print("\nNo alerts digest was written (no alert).")
        return
    print(f"\nAlerts digest ({digest}), as Slack and e-mail would receive it (`mkpi alerts` lists the open ones):")
    print(digest.read_text(encoding="utf-8"))


def print_summary(warehouse: WarehouseSettings, start: date, end: date) -> None:
    """A few KPIs over the window, each rate recomputed from summed parts (never averaged)."""
    with open_warehouse(warehouse, read_only=True) as conn:
        web = conn.execute(
            """
            SELECT source, account_id, channel, sum(sessions) AS sessions,
                   sum(engaged_sessions) / nullif(sum(sessions), 0) AS engagement_rate,
                   sum(bounced_sessions) / nullif(sum(sessions), 0) AS bounce_rate,
                   sum(converting_sessions) / nullif(sum(sessions), 0) AS conversion_rate,
                   sum(session_duration_seconds) / nullif(sum(sessions), 0) AS avg_session_duration
            FROM kpi.web_daily WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY source, account_id, sessions DESC
            """,
            [start, end],
        ).fetchall()
        seo = conn.execute(
            """
            SELECT site_url, sum(search_clicks), sum(search_impressions),
                   sum(search_clicks) / nullif(sum(search_impressions), 0),
                   sum(position_x_impressions) / nullif(sum(positioned_impressions), 0)
            FROM kpi.seo_daily WHERE date BETWEEN ? AND ? AND search_type = 'web' GROUP BY ALL
            """,
            [start, end],
        ).fetchall()
        shop = conn.execute(
            """
            SELECT source, account_id, currency_code, sum(orders), sum(revenue), sum(revenue) / nullif(sum(orders), 0),
                   sum(abandoned_carts) / nullif(sum(carts), 0), sum(orders) / nullif(sum(sessions), 0)
            FROM kpi.ecommerce_daily WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY source, account_id
            """,
            [start, end],
        ).fetchall()
        provisional = conn.execute("SELECT count(*) FILTER (WHERE NOT is_final), count(*) FROM kpi.kpi_daily "
                                   "WHERE date BETWEEN ? AND ?", [start, end]).fetchone()
    print(f"\nKPIs {start} .. {end} -> {warehouse.location}")
    print(f"\n{'source':<8}{'account':<11}{'channel':<16}{'sessions':>10}{'engaged':>9}{'bounce':>8}{'convert':>9}"
          f"{'avg dur':>9}")
    for source, account, channel, sessions, engagement, bounce, conversion, duration in web:
        print(f"{source:<8}{account:<11}{channel:<16}{format_value(sessions, 'count'):>10}"
              f"{format_value(engagement, 'ratio'):>9}{format_value(bounce, 'ratio'):>8}"
              f"{format_value(conversion, 'ratio'):>9}{format_value(duration, 'seconds'):>9}")
    for site, clicks, impressions, ctr, position in seo:
        print(f"\nSEO {site}: {format_value(clicks, 'count')} clicks, {format_value(impressions, 'count')} "
              f"impressions, CTR {format_value(ctr, 'ratio')}, average position {format_value(position, 'position')}")
    print_social(warehouse, start, end)
    print_objectives(warehouse)
    print(f"\n{'source':<8}{'account':<11}{'orders':>8}{'revenue':>14}{'basket':>13}{'cart aband.':>12}{'conv.':>7}")
    for source, account, currency, orders, revenue, basket, abandonment, conversion in shop:
        print(f"{source:<8}{account:<11}{format_value(orders, 'count'):>8}"
              f"{format_value(revenue, 'currency', currency):>14}{format_value(basket, 'currency', currency):>13}"
              f"{format_value(abandonment, 'ratio'):>12}{format_value(conversion, 'ratio'):>7}")
    print("\nCart abandonment: GA4 is users at add_to_cart who did not then purchase (funnel report), Matomo is "
          "abandoned carts / (abandoned carts + orders): two definitions, never compared as one.")
    print_roi(warehouse, end)
    print_reconciliation(warehouse, start, end)
    print(f"\nkpi.kpi_daily {start} .. {end}: {format_value(provisional[1], 'count')} rows, "
          f"{format_value(provisional[0], 'count')} provisional "
          "(is_final = false: inside a source's restatement window, or converted at an estimated FX rate).")


def print_social(warehouse: WarehouseSettings, start: date, end: date) -> None:
    """The social networks over the window: followers is a level (the latest reported, never a sum of days), growth,
    impressions, engagements and posts are sums, the engagement rate a ratio of the sums; reach is not shown as a
    window total (distinct people do not add up over days)."""
    with open_warehouse(warehouse, read_only=True) as conn:
        rows = conn.execute(
            """
            SELECT source, account_id, arg_max(followers, date) FILTER (WHERE followers IS NOT NULL),
                   sum(follower_growth), sum(social_impressions), sum(social_engagements),
                   sum(social_engagements) / nullif(sum(social_impressions), 0), sum(posts_published)
            FROM kpi.social_daily WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY source, account_id
            """,
            [start, end],
        ).fetchall()
    if not rows:
        return
    print(f"\n{'network':<10}{'account':<19}{'followers':>10}{'growth':>8}{'impressions':>13}{'engagements':>13}"
          f"{'eng. rate':>10}{'posts':>7}")
    for source, account, followers, growth, impressions, engagements, rate, posts in rows:
        print(f"{source:<10}{account:<19}{format_value(followers, 'count'):>10}{format_value(growth, 'count'):>8}"
              f"{format_value(impressions, 'count'):>13}{format_value(engagements, 'count'):>13}"
              f"{format_value(rate, 'ratio'):>10}{format_value(posts, 'count'):>7}")
    print("Followers: the latest reported level (Instagram gives no daily level: -); growth: gains minus losses "
          "(LinkedIn's is net); engagement rate: engagements / impressions (Meta's impressions are its views).")


ROI_SQL = """
    SELECT channel,
           sum(denominator) FILTER (WHERE kpi = 'marketing_roi' AND attribution = 'ga4_session_channel') AS spend,
           sum(denominator) FILTER (WHERE kpi = 'cost_per_lead') AS leads,
           sum(denominator) FILTER (WHERE kpi = 'customer_acquisition_cost') AS customers,
           sum(numerator) FILTER (WHERE kpi = 'blended_roas' AND attribution = 'ga4_session_channel') AS ga4_revenue,
           sum(numerator) FILTER (WHERE kpi = 'blended_roas' AND attribution = 'hubspot_original_source') AS won,
           bool_and(is_final) AS final, any_value(currency) FILTER (WHERE currency IS NOT NULL) AS currency
    FROM kpi.kpi_daily
    WHERE kpi IN ('marketing_roi', 'cost_per_lead', 'customer_acquisition_cost', 'blended_roas')
      AND date BETWEEN ? AND ?
    GROUP BY ALL ORDER BY spend DESC NULLS LAST, channel
"""


def print_roi(warehouse: WarehouseSettings, end: date) -> None:
    """This month's marketing return by channel, under both attributions (kpi_daily's roi family, summed parts):
    the same ad spend set against GA4 revenue by session channel and against HubSpot won-deal revenue by the
    contact's original source."""
    first = end.replace(day=1)
    with open_warehouse(warehouse, read_only=True) as conn:
        rows = conn.execute(ROI_SQL, [first, end]).fetchall()
    if not rows:
        return
    currency = next((r[7] for r in rows if r[7]), "")

    def ratio(numerator: float | None, denominator: float | None) -> float | None:
        return None if numerator is None or not denominator else numerator / denominator

    def money(value: float | None) -> str:
        return format_value(value, "currency", currency)

    print(f"\nMarketing return {first} .. {end} ({currency}; ROI = (revenue - ad spend) / ad spend, per attribution)")
    print(f"{'channel':<16}{'ad spend':>13}{'leads':>7}{'CPL':>12}{'new cust.':>10}{'CAC':>12}{'GA4 revenue':>14}"
          f"{'ROI (GA4)':>11}{'won (HubSpot)':>15}{'ROI (HubSpot)':>15}")
    totals = [0.0] * 5
    for channel, spend, leads, customers, ga4_revenue, won, final, _ in rows:
        values = (spend, leads, customers, ga4_revenue, won)
        totals = [t + float(v or 0) for t, v in zip(totals, values, strict=True)]
        mark = "" if final else " *"
        print(f"{channel + mark:<16}{money(spend):>13}{int(leads or 0):>7}{money(ratio(spend, leads)):>12}"
              f"{int(customers or 0):>10}{money(ratio(spend, customers)):>12}{money(ga4_revenue):>14}"
              f"{format_value(ratio((ga4_revenue or 0) - (spend or 0), spend), 'ratio'):>11}{money(won):>15}"
              f"{format_value(ratio((won or 0) - (spend or 0), spend), 'ratio'):>15}")
    spend, leads, customers, ga4_revenue, won = totals
    print(f"{'all channels':<16}{money(spend):>13}{int(leads):>7}{money(ratio(spend, leads)):>12}{int(customers):>10}"
          f"{money(ratio(spend, customers)):>12}{money(ga4_revenue):>14}"
          f"{format_value(ratio(ga4_revenue - spend, spend), 'ratio'):>11}{money(won):>15}"
          f"{format_value(ratio(won - spend, spend), 'ratio'):>15}")
    print("GA4 revenue is purchases by the session's channel; won is HubSpot deals closed won this month by the "
          "contact's original source. A channel without ad spend has no ROI (-). * provisional")


def print_reconciliation(warehouse: WarehouseSettings, start: date, end: date) -> None:
    """kpi.reconciliation: each pair's ratio over the window and the days outside its band."""
    with open_warehouse(warehouse, read_only=True) as conn:
        rows = conn.execute(
            """
            SELECT check_name, site, sum(value_a) / nullif(sum(value_b), 0), any_value(band_low),
                   any_value(band_high), count(*),
                   list(strftime(date, '%d %b') ORDER BY date) FILTER (WHERE NOT in_band)
            FROM kpi.reconciliation WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY site, check_name
            """,
            [start, end],
        ).fetchall()
    if not rows:
        return
    print(f"\n{'reconciliation (kpi.reconciliation)':<48}{'site':<8}{'ratio':>7}{'band':>13}{'days':>6}"
          "  days out of band")
    for check, site, ratio, low, high, days, outside in rows:
        shown = ", ".join(outside or []) or "none"
        print(f"{check:<48}{site:<8}{ratio:>7.3f}{f'{low:.2f}..{high:.2f}':>13}{days:>6}  {shown}")


def print_objectives(warehouse: WarehouseSettings) -> None:
    """This month's KPIs against their objectives (kpi.kpi_vs_objective)."""
    with open_warehouse(warehouse, read_only=True) as conn:
        rows = conn.execute(
            """
            SELECT kpi, coalesce(source, '') || CASE WHEN account_id <> 'all' THEN ' ' || account_id ELSE '' END,
                   coalesce(channel, 'all') AS channel, actual, coalesce(target_to_date, target) AS target_now,
                   attainment, status || CASE WHEN provisional THEN ' *' ELSE '' END, coalesce(gap_text, ''),
                   unit, currency
            FROM kpi.kpi_vs_objective
            WHERE period_start = (SELECT max(period_start) FROM kpi.kpi_vs_objective WHERE period = 'month')
              AND period = 'month'
            ORDER BY status, kpi
            """
        ).fetchall()
    print(f"\n{'objective (this month)':<28}{'source':<26}{'channel':<15}{'actual':>12}{'target':>12}"
          f"{'attain.':>8}  status")
    for kpi, source, channel, actual, target, attainment, status, gap, unit, currency in rows:
        print(f"{kpi:<28}{source:<26}{channel:<15}{format_value(actual, unit, currency, kpi=kpi):>12}"
              f"{format_value(target, unit, currency, kpi=kpi):>12}{format_attainment(attainment):>8}  {status} {gap}")
    if any(str(r[6]).endswith("*") for r in rows):
        print("* provisional: rests on days still inside a source's restatement window (the value will still move)")


@contextmanager
def demo_sandbox(start: date, end: date, duckdb_path: str) -> Iterator[Any]:
    """The demo's sandbox (the shop with its two incidents on the last days) and the environment pointing the
    pipeline at it; the benchmark's plain-Python baseline (bench/bench_demo.py) runs in the same one."""
    from sandbox.launcher import start_sandbox

    with start_sandbox(World(incidents=demo_incidents(end - timedelta(days=1)))) as sandbox:
        os.environ.update(sandbox.env)
        os.environ.setdefault("MKPI_ALERTS_DIGEST_FILE", DEMO_DIGEST)
        os.environ.setdefault("MKPI_DUCKDB_PATH", duckdb_path)
        # the partitions start with the demo's first day, so the UI (make dev on the same DAGSTER_HOME) shows every
        # partition of the demo materialised instead of two years of "missing" ones before it
        os.environ.setdefault("MKPI_START_DATE", start.isoformat())
        # the sandbox shop's objectives, chosen so the demo shows every status
        os.environ.setdefault("MKPI_OBJECTIVES", str(PROJECT_ROOT / "sandbox" / "objectives.yaml"))
        yield sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90, help="days to backfill, ending yesterday")
    parser.add_argument("--print-start", action="store_true",
                        help="print the demo's first day and stop (make dev starts its partitions there)")
    args = parser.parse_args(argv)

    settings = load_settings()
    today = datetime.now(settings.tz).date()
    start, end = demo_window(args.days, today)
    if args.print_start:
        print(start.isoformat())
        return 0

    with demo_sandbox(start, end, settings.duckdb_path) as sandbox:
        shown = {k: ("***" if any(w in k for w in ("TOKEN", "SECRET", "KEY")) else v) for k, v in sandbox.env.items()}
        print(f"Sandbox up: {', '.join(f'{k}={v}' for k, v in shown.items())}")
        print(f"Materialising {start} .. {end} ({args.days} days) as one run, the last two days as the next "
              "morning's refresh, each followed by the alerts ...")
        results = run_backfill(start, end)
        failed = False
        for result in results:
            if result.success:
                print(f"Run {result.run_id} ({result.job_def.name}) succeeded.")
                continue
            failed = True
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data is not None:
                    error = event.step_failure_data.error
                    cause = error.cause.message.strip() if error.cause else error.message.strip()
                    print(f"FAILED {event.step_key}: {cause}", file=sys.stderr)
        if failed:
            return 1
        print_summary(load_settings().warehouse, start, end)  # the working warehouse the runs wrote
        print_digest(os.environ["MKPI_ALERTS_DIGEST_FILE"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
