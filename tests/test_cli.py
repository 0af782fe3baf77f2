"""The `mkpi` command line: usage errors, doctor against the sandbox, a short backfill, the KPI table.

Offline: the only servers are the sandbox's, on 127.0.0.1. Backfills through Dagster cost seconds each, so one
successful backfill is shared by the module (its DuckDB files feed the `kpis` tests) and one failing one is run.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from connectors.registry import codes
from kpi_models.formatting import format_attainment, format_value
from pipelines.cli import main
from pipelines.cli.backfill import SourceRun, summarise_run
from sandbox.world import World
from tests.isolation import sandbox_with_a_month_of_hubspot

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WORLD_TODAY = date(2026, 3, 31)
START, END = "2026-03-01", "2026-03-03"


def run_cli(*argv: str) -> tuple[int, str, str]:
    """main() in-process with stdout/stderr captured (rich writes to whatever sys.stdout is at print time)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def sandbox():
    """Every platform's server; HubSpot's portal a month deep: its only reader here is `mkpi doctor` (the owners)."""
    with sandbox_with_a_month_of_hubspot(World(seed=1, today=WORLD_TODAY)) as running:
        yield running


@pytest.fixture
def sandbox_env(sandbox, monkeypatch, tmp_path):
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "kpis.duckdb"))
    return sandbox.env


@pytest.fixture(scope="module")
def backfilled(sandbox, tmp_path_factory):
    """One GA4 backfill of 3 days through Dagster, shared by the tests that read its output or its files."""
    root = tmp_path_factory.mktemp("backfill")
    working, analyst = root / "marketing.duckdb", root / "kpis.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("MKPI_") or k == "DAGSTER_HOME"]:
            mp.delenv(key)
        for name, value in sandbox.env.items():
            mp.setenv(name, value)
        mp.setenv("CLOUDSDK_CONFIG", str(root / "no-gcloud"))
        mp.setenv("MKPI_DUCKDB_PATH", str(working))
        mp.setenv("MKPI_ANALYST_DB", str(analyst))
        # the sandbox shop's objectives, chosen so every status shows (as `make demo` does)
        mp.setenv("MKPI_OBJECTIVES", str(PROJECT_ROOT / "sandbox" / "objectives.yaml"))
        code, out, err = run_cli("backfill", "--source", "ga4", "--start", START, "--end", END)
    return SimpleNamespace(code=code, out=out, err=err, working=working, analyst=analyst)


# --- help and usage errors -----------------------------------------------------------------------------------------


def test_help_of_the_installed_script_lists_every_command():
    script = Path(sys.executable).parent / "mkpi"
    assert script.exists(), "run `.venv/bin/pip install -e .` so the mkpi script exists"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("demo", "sandbox", "backfill", "kpis", "doctor", "fx", "--debug"):
        assert command in result.stdout


@pytest.mark.parametrize(("argv", "expected"), [
    (["backfill", "--start", "2026-02-30", "--end", "2026-03-01"], "is not a date: use YYYY-MM-DD"),
    (["backfill", "--start", "2026-03-01", "--end", "2026-03-02", "--source", "ga5"], "unknown source 'ga5'"),
    (["backfill", "--start", "2026-03-05", "--end", "2026-03-01"], "is after --end"),
    (["backfill", "--start", "2026-03-01", "--end", "2999-01-01"], "the last complete day"),
    (["backfill", "--start", "2026-03-01"], "required: --end"),
])
def test_usage_errors_are_one_sentence_with_exit_code_2(argv, expected):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in out + err


def test_unknown_source_message_lists_the_sources():
    _, _, err = run_cli("backfill", "--start", START, "--end", END, "--source", "ga5")
    assert all(source in err for source in codes())


def test_cli_sources_are_the_pipelines_sources():
    from pipelines.defs.schedules import REFRESHES

    assert set(codes()) == {r.source for r in REFRESHES} | {"hubspot"}


def test_backfill_of_an_unconfigured_source_names_the_variable():
    code, _, err = run_cli("backfill", "--start", START, "--end", END, "--source", "hubspot")
    assert code == 1
    assert "HubSpot is not configured" in err and "MKPI_HUBSPOT_TOKEN" in err
    assert "Traceback" not in err


def test_no_command_prints_help_and_exit_2():
    code, out, _ = run_cli()
    assert code == 2
    assert "backfill" in out


