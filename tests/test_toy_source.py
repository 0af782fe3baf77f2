"""A sixth platform through the registry alone (issue #20's "done when"): a connector module, a sandbox server, a
registry entry and one SQL file (tests/toy_source/) make it appear in the schedules and in the Dagster definitions,
where its raw asset loads the server's numbers through the shared source component.

The registry entry is added at test time (connectors/registry.py is the one list; the toy must not ship in it). The
truth is the test's own `VISITS`, served by the toy server; the loaded rows are compared with it.
"""

import contextlib
import io
from datetime import date, datetime, timedelta

import dagster as dg
import duckdb
import pytest

from connectors import registry
from pipelines.cli import main
from pipelines.definitions import build_definitions  # the code location's own defs: built before the toy is added
from pipelines.lib.partitions import SOURCE_TAG
from tests.toy_source import connector as toy
from tests.toy_source.server import ToyServer

TOY = registry.SourceSpec(
    "toy", "Toy", "tests.toy_source.connector", "report", reread_days=2, stale_after_days=2,
    setup="set MKPI_TOY_URL and MKPI_TOY_SITES", configured=toy.is_configured, kpi_sql="toy_daily.sql")
# it has no section in the settings (it is configured by its environment variables): its re-read window is its
# registry default, in the schedules and in the KPI context alike
DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(5)]
# the truth: site a every day, site b from the third day on (a site's missing day is no row, not zero)
VISITS = {**{("a", d): 100 + i for i, d in enumerate(DAYS)}, **{("b", d): 7 * i for i, d in enumerate(DAYS) if i >= 2}}
TOY_ASSET = dg.AssetKey(["toy", "visits_daily"])


def toy_step(defs: dg.Definitions) -> dg.AssetsDefinition:
    """The toy's step as the definitions hold it (before their resources are bound)."""
    (step,) = [a for a in defs.assets or () if isinstance(a, dg.AssetsDefinition) and TOY_ASSET in a.keys]
    return step


@pytest.fixture
def toy_registered(monkeypatch):
    """The toy in the registry and configured (its server running), with the project's config/mkpi.yaml."""
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, TOY))
    monkeypatch.setitem(registry._BY_CODE, "toy", TOY)
    with ToyServer(VISITS) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MKPI_TOY_SITES", "a,b")
        yield server


def test_the_toy_is_in_the_daily_refresh(toy_registered):
    from connectors.settings import load_settings
    from pipelines.defs.schedules import refresh_requests, refreshes

    assert ("toy", ("toy.visits_daily",)) in {(r.source, r.raw_tables) for r in refreshes()}
    requests = {r.tags[SOURCE_TAG]: r for r in refresh_requests(date(2026, 3, 10), load_settings())}
    # its registry default re-read window (2 days) ending yesterday, over its raw asset and nothing of the others
    toy_request = requests["toy"]
    assert (toy_request.tags["dagster/asset_partition_range_start"],
            toy_request.tags["dagster/asset_partition_range_end"]) == ("2026-03-08", "2026-03-09")
    assert TOY_ASSET in toy_request.asset_selection
    assert not any(k.path[0] in {"ga4", "matomo", "search_console", "google_ads"} for k in toy_request.asset_selection)


def test_the_toy_is_in_the_definitions_and_its_asset_loads_the_servers_numbers(toy_registered, tmp_path):
    from connectors.settings import load_settings
    from pipelines.lib.resources import SettingsResource, WarehouseResource

    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    node = graph.get(TOY_ASSET)
    assert node.group_name == "toy" and node.partitions_def is not None
    # the configured start date (the KPI assets' partitions, built with the same settings, are the same)
    assert node.partitions_def.get_first_partition_key() == load_settings().start_date.isoformat()
    assert dg.AssetCheckKey(TOY_ASSET, "every_account_loaded") in graph.asset_check_keys
    assert TOY_ASSET in defs.resolve_job_def("daily_refresh_job").asset_layer.selected_asset_keys

    database = tmp_path / "w.duckdb"
    result = dg.materialize([toy_step(defs)], resources={"settings": SettingsResource(),
                                                "warehouse": WarehouseResource(database=str(database))},
                            tags={"dagster/asset_partition_range_start": "2026-03-01",
                                  "dagster/asset_partition_range_end": "2026-03-05"})
    assert result.success
    events = result.get_asset_materialization_events()
    assert sorted(e.partition for e in events) == [d.isoformat() for d in DAYS]  # one per partition of the range
    metadata = {k: v.value for k, v in events[0].materialization.metadata.items()}
    assert metadata["dagster/row_count"] == len(VISITS) == 8
    assert (metadata["window_start"], metadata["window_end"]) == ("2026-03-01", "2026-03-05")
    assert metadata["account_ids"] == "a, b" and metadata["accounts_failed"] == 0
    with duckdb.connect(str(database), read_only=True) as conn:
        rows = conn.execute("SELECT site_id, date, visits FROM toy.visits_daily").fetchall()
    assert {(s, d): v for s, d, v in rows} == VISITS


