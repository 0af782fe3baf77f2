"""Checks on the KPI layer: each passes on a clean build and fails on one crafted bad row, naming it."""

from datetime import date, timedelta

import pyarrow as pa
import pytest

from connectors.batches import Batch, Window
from connectors.ga4 import TRAFFIC
from connectors.warehouse import connect, load_batches
from kpi_models import checks
from kpi_models.context import KpiContext
from kpi_models.fx import FxPolicy
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from kpi_models.objectives import parse_objectives
from kpi_models.runner import rebuild

D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
WINDOW = Window(D1, D2)
CHANNELS = {"ga4": {"Organic Search": "organic_search", "Direct": "direct"}}
CTX = KpiContext(tz="Europe/Paris", as_of=D2, channels=CHANNELS,
                 fx=FxPolicy("EUR", "config", {"USD": ((date(2026, 1, 1), 0.92),)}))


def traffic(rows: list[tuple]) -> Batch:
    """rows: (date, group, sessions, engaged, converting)."""
    n = len(rows)
    data = pa.table({
        "property_id": ["1"] * n,
        "date": pa.array([r[0] for r in rows], pa.date32()),
        "session_default_channel_group": [r[1] for r in rows],
        "sessions": pa.array([r[2] for r in rows], pa.int64()),
        "engaged_sessions": pa.array([r[3] for r in rows], pa.int64()),
        "user_engagement_duration": pa.array([60.0] * n),
        "session_key_event_rate": pa.array([r[4] / r[2] for r in rows], pa.float64()),
        "key_events": pa.array([0.0] * n),
        "new_users": pa.array([1] * n, pa.int64()),
        "is_other": [False] * n,
        "time_zone": ["Europe/Paris"] * n,
        "currency_code": ["EUR"] * n,
        "converting_sessions": pa.array([r[4] for r in rows], pa.int64()),
        "average_session_duration": pa.array([90.0] * n),
        "session_duration_seconds": pa.array([90.0 * r[2] for r in rows]),
        "ecommerce_purchases": pa.array([0] * n, pa.int64()),
        "purchase_revenue": pa.array([0.0] * n),
    })
    return Batch(TRAFFIC.stream, data.select(TRAFFIC.stream.schema.names), WINDOW, {"property_id": "1"})


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "checks.duckdb") as c:
        # GA4: D1 organic 100 + direct 50 = 150 sessions; D2 organic 80
        load_batches(c, [traffic([(D1, "Organic Search", 100, 60, 5), (D1, "Direct", 50, 20, 2),
                                  (D2, "Organic Search", 80, 40, 4)])])
        rebuild(c, "web_daily", WINDOW, CTX)
        rebuild_kpi_daily(c, WINDOW, CTX)
        create_rollup_views(c)
        yield c


COLUMNS = "(date, source, channel, account_id, kpi, numerator, denominator, value, currency)"


def test_all_blocking_checks_pass_on_a_clean_build(conn):
    results = checks.run_all_checks(conn, WINDOW)
    failed = [(r.name, r.rows) for r in results if not r.passed and r.severity == "error"]
    assert failed == []


def test_duplicate_key_is_named(conn):
    conn.execute("INSERT INTO kpi.kpi_daily SELECT * FROM kpi.kpi_daily WHERE kpi = 'sessions' AND date = ? "
                 "AND channel = 'direct'", [D1])
    result = checks.check_unique_keys(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"date": D1, "source": "ga4", "channel": "direct", "account_id": "1", "kpi": "sessions",
                            "row_count": 2}]


def test_every_duplicate_key_is_named_with_its_count_null_parts_included(conn):
    """The check groups hashes first, then keys: a key three times, a key with a NULL part twice, nothing else."""
    conn.execute("INSERT INTO kpi.kpi_daily SELECT * FROM kpi.kpi_daily WHERE kpi = 'sessions' AND date = ? "
                 "AND channel = 'direct'", [D1])
    conn.execute("INSERT INTO kpi.kpi_daily SELECT * FROM kpi.kpi_daily WHERE kpi = 'sessions' AND date = ? "
                 "AND channel = 'direct' LIMIT 1", [D1])
    for _ in range(2):
        conn.execute("INSERT INTO kpi.kpi_daily SELECT * REPLACE (NULL AS account_id) FROM kpi.kpi_daily "
                     "WHERE kpi = 'bounce_rate' AND date = ? AND channel = 'organic_search' AND account_id = '1'", [D2])
    result = checks.check_unique_keys(conn, WINDOW)
    assert (result.passed, result.failures) == (False, 2)
    assert result.rows == [
        {"date": D1, "source": "ga4", "channel": "direct", "account_id": "1", "kpi": "sessions", "row_count": 3},
        {"date": D2, "source": "ga4", "channel": "organic_search", "account_id": None, "kpi": "bounce_rate",
         "row_count": 2}]


def test_numerator_above_denominator_is_named(conn):
    conn.execute("UPDATE kpi.kpi_daily SET numerator = 120, value = 1.2 WHERE kpi = 'engagement_rate' "
                 "AND date = ? AND channel = 'organic_search'", [D1])
    result = checks.check_numerator_within_denominator(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"date": D1, "source": "ga4", "channel": "organic_search", "account_id": "1",
                            "kpi": "engagement_rate", "numerator": 120.0, "denominator": 100.0}]
    assert not checks.check_rates_in_range(conn, WINDOW).passed  # 1.2 is out of [0, 1] too