def test_sandbox_command_delegates_to_python_m_sandbox(capfd):
    import signal

    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # sandbox.__main__ installs its own
    try:
        # the (seed, today) of the HubSpot portal other files build: read from the session's folder (tests/conftest.py)
        code = main(["sandbox", "--seed", "7", "--today", "2026-03-31", "--exec", sys.executable, "-c",
                     "import os; print('endpoint', os.environ['MKPI_GA4_ENDPOINT'])"])
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    assert code == 0
    assert "endpoint http://127.0.0.1:" in capfd.readouterr().out


# --- doctor --------------------------------------------------------------------------------------------------------


def test_doctor_against_the_sandbox_reports_every_platform_ok(sandbox_env):
    code, out, err = run_cli("doctor")
    assert code == 0, out + err
    for name in ("GA4", "Search Console", "Google Ads", "HubSpot", "Matomo", "Facebook", "Instagram", "LinkedIn"):
        assert f"✓ {name}" in out
    assert "✗" not in out
    assert "property 123456789: runReport answered" in out
    assert "sc-domain:shop.example: listed, permission siteOwner" in out
    assert "customer 1234567890: query answered" in out and "customer 9876543210: query answered" in out
    assert "site 1: Shop" in out
    assert f"All {len(codes())} configured platform(s) answered." in out  # the sandbox serves every one
    for name, value in sandbox_env.items():
        if any(word in name for word in ("TOKEN", "SECRET")):
            assert value not in out + err


def test_doctor_reports_a_wrong_token_and_property_with_the_fix_and_never_the_token(sandbox_env, monkeypatch):
    wrong = "pat-na1-00000000-wrong-token-0000"
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", wrong)
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", "123456789,999")
    code, out, err = run_cli("doctor")
    assert code == 1
    assert "✗ HubSpot" in out and "401" in out
    assert "fix: MKPI_HUBSPOT_TOKEN is not accepted by the portal" in out
    assert "✗ GA4" in out
    assert "✓ property 123456789" in out and "✗ property 999" in out
    assert "check MKPI_GA4_PROPERTY_IDS" in out
    assert "✓ Matomo" in out and "✓ Search Console" in out  # one platform's failure hides nothing else
    assert f"2 of {len(codes())} configured platform(s) need attention." in out
    assert wrong not in out + err
    assert sandbox_env["MKPI_MATOMO_TOKEN"] not in out + err
    assert "Traceback" not in out + err


def test_doctor_names_a_site_without_access_and_the_permission_to_grant(sandbox_env, monkeypatch):
    monkeypatch.setenv("MKPI_MATOMO_SITE_IDS", "1,7")
    monkeypatch.setenv("MKPI_SEARCH_CONSOLE_SITES", "sc-domain:shop.example,https://other.example/")
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert "✗ site 7" in out and "view access to site 7" in out
    assert "✗ https://other.example/: not among the properties" in out
    assert "Users and permissions" in out


def test_doctor_with_nothing_configured_says_which_variables_to_set():
    code, out, err = run_cli("doctor")
    assert code == 0  # nothing configured is not a failing platform
    assert out.count("not configured") == len(codes())  # one line per registered source
    for variable in ("MKPI_GA4_PROPERTY_IDS", "GOOGLE_APPLICATION_CREDENTIALS", "MKPI_SEARCH_CONSOLE_SITES",
                     "MKPI_GOOGLE_ADS_CUSTOMER_IDS", "MKPI_GOOGLE_ADS_DEVELOPER_TOKEN", "MKPI_HUBSPOT_TOKEN",
                     "MKPI_MATOMO_URL", "MKPI_MATOMO_SITE_IDS", "MKPI_MATOMO_TOKEN"):
        assert variable in out
    assert "No platform is configured yet" in out