def test_a_toy_site_that_fails_is_named_and_the_other_loads(toy_registered, tmp_path, monkeypatch):
    from pipelines.lib.resources import SettingsResource, WarehouseResource

    monkeypatch.setenv("MKPI_TOY_SITES", "a,nosuch")
    defs = build_definitions()
    database = tmp_path / "w.duckdb"
    checks = [c for c in defs.asset_checks or () if isinstance(c, dg.AssetChecksDefinition)
              and dg.AssetCheckKey(TOY_ASSET, "every_account_loaded") in c.check_keys]
    result = dg.materialize([toy_step(defs), *checks], partition_key="2026-03-02",
                            resources={"settings": SettingsResource(),
                                       "warehouse": WarehouseResource(database=str(database))},
                            raise_on_error=False)
    assert not result.success  # the check fails the run, naming the site
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed and "nosuch" in evaluation.description
    with duckdb.connect(str(database), read_only=True) as conn:
        assert conn.execute("SELECT site_id, date, visits FROM toy.visits_daily").fetchall() == [
            ("a", date(2026, 3, 2), VISITS[("a", date(2026, 3, 2))])]


def test_the_toy_run_request_names_its_day_in_the_reporting_time_zone(toy_registered):
    from zoneinfo import ZoneInfo

    from connectors.settings import load_settings
    from pipelines.defs.schedules import build_schedules

    daily = next(s for s in build_schedules(load_settings()) if s.name == "daily_refresh")
    tick = datetime(2026, 3, 10, 6, 0, tzinfo=ZoneInfo("Europe/Paris"))
    requests = daily(dg.build_schedule_context(scheduled_execution_time=tick))
    assert isinstance(requests, list)
    assert [r.run_key for r in requests if r.tags[SOURCE_TAG] == "toy"] == ["daily_refresh:toy:2026-03-10"]


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_mkpi_doctor_checks_the_toy(toy_registered):
    code, out = run_cli("doctor")
    assert "Toy" in out and "toy site a configured" in out and "toy site b configured" in out
    assert code == 0, out  # the toy is the only configured platform, and its probe is fine


def test_mkpi_backfill_runs_the_toy_and_loads_its_numbers(toy_registered, monkeypatch, tmp_path):
    import pipelines.definitions

    # the code location as it loads with the toy registered (a code server started after the entry was added)
    monkeypatch.setattr(pipelines.definitions, "defs", build_definitions())
    working = tmp_path / "marketing.duckdb"
    monkeypatch.setenv("MKPI_DUCKDB_PATH", str(working))
    code, out = run_cli("backfill", "--source", "toy", "--start", "2026-03-01", "--end", "2026-03-05")
    assert code == 0, out
    with duckdb.connect(str(working), read_only=True) as conn:
        rows = conn.execute("SELECT site_id, date, visits FROM toy.visits_daily").fetchall()
        kpi_rows = conn.execute("SELECT date, channel, account_id, kpi, numerator, denominator, value, currency, "
                                "is_final, quality FROM kpi.kpi_daily WHERE source = 'toy'").fetchall()
        others = conn.execute("SELECT count(*) FROM kpi.kpi_daily WHERE source <> 'toy'").fetchone()
    assert {(s, d): v for s, d, v in rows} == VISITS
    # its KPI SQL (tests/toy_source/toy_daily.sql) reached kpi.kpi_daily through the registry entry alone: one
    # sessions row per site and day the server has (site b from the third day), channel 'all', value = the visits;
    # loaded in December for March days, far past the toy's 2-day re-read window: final, no quality flag
    expected = {(d, "all", site, "sessions"): (float(n), None, float(n), None, True, []) for (site, d), n in {
        ("a", date(2026, 3, 1)): 100, ("a", date(2026, 3, 2)): 101, ("a", date(2026, 3, 3)): 102,
        ("a", date(2026, 3, 4)): 103, ("a", date(2026, 3, 5)): 104,
        ("b", date(2026, 3, 3)): 14, ("b", date(2026, 3, 4)): 21, ("b", date(2026, 3, 5)): 28}.items()}
    assert {tuple(r[:4]): tuple(r[4:]) for r in kpi_rows} == expected
    assert len(kpi_rows) == len(expected) and others == (0,)  # the toy's run wrote only the toy's rows


