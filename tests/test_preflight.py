"""Configuration and objectives checked before the first request (issue #19 items 11 and 12).

- Every run checks both files when its resources are set up, and `mkpi backfill` before it launches one: a wrong
  objective fails the run with nothing requested from any platform and nothing written (it used to surface at the
  kpi_vs_objective step, after the raw and KPI tables were committed and the analysts' copy published).
- The objectives file refuses a negative target where the KPI cannot be negative, a channel outside the one
  vocabulary (KPI_CATALOGUE.md "One channel vocabulary across sources") and a source the KPI does not have;
  `mkpi doctor` reports each. An objective channel holding "/" (written before these checks) does not crash the
  dashboard.
- The config refusals of connectors/settings.py each have a test: the ones tests/test_settings.py had not
  (infinite, NaN and negative FX rates, a currency code with a digit, negative lookbacks and rates) are here.
- A config value YAML itself cannot build (`start_date: 2026-13-45`) is one error naming the file, the line and
  the key, in every command, with one traceback under --debug (the CLI's handler used to raise again).
"""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from connectors.errors import ConfigError
from connectors.settings import CHANNELS, load_settings
from kpi_models.objectives import ObjectiveError, parse_objectives
from pipelines.cli import main
from pipelines.cli.backfill import failures_of
from pipelines.lib.preflight import check_run_inputs, read_settings
from sandbox.launcher import start_sandbox
from sandbox.world import World
from tests import battery

LINE = "Configuration before the first request"
UNREADABLE = "Unreadable configuration value"
START, END = "2026-03-01", "2026-03-03"
SESSIONS = {"kpi": "sessions", "source": "ga4", "period": "month", "target": 1000}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def flat(text: str) -> str:
    return " ".join(text.split())


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the objectives file's new refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    ({**SESSIONS, "target": -5}, "sessions cannot be negative (a count): target -5.0"),
    ({"kpi": "ad_cost", "period": "month", "target": -100}, "ad_cost cannot be negative (a currency)"),
    ({"kpi": "email_click_rate", "period": "month", "target": -0.01}, "email_click_rate cannot be negative (a ratio)"),
    ({**SESSIONS, "channel": "paid/search"}, "channel 'paid/search' is not a channel of the vocabulary; use one of "
                                             + ", ".join(CHANNELS) + ", or all (or leave it out)"),
    ({**SESSIONS, "channel": "Paid Search"}, "channel 'Paid Search' is not a channel of the vocabulary"),
    ({**SESSIONS, "source": "ga5"}, "sessions has no source 'ga5' (it has ga4, matomo)"),
    ({"kpi": "search_clicks", "source": "ga4", "period": "month", "target": 10},
     "search_clicks has no source 'ga4' (it has search_console)"),
])
def test_the_objectives_file_refuses_impossible_targets_channels_and_sources(entry, message):
    with pytest.raises(ObjectiveError) as caught:
        parse_objectives([entry], "objectives.yaml")
    assert str(caught.value).startswith(f"objectives.yaml: objectives[0] (kpi {entry['kpi']}): ")
    assert message in str(caught.value)


def test_what_can_be_negative_or_channelled_still_is():
    objectives = parse_objectives([
        {"kpi": "nps", "period": "month", "target": -20},  # a score from -100 to 100
        *({**SESSIONS, "channel": channel, "id": channel} for channel in CHANNELS),
        {**SESSIONS, "channel": "all", "id": "every channel"},
    ])
    assert objectives[0].target == -20
    assert [o.channel for o in objectives[1:]] == [*CHANNELS, None]


def test_doctor_names_an_objective_on_a_channel_that_does_not_exist(monkeypatch, tmp_path):
    objectives = write(tmp_path / "objectives.yaml", "objectives:\n  - kpi: sessions\n    source: ga4\n"
                                                     "    channel: paid/search\n    period: month\n    target: 5\n")
    monkeypatch.setenv("MKPI_OBJECTIVES", str(objectives))
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert "✗ Configuration" in out
    assert (f"{objectives}: objectives[0] (kpi sessions): channel 'paid/search' is not a channel of the "
            "vocabulary") in flat(out)
    assert "The configuration files need attention" in out


# --- checked before the first request ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox():
    # nothing is requested from it: the seed of the HubSpot portal other files build (shared, tests/conftest.py)
    with start_sandbox(World(seed=7, today=date(2026, 3, 31))) as running:
        yield running