def test_doctor_with_a_partial_configuration_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("MKPI_MATOMO_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("MKPI_MATOMO_TOKEN", "s3cr3t-matomo-token")
    code, out, err = run_cli("doctor")
    assert code == 1
    assert "✗ Matomo" in out and "MKPI_MATOMO_SITE_IDS" in out
    assert "s3cr3t-matomo-token" not in out + err


# --- backfill ------------------------------------------------------------------------------------------------------


def test_backfill_one_source_reports_rows_and_requests_and_loads_them(backfilled):
    assert backfilled.code == 0, backfilled.out + backfilled.err
    with duckdb.connect(str(backfilled.working), read_only=True) as conn:
        rows = sum(conn.execute(f"SELECT count(*) FROM ga4.{table} WHERE date BETWEEN ? AND ?",
                                [START, END]).fetchone()[0]
                   for table in ("traffic_by_channel", "ecommerce_by_date", "cart_funnel_daily"))
        days = conn.execute("SELECT count(DISTINCT date) FROM ga4.traffic_by_channel").fetchone()[0]
    assert rows > 0 and days == 3
    assert "Backfill summary" in backfilled.out
    line = next(row for row in backfilled.out.splitlines() if row.startswith("│ ga4"))
    cells = [c.strip() for c in line.strip("│").split("│")]
    assert cells[1] == "✓ ok"
    assert cells[2] == f"{rows:,}"  # rows loaded, from the materialisations' dagster/row_count
    # per property (the sandbox has 2): one runReport per report for the whole range, the cart funnel one request a
    # day (3) and one for the property's time zone (metadata `requests`)
    assert cells[4] == str(2 * (2 + 3 + 1))
    assert cells[5] == "0"
    assert "ephemeral Dagster instance" in backfilled.out
    assert backfilled.analyst.exists()  # the run published the analysts' copy


def test_backfill_failure_names_the_step_and_the_error(sandbox_env, monkeypatch, tmp_path):
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", "999")
    code, out, err = run_cli("backfill", "--source", "ga4", "--start", START, "--end", END)
    assert code == 1
    assert "✗ failed" in out
    message = " ".join(err.split())
    # whichever GA4 report step fails first is named, with the failed account
    assert re.search(r"mkpi: ga4 failed at step ga4__\w+: Failure: ga4: 1 of 1 accounts failed \(999\); "
                     r"nothing was loaded\. 999: ", message), message
    assert "Property properties/999 was not found." in message
    # the fix line matches the kind of failure: an account the platform refused (not a lock, a disk, the config)
    assert message.count("fix: ") == 1
    assert "fix: the error above names the account and what to change (`mkpi doctor` checks access)" in message
    assert "Traceback" not in out + err


def test_summary_counts_rows_once_per_asset_and_requests_once_per_step():
    def materialisation(step, key, **metadata):
        asset_key = SimpleNamespace(path=key.split("/"), to_user_string=lambda key=key: key)
        mat = SimpleNamespace(asset_key=asset_key, metadata={k.replace("__", "/"): v for k, v in metadata.items()})
        return SimpleNamespace(step_key=step, event_specific_data=SimpleNamespace(materialization=mat))

    events = []
    for _partition in range(3):  # a 3-day range run: one materialisation per partition, same metadata
        for table in ("visits", "referrer_types", "goals"):  # one multi-asset step, shared counters
            events.append(materialisation("matomo_reports", f"matomo/{table}", dagster__row_count=5, requests=1,
                                          retries=1))
        events.append(materialisation("kpi__web_daily", "kpi/web_daily", dagster__row_count=7))
        events.append(materialisation("kpi__kpi_vs_objective", "kpi/kpi_vs_objective", dagster__row_count=2))
    run = summarise_run(SourceRun("matomo", "daily_refresh_job", "r"), events)
    assert (run.rows, run.kpi_rows, run.requests, run.retries) == (15, 7, 1, 1)


# --- kpis ----------------------------------------------------------------------------------------------------------


def test_kpis_month_table_from_the_analysts_copy(backfilled, monkeypatch):
    monkeypatch.setenv("MKPI_ANALYST_DB", str(backfilled.analyst))
    code, out, err = run_cli("kpis")
    assert code == 0, err
    assert "KPIs vs objectives, month 2026-03-01 .. 2026-03-31, as of 2026-03-03" in out
    assert "analysts' copy" in out
    with duckdb.connect(str(backfilled.analyst), read_only=True) as conn:
        statuses = {r[0] for r in conn.execute("SELECT status FROM kpi.kpi_vs_objective").fetchall()}
    assert statuses and all(status in out for status in statuses)
    assert "sessions" in out and "revenue" in out


def test_kpis_falls_back_to_the_working_db_and_filters_by_family(backfilled, monkeypatch, tmp_path):
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "missing.duckdb"))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(backfilled.working))
    code, out, _ = run_cli("kpis", "--family", "ecommerce")
    assert code == 0
    assert "working db" in out
    assert "revenue" in out and "bounce_rate" not in out