def test_the_toys_kpi_rows_are_provisional_inside_its_reread_window(toy_registered):
    """is_final per the toy's re-read window (2 days): a day loaded the next day is provisional, one loaded two days
    later is final; two loads of one site and day are summed (a count, never averaged)."""
    from connectors.batches import Window
    from kpi_models.context import KpiContext
    from kpi_models.layer import rebuild_kpi_daily

    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA toy")
    conn.execute("CREATE TABLE toy.visits_daily (site_id VARCHAR, date DATE, visits BIGINT, _loaded_at TIMESTAMPTZ, "
                 "_window_start DATE, _window_end DATE)")
    conn.execute("INSERT INTO toy.visits_daily VALUES "
                 "('a', '2026-03-01', 10, '2026-03-03 09:00:00+00', NULL, NULL), "  # 2 days later: final
                 "('a', '2026-03-02', 20, '2026-03-03 09:00:00+00', NULL, NULL), "  # the next day: provisional
                 "('a', '2026-03-02', 5, '2026-03-03 09:00:00+00', NULL, NULL)")
    context = KpiContext(tz="UTC", as_of=date(2026, 3, 2), reread_days={"toy": 2})
    rebuild_kpi_daily(conn, Window(date(2026, 3, 1), date(2026, 3, 2)), context, sources=["toy"])
    rows = conn.execute("SELECT date, account_id, kpi, value, is_final, quality FROM kpi.kpi_daily "
                        "WHERE source = 'toy' ORDER BY date").fetchall()
    assert rows == [(date(2026, 3, 1), "a", "sessions", 10.0, True, []),
                    (date(2026, 3, 2), "a", "sessions", 25.0, False, ["provisional"])]
    # the toy's declared raw presence (`-- @raw toy.visits_daily date`): its KPI is expected on both days, and is there
    from kpi_models.checks import check_kpi_completeness

    assert check_kpi_completeness(conn, Window(date(2026, 3, 1), date(2026, 3, 2)), "UTC", sources=["toy"]).passed
    conn.execute("DELETE FROM kpi.kpi_daily WHERE source = 'toy' AND date = '2026-03-02'")
    missing = check_kpi_completeness(conn, Window(date(2026, 3, 1), date(2026, 3, 2)), "UTC", sources=["toy"])
    assert not missing.passed and "toy" in str(missing.metadata())
    # a context with no window for the toy (built before it was registered): its rows stay, provisional
    context = KpiContext(tz="UTC", as_of=date(2026, 3, 2), reread_days={})
    rebuild_kpi_daily(conn, Window(date(2026, 3, 1), date(2026, 3, 2)), context, sources=["toy"])
    assert conn.execute("SELECT date, value, is_final FROM kpi.kpi_daily WHERE source = 'toy' ORDER BY date"
                        ).fetchall() == [(date(2026, 3, 1), 10.0, False), (date(2026, 3, 2), 25.0, False)]


@pytest.mark.parametrize(("line", "error"), [
    ("-- @kpi no_such_kpi: visits", "not in the catalogue"),
    ("-- @kpi ad_cost: visits", "money"),  # money needs a currency and FX conversion
    ("-- @kpi bounce_rate: bounces", "needs `<numerator> / <denominator>`"),
    ("-- @kpi sessions: visits / visits", "no denominator"),
    ("-- @kpi sessions: visits\n-- @kpi sessions: visits", "declared twice"),
    ("SELECT 1", "no `-- @kpi"),
    ("-- @kpi sessions: visits\n-- @raw toy.a date\n-- @raw toy.b date", "one `-- @raw"),
])
def test_a_sources_kpi_sql_declares_only_catalogue_kpis_as_the_catalogue_defines_them(line, error):
    from kpi_models.catalogue import CatalogueError, add_source_sql, load_catalogue

    with pytest.raises(CatalogueError, match=error.replace("(", r"\(")):
        add_source_sql(load_catalogue(), "toy", line + "\nSELECT 1", "toy_daily.sql")


def test_a_ratio_kpi_from_a_sources_sql_keeps_the_catalogues_rules():
    """bounce_rate declared by a source: the catalogue's unit, aggregation and direction, the source's numerator and
    denominator (summed, the value computed from the sums)."""
    from kpi_models.catalogue import add_source_sql, load_catalogue

    base = load_catalogue()
    catalogue = add_source_sql(base, "toy", "-- @kpi bounce_rate: bounces / visits\nSELECT 1", "toy_daily.sql")
    kpi = catalogue["bounce_rate"]
    assert (kpi.unit, kpi.aggregation, kpi.direction) == ("ratio", "ratio", "lower")
    assert kpi.source_codes == (*base["bounce_rate"].source_codes, "toy")
    toy_source = kpi.source("toy")
    assert (toy_source.relation, toy_source.numerator, toy_source.denominator) == ("toy_kpi_sql", "bounces", "visits")