def test_negative_rate_is_named(conn):
    # GA4 can report more purchases than add-to-carts: (10 - 12) / 10 = -0.2
    conn.execute(f"INSERT INTO kpi.kpi_daily {COLUMNS} VALUES (?, 'ga4', 'all', '1', 'cart_abandonment_rate', -2, 10, "
                 "-0.2, NULL)", [D1])
    result = checks.check_rates_in_range(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"date": D1, "source": "ga4", "channel": "all", "account_id": "1",
                            "kpi": "cart_abandonment_rate", "value": -0.2}]
    # ad_roas above 1 is fine: not a bounded rate
    conn.execute(f"INSERT INTO kpi.kpi_daily {COLUMNS} VALUES (?, 'google_ads', 'paid_search', '9', 'ad_roas', 500, "
                 "100, 5, NULL)", [D1])
    assert checks.check_rates_in_range(conn, WINDOW).failures == 1


def test_missing_kpi_on_a_day_with_raw_rows_is_named(conn):
    conn.execute("DELETE FROM kpi.kpi_daily WHERE kpi = 'bounce_rate' AND date = ?", [D2])
    result = checks.check_kpi_completeness(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"date": D2, "source": "ga4", "kpi": "bounce_rate"}]


def test_raw_rows_loaded_after_the_rebuild_are_the_next_rebuilds_to_show(conn):
    """Another source's run may load raw rows after this run rebuilt kpi_daily: those are not a miss yet."""
    conn.execute("DELETE FROM kpi.kpi_daily WHERE kpi = 'bounce_rate' AND date = ?", [D2])
    built_at = conn.execute("SELECT max(_loaded_at) FROM ga4.traffic_by_channel").fetchone()[0]
    before = built_at - timedelta(seconds=1)
    assert checks.check_kpi_completeness(conn, WINDOW, built_at=before).passed
    assert checks.check_kpi_completeness(conn, WINDOW, built_at=built_at).rows == [
        {"date": D2, "source": "ga4", "kpi": "bounce_rate"}]


def test_ga4_sessions_mismatch_is_named(conn):
    # raw D1 = 150; web_daily loses 10 of them
    conn.execute("UPDATE kpi.web_daily SET sessions = 40 WHERE date = ? AND channel = 'direct'", [D1])
    result = checks.check_ga4_channel_sessions(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"date": D1, "raw_sessions": 150, "web_daily_sessions": 140, "kpi_daily_sessions": 150}]


def test_two_currencies_in_one_customer_and_foreign_money_rows_are_named(conn):
    conn.execute("INSERT INTO kpi.paid_search_daily (date, source, channel, account_id, customer_id, campaign_id, "
                 "currency_code, ad_cost) VALUES (?, 'google_ads', 'paid_search', '111', '111', 1, 'EUR', 1), "
                 "(?, 'google_ads', 'paid_search', '111', '111', 2, 'USD', 1)", [D1, D1])
    conn.execute(f"INSERT INTO kpi.kpi_daily {COLUMNS} VALUES (?, 'google_ads', 'paid_search', '111', 'ad_cost', 5, "
                 "NULL, 5, 'USD')", [D2])
    result = checks.check_single_currency(conn, WINDOW)
    assert not result.passed
    assert result.rows == [
        {"table_name": "kpi.kpi_daily", "subject": "ad_cost", "currencies": ["USD"], "row_count": 1},
        {"table_name": "kpi.paid_search_daily", "subject": "customer 111", "currencies": ["EUR", "USD"],
         "row_count": 2},
    ]


def test_currency_without_rate_is_named(conn):
    conn.execute("INSERT INTO kpi.paid_search_daily (date, source, channel, account_id, customer_id, campaign_id, "
                 "currency_code, ad_cost) VALUES (?, 'google_ads', 'paid_search', '333', '333', 3, 'JPY', 10000)",
                 [D2])
    result = checks.check_fx_rates_available(conn, WINDOW)
    assert not result.passed
    assert result.rows == [{"table_name": "kpi.paid_search_daily", "source": "google_ads", "currency": "JPY",
                            "first_date": D2, "last_date": D2, "rows_left_out": 1}]


def test_kpis_without_objective_is_a_warning_naming_them(conn):
    objectives = parse_objectives([{"kpi": "sessions", "source": "ga4", "period": "month", "target": 1}])
    result = checks.check_kpis_without_objective(conn, objectives)
    assert (result.passed, result.severity) == (False, "warn")
    named = {r["kpi"]: r["has_daily_data"] for r in result.rows}
    assert "sessions" not in named
    assert named["bounce_rate"] is True and named["nps"] is False
    assert result.failures == 49  # 50 catalogue KPIs (41 + 9 social) less sessions


def test_the_completeness_check_judges_the_days_its_run_rebuilt() -> None:
    """kpi_daily_complete's window is the run's partition range (a backfill, the schedule's trailing window) or
    partition, in the reporting time zone; without partitions it falls back to the whole table (None)."""
    import dagster as dg

    from pipelines.defs.kpi.checks import _run_window
    from pipelines.lib.partitions import DAILY

    seen: list[Window | None] = []

    @dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
    def rebuilt() -> None:
        return None

    @dg.asset_check(asset=rebuilt)
    def window_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        seen.append(_run_window(context))
        return dg.AssetCheckResult(passed=True)

    defs = dg.Definitions(assets=[rebuilt], asset_checks=[window_check], jobs=[
        dg.define_asset_job("range", selection=[rebuilt], partitions_def=DAILY),
        dg.define_asset_job("check_only", selection=dg.AssetSelection.checks(window_check))])
    job = defs.resolve_job_def("range")
    assert job.execute_in_process(tags={"dagster/asset_partition_range_start": "2026-03-02",
                                        "dagster/asset_partition_range_end": "2026-03-05"}).success
    assert job.execute_in_process(partition_key="2026-03-07").success
    assert defs.resolve_job_def("check_only").execute_in_process().success
    assert seen == [Window(date(2026, 3, 2), date(2026, 3, 5)), Window(date(2026, 3, 7), date(2026, 3, 7)), None]