def test_kpis_week_shows_the_latest_week_with_objectives_where_they_exist(backfilled, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside cells
    code, out, _ = run_cli("kpis", "--period", "week", "--db", str(backfilled.analyst))
    assert code == 0
    assert "week 2026-W10 (2026-03-02 .. 2026-03-08, 2 day(s) with data)" in out
    assert "no objective" in out  # e.g. orders has no objective in the sandbox file
    assert "a sum's target pro-rated to the week's elapsed days" in out  # e.g. revenue against its month target


# A hand-made week (ISO 2026-W10, Mon 2 .. Sun 8 March; March has 31 days): GA4 has data on 1, 2, 3 and 5 March
# (none on the 4th), so its as-of day is the 5th and 4 days of the week have elapsed, 3 of them with data. No KPI
# has an 'all' channel row, as in the real kpi_daily: every total is summed over the channels.
WEEK_DAYS = [date(2026, 3, d) for d in (1, 2, 3, 5)]


def _create_kpi_daily(conn) -> None:
    """An empty kpi.kpi_daily of the pipeline's columns, for rows written by hand."""
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                 "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                 "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")


def _social_week(tmp_path, monkeypatch, rows) -> str:
    """`mkpi kpis --period week` over social rows by hand (day, source, account, kpi, value), beside the Facebook
    Page's own reach for the week ending Sunday 8 March (650: fewer than its days' 300 + 400, people come back)."""
    from connectors.warehouse import connect
    from kpi_models.catalogue import rollup_view_sql

    path = tmp_path / "social.duckdb"
    with connect(path) as conn:
        _create_kpi_daily(conn)
        conn.executemany("INSERT INTO kpi.kpi_daily VALUES (?, ?, 'social', ?, ?, ?, NULL, ?, NULL, true, [], NULL)",
                         [(d, s, a, k, n, n) for d, s, a, k, n in rows])
        conn.execute("CREATE VIEW kpi.social_period_reach AS SELECT 'facebook' AS source, DATE '2026-03-08' AS date, "
                     "'9' AS account_id, 'week' AS period, CAST(650 AS BIGINT) AS reach")
        conn.execute(rollup_view_sql()["kpi_weekly"])
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli("kpis", "--period", "week", "--db", str(path))
    assert code == 0, err
    return out


@pytest.fixture
def week_db(tmp_path):
    from connectors.warehouse import connect
    from kpi_models.catalogue import rollup_view_sql
    from kpi_models.objectives import parse_objectives, write_objectives

    path = tmp_path / "week.duckdb"
    with connect(path) as conn:
        _create_kpi_daily(conn)
        rows = []
        for day in WEEK_DAYS:
            rows += [(day, "ga4", "organic_search", "111", "sessions", 60.0, None, 60.0),
                     (day, "ga4", "direct", "111", "sessions", 40.0, None, 40.0),
                     (day, "ga4", "organic_search", "111", "conversion_rate", 1.0, 60.0, 1 / 60),
                     (day, "ga4", "direct", "111", "conversion_rate", 1.0, 40.0, 1 / 40)]
        for day in (*WEEK_DAYS[1:3], date(2026, 3, 4), WEEK_DAYS[3]):  # Ads: every day from 2 to 5 March
            rows.append((day, "google_ads", "paid_search", "1234567890", "ad_clicks", 50.0, None, 50.0))
        conn.executemany("INSERT INTO kpi.kpi_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, true, [], NULL)", rows)
        conn.execute(rollup_view_sql()["kpi_weekly"])
        write_objectives(conn, parse_objectives([
            {"kpi": "sessions", "source": "ga4", "period": "month", "target": 3100},
            {"kpi": "sessions", "source": "ga4", "channel": "organic_search", "period": "month", "target": 1550},
            {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.025},
        ]))
    return path


def table_row(out: str, *cells: str) -> list[str]:
    """The cells of the one table line whose first cells are `cells`."""
    found = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("│")[1:-1]]
        if parts[1:1 + len(cells)] == list(cells):
            found.append(parts)
    assert len(found) == 1, (cells, out)
    return found[0]