@pytest.fixture
def bad_objectives(sandbox, monkeypatch, tmp_path) -> Path:
    """The sandbox configured, and an objectives file whose one entry targets a channel that does not exist."""
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path / "objectives.yaml", "objectives:\n  - kpi: sessions\n    source: ga4\n"
                                               "    channel: paid/search\n    period: month\n    target: 1000\n")
    monkeypatch.setenv("MKPI_OBJECTIVES", str(path))
    return path


def requests_of(sandbox) -> int:
    return sum(server.request_count for server in sandbox.servers if hasattr(server, "request_count"))


@pytest.mark.battery(LINE)
def test_mkpi_backfill_refuses_bad_objectives_before_any_request(sandbox, bad_objectives, tmp_path):
    working = Path(load_settings().duckdb_path)
    before = requests_of(sandbox)
    code, out, err = run_cli("backfill", "--source", "ga4", "--start", START, "--end", END)
    assert code == 1
    message = flat(err)
    assert message.startswith(f"mkpi: objectives: {bad_objectives}: objectives[0] (kpi sessions): channel "
                              "'paid/search' is not a channel of the vocabulary")
    assert "fix: correct that entry: docs/configuration.md#the-objectives-file" in message
    assert "Traceback" not in out + err
    assert requests_of(sandbox) == before  # no platform was asked anything
    assert not working.exists() and not (tmp_path / "kpis.duckdb").exists()  # nothing written or published
    battery.count(LINE, "runs refused before any request", 1)


@pytest.mark.battery(LINE)
def test_a_dagster_run_refuses_bad_objectives_when_its_resources_are_set_up(sandbox, bad_objectives):
    """A run the schedule or the UI launches (no CLI in front): it fails at setup, before its first step."""
    from pipelines.definitions import defs
    from pipelines.defs.schedules import REFRESHES, range_tags

    keys = next(r.asset_keys() for r in REFRESHES if r.source == "ga4")
    working = Path(load_settings().duckdb_path)
    before = requests_of(sandbox)
    result = defs.resolve_job_def("daily_refresh_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, asset_selection=list(keys),
        tags={"mkpi/source": "ga4", **range_tags(date(2026, 3, 1), date(2026, 3, 3))},
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
    assert not result.success
    assert result.get_asset_materialization_events() == []
    (failure,) = failures_of(result)
    assert (failure.where, failure.cls, failure.kind) == ("run setup", "ObjectiveError", "configuration")
    assert "channel 'paid/search' is not a channel of the vocabulary" in failure.message
    assert requests_of(sandbox) == before
    assert not working.exists()
    battery.count(LINE, "runs refused before any request", 1)


def test_check_run_inputs_reads_both_files():
    settings = check_run_inputs()
    assert settings.objectives_path == "config/objectives.yaml"


# --- config refusals without a test in tests/test_settings.py --------------------------------------------------


@pytest.mark.parametrize(("text", "key", "shown"), [
    ("fx_rates:\n  USD:\n    2026-01-01: .inf\n", "fx_rates.USD.2026-01-01", "must be a positive number, got inf"),
    ("fx_rates:\n  USD:\n    2026-01-01: .nan\n", "fx_rates.USD.2026-01-01", "must be a positive number, got nan"),
    ("fx_rates:\n  USD:\n    2026-01-01: -0.9\n", "fx_rates.USD.2026-01-01", "must be a positive number, got -0.9"),
    ("fx_rates:\n  USD:\n    2026-01-01: '-inf'\n", "fx_rates.USD.2026-01-01", "must be a positive number"),
    ("fx_rates:\n  U5D:\n    2026-01-01: 1.1\n", "fx_rates.U5D", "not a 3-letter ISO 4217 currency code"),
    ("reporting_currency: 'EU1'\n", "reporting_currency", "is not a 3-letter ISO 4217 code"),
    ("hubspot:\n  lookback_seconds: -5\n", "hubspot.lookback_seconds", "at least 1 (search indexing lags writes), "
                                                                      "got -5"),
    ("hubspot:\n  email_reread_days: -1\n", "hubspot.email_reread_days", "at least 1, got -1"),
    ("hubspot:\n  requests_per_10s: -10\n", "hubspot.requests_per_10s", "between 1 and 250"),
    ("hubspot:\n  search_per_second: -2\n", "hubspot.search_per_second", "at least 1, got -2"),
    ("search_console:\n  queries_per_minute: -1\n", "search_console.queries_per_minute", "at least 1, got -1"),
    ("matomo:\n  requests_per_second: .inf\n", "matomo.requests_per_second", "above 0, got inf"),
    ("min_denominators:\n  ratio: .inf\n", "min_denominators.ratio", "at least 0, got inf"),
    ("channels:\n  ga4:\n    Email: e-mail\n", "channels.ga4", "'Email' maps to 'e-mail', which is not a channel"),
])
def test_config_refuses_impossible_rates_lookbacks_currencies_and_channels(tmp_path, text, key, shown):
    path = write(tmp_path / "mkpi.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"config file {path}: ")
    assert shown in str(caught.value)


# --- a value YAML cannot build ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key", "named"), [
    ("start_date: 2026-13-45\n", "start_date", "line 1: start_date '2026-13-45' cannot be read (month must be in "
                                               "1..12)"),
    ("fx_source: config\nfx_rates:\n  USD:\n    2026-02-30: 0.9\n", "fx_rates.USD.2026-02-30",
     "line 4: fx_rates.USD.2026-02-30 cannot be read (day is out of range for month)"),
])
def test_a_value_yaml_cannot_build_is_one_error_naming_file_line_and_key(tmp_path, monkeypatch, text, key, named):
    path = write(tmp_path / "mkpi.yaml", text)
    with pytest.raises(ConfigError) as caught:
        read_settings(path)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"config file {path}, {named}; write a valid value")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.battery(UNREADABLE)