def test_kpis_week_judges_objectives_by_elapsed_days_and_keeps_kpis_without_an_all_row(week_db, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli("kpis", "--period", "week", "--db", str(week_db))
    assert code == 0, err
    assert "week 2026-W10 (2026-03-02 .. 2026-03-08" in out
    # columns: family, KPI, source, channel, actual, target (week), attain., status, gap
    # sessions, all channels: 100 a day on 2, 3 and 5 March = 300; the month's 3,100 pro-rated to the 4 elapsed
    # days (2..5 March, as-of the 5th) = 3,100 x 4 / 31 = 400 (not 300: a day without data still counts); 75%
    assert table_row(out, "sessions", "ga4", "all")[4:8] == ["300", "400", "75%", "off_track"]
    # organic search only: 60 x 3 = 180 against 1,550 x 4 / 31 = 200: 90%
    assert table_row(out, "sessions", "ga4", "organic_search")[4:8] == ["180", "200", "90%", "off_track"]
    # a ratio of sums, never pro-rated: (3 + 3) / (180 + 120) = 2.00% against 2.50%: 80%
    assert table_row(out, "conversion_rate", "ga4", "all")[4:8] == ["2.00%", "2.50%", "80%", "off_track"]
    # Google Ads clicks exist only on the paid_search channel: 50 x 4 = 200, shown without an objective
    assert table_row(out, "ad_clicks", "google_ads", "all")[4:8] == ["200", "-", "-", "no objective"]


def test_kpis_week_rolls_levels_and_distinct_counts_up_without_summing_days(tmp_path, monkeypatch):
    """Followers (a level) is each account's last day of the week, added over accounts; reach (distinct people) is
    the platform's own week figure for one account, and no value at all over two accounts (never a sum)."""
    rows = [(date(2026, 3, 2), "linkedin", "1", "followers", 1000.0), (date(2026, 3, 3), "linkedin", "1",
            "followers", 1010.0), (date(2026, 3, 5), "linkedin", "1", "followers", 1030.0),
            (date(2026, 3, 2), "linkedin", "2", "followers", 500.0), (date(2026, 3, 5), "linkedin", "2",
            "followers", 520.0),
            (date(2026, 3, 2), "linkedin", "1", "social_reach", 70.0), (date(2026, 3, 2), "linkedin", "2",
            "social_reach", 30.0),
            (date(2026, 3, 2), "facebook", "9", "social_reach", 300.0), (date(2026, 3, 3), "facebook", "9",
            "social_reach", 400.0)]
    out = _social_week(tmp_path, monkeypatch, rows)
    assert table_row(out, "followers", "linkedin", "all")[4] == "1,550"  # 1,030 (5 March) + 520 (5 March)
    assert table_row(out, "social_reach", "facebook", "all")[4] == "650"  # the platform's week, not 700
    assert table_row(out, "social_reach", "linkedin", "all")[4] == "-"  # two accounts' people do not add up


def test_kpis_week_has_no_followers_total_when_an_account_has_no_level_on_the_last_day(tmp_path, monkeypatch):
    """LinkedIn page 2 was last read on Tuesday 3 March; page 1 on Thursday 5 March, the week's last day with data:
    page 2's level that day is unknown, so the total over pages has no value (1,030 alone would be silently low, and
    1,030 + page 2's Tuesday 510 would add an older day's level)."""
    rows = [(date(2026, 3, 2), "linkedin", "1", "followers", 1000.0), (date(2026, 3, 5), "linkedin", "1",
            "followers", 1030.0), (date(2026, 3, 2), "linkedin", "2", "followers", 500.0),
            (date(2026, 3, 3), "linkedin", "2", "followers", 510.0)]
    out = _social_week(tmp_path, monkeypatch, rows)
    assert table_row(out, "followers", "linkedin", "all")[4] == "-"


def test_kpis_statuses_are_coloured(backfilled, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, out, _ = run_cli("kpis", "--db", str(backfilled.analyst))
    assert "\x1b[32mon_track" in out  # green
    assert "\x1b[31moff_track" in out  # red


def test_kpis_without_any_database_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    code, out, err = run_cli("kpis")
    assert code == 1
    assert "no KPI database yet" in err and "mkpi backfill" in err
    assert "Traceback" not in err
    code, _, err = run_cli("--debug", "kpis")
    assert code == 1 and "Traceback" in err  # --debug shows where it came from


def test_kpis_on_a_ducklake_never_falls_back_on_the_working_file(tmp_path, monkeypatch):
    """A DuckLake warehouse is read through its analysts' copy: a DuckDB file at the working path (left from an
    earlier duckdb backend) is neither read nor named as what is missing."""
    working = tmp_path / "w.duckdb"
    working.touch()
    monkeypatch.setenv("MKPI_ANALYST_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working))
    monkeypatch.setenv("MKPI_WAREHOUSE_BACKEND", "ducklake")
    monkeypatch.setenv("MKPI_DUCKLAKE_CATALOG", str(tmp_path / "lake.ducklake"))
    monkeypatch.setenv("MKPI_DUCKLAKE_DATA_PATH", str(tmp_path / "lake"))
    code, _, err = run_cli("kpis")
    assert code == 1
    assert "no KPI database yet" in err and str(tmp_path / "a.duckdb") in err.replace("\n", "")
    assert "working file" not in err and "mkpi backfill" in err


def test_format_value_by_unit():
    assert format_attainment(0.953) == "95%" and format_attainment(1.125) == "112%"  # half to even, as the page
    assert format_attainment(None) == "-" and format_attainment(float("nan")) == "-"
    assert format_value(4.5643, "ratio", kpi="ad_roas") == "4.56×"  # ROAS as a multiple, in the CLI as on the page
    assert format_value(0.02543, "ratio") == "2.54%"
    assert format_value(9930.4, "currency", "EUR") == "9,930 EUR"
    assert format_value(69.872, "currency", "EUR") == "69.87 EUR"
    assert format_value(7983.0, "count") == "7,983"
    assert format_value(None, "count") == "-"


# --- fx refresh ----------------------------------------------------------------------------------------------------


def test_fx_refresh_applies_changed_rates_and_rebuilds_only_through_the_command(sandbox_env, monkeypatch, tmp_path):
    """A run never changes a stored rate; `mkpi fx refresh` applies the edited rate and rebuilds those days."""
    import yaml

    from sandbox.world import US_ADS_CUSTOMER_ID

    config = tmp_path / "mkpi.yaml"
    base = yaml.safe_load((PROJECT_ROOT / "config" / "mkpi.yaml").read_text())

    def write_rates(rates: dict[str, float]) -> None:
        config.write_text(yaml.safe_dump({**base, "fx_source": "config", "fx_rates": {"USD": rates}}))

    working = tmp_path / "marketing.duckdb"
    monkeypatch.setenv("MKPI_CONFIG", str(config))
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working))
    monkeypatch.setenv("MKPI_OBJECTIVES", str(PROJECT_ROOT / "sandbox" / "objectives.yaml"))
    world = World(seed=1, today=WORLD_TODAY)
    usd = {d: sum(c.cost_micros for c in world.ads_campaign_day(US_ADS_CUSTOMER_ID, d)) / 1e6
           for d in (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3))}

    def ad_cost(path: Path) -> dict[date, float]:
        with duckdb.connect(str(path), read_only=True) as conn:
            return dict(conn.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'ad_cost' AND "
                                     "account_id = ?", [US_ADS_CUSTOMER_ID]).fetchall())

    write_rates({"2026-01-01": 0.9})
    assert run_cli("backfill", "--source", "google_ads", "--start", START, "--end", END)[0] == 0
    assert ad_cost(working) == {d: pytest.approx(v * 0.9) for d, v in usd.items()}
    # USD is 0.80 EUR from March 2: a run keeps the stored rates (a silent change would rewrite history unasked)
    write_rates({"2026-01-01": 0.9, "2026-03-02": 0.8})
    assert run_cli("backfill", "--source", "google_ads", "--start", START, "--end", END)[0] == 0
    assert ad_cost(working) == {d: pytest.approx(v * 0.9) for d, v in usd.items()}
    code, out, err = run_cli("fx", "refresh")
    assert code == 0, out + err
    assert "2 day(s) with a changed rate" in " ".join(out.split())
    expected = {d: pytest.approx(v * (0.9 if d.day == 1 else 0.8)) for d, v in usd.items()}
    assert ad_cost(working) == expected
    assert ad_cost(tmp_path / "kpis.duckdb") == expected  # the analysts' copy was published again
    with duckdb.connect(str(working), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM kpi.fx_refresh_pending").fetchone() == (0,)
    assert run_cli("fx", "refresh")[0] == 0  # nothing left to do: no run