@pytest.mark.parametrize("argv", [["kpis"], ["backfill", "--start", START, "--end", END], ["fx", "refresh"]])
def test_every_command_names_an_unreadable_config_value_once(tmp_path, monkeypatch, argv):
    path = write(tmp_path / "mkpi.yaml", "reporting_timezone: Europe/Paris\nstart_date: 2026-13-45\n")
    monkeypatch.setenv("MKPI_CONFIG", str(path))
    code, out, err = run_cli(*argv)
    assert code == 1
    assert "Traceback" not in out + err
    assert flat(err) == (f"mkpi: configuration: config file {path}, line 2: start_date '2026-13-45' cannot be read "
                         "(month must be in 1..12); write a valid value (a date as YYYY-MM-DD), or quote it fix: "
                         "correct that key: docs/configuration.md lists every key, its default and its allowed "
                         "values (`mkpi doctor` checks both files)")
    code, out, err = run_cli("--debug", *argv)
    assert code == 1 and err.count("Traceback (most recent call last)") == 1  # one, not two chained
    battery.count(UNREADABLE, "commands naming the file, line and key", 1)


def test_doctor_names_an_unreadable_config_value(tmp_path, monkeypatch):
    path = write(tmp_path / "mkpi.yaml", "start_date: 2026-13-45\n")
    monkeypatch.setenv("MKPI_CONFIG", str(path))
    code, out, err = run_cli("doctor")
    assert code == 1
    assert "Traceback" not in out + err
    assert f"✗ config file {path}, line 1: start_date '2026-13-45' cannot be read" in flat(out)
    assert "no platform was checked" in out


# --- the dashboard ------------------------------------------------------------------------------------------------


def test_an_objective_channel_with_a_slash_does_not_break_the_dashboard():
    """kpi.kpi_vs_objective as a file written before the channel check left it: the page still renders it."""
    from kpi_models.catalogue import rollup_view_sql
    from kpi_models.dashboard import dashboard_model, render_dashboard
    from kpi_models.objectives import build_kpi_vs_objective

    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                 "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                 "is_final BOOLEAN, quality VARCHAR[], attribution VARCHAR)")
    conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, channel VARCHAR, "
                 "customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                 "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                 "is_final BOOLEAN)")
    conn.execute("INSERT INTO kpi.kpi_daily SELECT CAST(day AS DATE), 'ga4', 'paid_search', 'p1', 'sessions', 50, "
                 "NULL, 50, NULL, true, [], NULL FROM range(DATE '2026-03-01', DATE '2026-03-21', INTERVAL 1 DAY) "
                 "AS t(day)")
    for statement in rollup_view_sql().values():
        conn.execute(statement)
    build_kpi_vs_objective(conn, parse_objectives([{**SESSIONS, "channel": "paid_search", "target": 1500}]),
                           as_of=date(2026, 3, 20))
    conn.execute("UPDATE kpi.kpi_vs_objective SET channel = 'paid/search'")
    conn.execute("UPDATE kpi.objective SET channel = 'paid/search'")
    moment = datetime(2026, 3, 21, 6, 0, tzinfo=UTC)
    page = render_dashboard(conn, generated_at=moment)
    assert page.startswith("<!DOCTYPE html>") or page.lstrip().lower().startswith("<!doctype html>")
    shown = [o["channel"] for rows in dashboard_model(conn, generated_at=moment)["objectives"].values() for o in rows]
    assert "paid/search" in shown
