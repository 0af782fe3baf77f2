"""The static KPI dashboard: every family shown, statuses and formulas on the page, offline, never crashing on
an empty database, and rendering in a real browser without a console error."""

import html
import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from kpi_models.catalogue import FAMILIES, load_catalogue, rollup_view_sql
from kpi_models.dashboard import NO_DATA, dashboard_path, render_dashboard, write_dashboard
from kpi_models.objectives import build_kpi_vs_objective, parse_objectives

CHROMIUM = Path("/usr/bin/chromium")
GENERATED_AT = datetime(2026, 3, 21, 6, 0, tzinfo=UTC)
FIRST, AS_OF = date(2026, 1, 1), date(2026, 3, 20)

# (kpi, source, channel, numerator, denominator, currency) for every day FIRST..AS_OF: one KPI or more per family.
DAILY = [
    ("sessions", "ga4", "organic_search", 100, None, None),
    ("sessions", "ga4", "paid_search", 50, None, None),
    ("sessions", "matomo", "organic_search", 90, None, None),
    ("conversion_rate", "ga4", "organic_search", 3, 100, None),
    ("search_clicks", "search_console", "organic_search", 40, None, None),
    ("ad_cost", "google_ads", "paid_search", 20.0, None, "EUR"),
    ("email_click_rate", "hubspot", "email", 2, 100, None),
    ("revenue", "ga4", "all", 500.0, None, "EUR"),
    ("revenue", "matomo", "all", 480.0, None, "EUR"),
    ("new_customers", "hubspot", "organic_search", 1, None, None),
    ("new_customers", "hubspot", "direct", 2, None, None),
]

OBJECTIVES = [
    {"kpi": "sessions", "source": "ga4", "period": "month", "target": 4650},  # 150 a day: exactly on pace
    {"kpi": "conversion_rate", "source": "ga4", "period": "month", "target": 0.031},  # 0.03: at risk
    {"kpi": "conversion_rate", "source": "ga4", "channel": "social", "period": "month", "target": 0.02},  # no rows
    {"kpi": "email_click_rate", "period": "month", "target": 0.05},  # 0.02: off track
    {"kpi": "ad_cost", "period": "month", "target": 700},
    {"kpi": "churn_rate", "period": "month", "target": 0.01},  # 2 / 100, but March is not over: judged later
]


def build_database(conn: duckdb.DuckDBPyConnection) -> None:
    """Hand-made kpi_daily and crm_monthly rows; the real roll-up views and objective comparison on top."""
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily (date DATE, source VARCHAR, channel VARCHAR, account_id VARCHAR, "
                 "kpi VARCHAR, numerator DOUBLE, denominator DOUBLE, value DOUBLE, currency VARCHAR, "
                 "is_final BOOLEAN, quality VARCHAR[])")
    specs = ", ".join(f"('{k}', '{s}', '{c}', {n}, {d or 'NULL'}, " + (f"'{cur}')" if cur else "NULL)")
                      for k, s, c, n, d, cur in DAILY)
    conn.execute(f"""
        INSERT INTO kpi.kpi_daily
        SELECT CAST(day AS DATE), source, channel, 'acc1', kpi, num, den, coalesce(num / den, num), currency, true, []
        FROM range(?::DATE, ?::DATE + 1, INTERVAL 1 DAY) AS t(day)
        CROSS JOIN (VALUES {specs}) AS v(kpi, source, channel, num, den, currency)""", [FIRST, AS_OF])
    conn.execute("CREATE TABLE kpi.crm_monthly (month DATE, source VARCHAR, account_id VARCHAR, channel VARCHAR, "
                 "customers_lost BIGINT, customers_at_start BIGINT, repeat_customers BIGINT, "
                 "customers_with_won_deal BIGINT, promoters BIGINT, detractors BIGINT, nps_responses BIGINT, "
                 "is_final BOOLEAN)")
    for month in (date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)):
        conn.execute("INSERT INTO kpi.crm_monthly VALUES (?, 'hubspot', 'portal', 'all', 2, 100, 20, 80, 50, 10, 100, "
                     "?)", [month, month < date(2026, 3, 1)])
    for statement in rollup_view_sql().values():
        conn.execute(statement)
    build_kpi_vs_objective(conn, parse_objectives(OBJECTIVES), as_of=AS_OF)
    conn.execute("CREATE SCHEMA ga4")
    conn.execute("CREATE TABLE ga4.traffic_by_channel AS SELECT DATE '2026-03-20' AS date, "
                 "TIMESTAMPTZ '2026-03-21 04:00:00+00' AS _loaded_at")


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """(html, path, kpi_vs_objective rows of the current month): built once, shared by the unit and browser tests."""
    folder = tmp_path_factory.mktemp("dashboard")
    with duckdb.connect(str(folder / "work.duckdb")) as conn:
        build_database(conn)
        result = write_dashboard(conn, folder / "out" / "dashboard.html", generated_at=GENERATED_AT)
        page = Path(result.path).read_text(encoding="utf-8")
        current = conn.execute("SELECT kpi, channel, status FROM kpi.kpi_vs_objective "
                               "WHERE period_start = DATE '2026-03-01'").fetchall()
    return page, Path(result.path), current, result


def test_every_family_has_a_section_and_a_trend_chart(dashboard):
    page, _, _, result = dashboard
    assert result.families == FAMILIES
    for family in FAMILIES:
        assert f'id="family-{family}"' in page
        assert f'id="trend-{family}"' in page, family
    assert 'id="mix-web"' in page
    assert NO_DATA not in page


def test_cards_show_statuses_values_and_objectives(dashboard):
    page, _, current, _ = dashboard
    statuses = {(kpi, channel): status for kpi, channel, status in current}
    # The objectives module's verdicts, shown as they are (not recomputed).
    assert statuses[("sessions", "all")] == "on_track"
    assert statuses[("conversion_rate", "all")] == "at_risk"
    assert statuses[("conversion_rate", "social")] == "insufficient_data"
    assert statuses[("email_click_rate", "all")] == "off_track"
    # churn is a flow over a fixed base: the running month is judged once complete (kpi_models.objectives)
    assert statuses[("churn_rate", "all")] == "insufficient_data"
    for status in set(statuses.values()):
        assert f'class="card status-{status}"' in page
    assert "March 2026" in page
    assert "objective 4,650 / month" in page
    assert "2.00%" in page and "objective 5.00% / month" in page  # e-mail click rate: 2 / 100, ratio of sums
    assert 'class="card no-objective"' in page  # e.g. search clicks: a value, no objective


def test_formulas_and_sources_are_on_the_page(dashboard):
    page, _, _, _ = dashboard
    for kpi in load_catalogue().kpis.values():
        assert html.escape(kpi.formula) in page, kpi.kpi  # the "Formulas and sources" footnote of its family
    for kpi in {k for k, *_ in DAILY} | {"churn_rate", "loyalty_rate", "nps"}:
        card = re.search(rf'<div class="card [^"]*" title="([^"]*)" data-kpi="{kpi}"', page)
        assert card and html.escape(load_catalogue()[kpi].formula) in card.group(1), kpi  # and on hover
    assert "kpi.web_daily" in page  # the source table, beside the source code


def test_sources_are_never_blended_and_mix_is_a_ratio_of_sums(dashboard):
    page, _, _, _ = dashboard
    assert "organic_search (ga4)" in page and "organic_search (matomo)" in page
    assert "all channels (ga4)" in page and "all channels (matomo)" in page
    assert '"67%"' in page and '"33%"' in page  # GA4 sessions: 100 / 150 organic, 50 / 150 paid
    assert '"100%"' in page  # Matomo: one channel


def test_freshness_from_raw_tables(dashboard):
    page, _, _, _ = dashboard
    assert "the raw tables (max(date), max(_loaded_at))" in page
    assert re.search(r"<td>ga4</td><td>2026-03-20</td><td>1 d</td>", page)


def test_offline_plotly_inlined_once_no_remote_resources(dashboard):
    page, path, _, result = dashboard
    remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", page, re.I)
    assert remote == []
    assert "@import" not in page and "fonts.googleapis" not in page
    assert page.count("* plotly.js v") == 1  # the library's banner: inlined exactly once
    assert page.count("Plotly.newPlot(") == len(FAMILIES) + 1  # six trends and the channel mix
    assert result.bytes == path.stat().st_size
    assert sorted(p.name for p in path.parent.iterdir()) == ["dashboard.html"]  # no temp file left


def test_empty_database_renders_no_data_yet(tmp_path):
    with duckdb.connect(str(tmp_path / "empty.duckdb")) as conn:
        page = render_dashboard(conn, generated_at=GENERATED_AT)
        result = write_dashboard(conn, tmp_path / "dashboard.html")
    for family in FAMILIES:
        section = page.split(f'id="family-{family}"', 1)[1].split("</section>", 1)[0]
        assert NO_DATA in section, family
    assert "js-plotly-plot" not in page and "Plotly.newPlot" not in page
    assert result.families == ()
    assert (tmp_path / "dashboard.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_partial_tables_render_what_exists(tmp_path):
    """Only web data loaded, no objectives or monthly views yet: web shows, the others say no data yet."""
    with duckdb.connect(str(tmp_path / "partial.duckdb")) as conn:
        conn.execute("CREATE SCHEMA kpi; CREATE SCHEMA meta")
        conn.execute("CREATE TABLE kpi.kpi_daily AS SELECT DATE '2026-03-01' + CAST(i AS INTEGER) AS date, "
                     "'ga4' AS source, 'direct' AS channel, '1' AS account_id, 'sessions' AS kpi, 10.0 AS numerator, "
                     "CAST(NULL AS DOUBLE) AS denominator, 10.0 AS value, CAST(NULL AS VARCHAR) AS currency, "
                     "true AS is_final, CAST([] AS VARCHAR[]) AS quality FROM range(5) t(i)")
        conn.execute("CREATE TABLE meta.source_freshness AS SELECT 'ga4' AS source, 'traffic_by_channel' AS "
                     "table_name, DATE '2026-03-05' AS last_date, TIMESTAMPTZ '2026-03-06 01:00:00+00' AS "
                     "last_loaded_at, 5 AS row_count")
        page = render_dashboard(conn, generated_at=GENERATED_AT)
    assert 'id="trend-web"' in page and 'id="mix-web"' in page
    assert "no objective set" in page
    assert "meta.source_freshness" in page and "<td>2026-03-05</td><td>16 d</td>" in page
    for family in FAMILIES[1:]:
        assert NO_DATA in page.split(f'id="family-{family}"', 1)[1].split("</section>", 1)[0]


def test_broken_view_and_odd_tables_do_not_fail_the_page(tmp_path):
    """A roll-up view whose table was dropped, or a kpi_vs_objective of another layout, reads as "no data yet"."""
    with duckdb.connect(str(tmp_path / "broken.duckdb")) as conn:
        conn.execute("CREATE SCHEMA kpi")
        conn.execute("CREATE TABLE kpi.crm_monthly AS SELECT DATE '2026-01-01' AS month_start")
        conn.execute("CREATE VIEW kpi.kpi_monthly AS SELECT * FROM kpi.crm_monthly")
        conn.execute("DROP TABLE kpi.crm_monthly")
        conn.execute("CREATE TABLE kpi.kpi_vs_objective AS SELECT 'sessions' AS kpi")
        page = render_dashboard(conn, generated_at=GENERATED_AT)
    assert page.count(f'<div class="nodata">{NO_DATA}</div>') == len(FAMILIES)


def test_dashboard_path_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MKPI_DASHBOARD_PATH", raising=False)
    assert dashboard_path() == Path("data/dashboard.html")
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "d.html"))
    assert dashboard_path() == tmp_path / "d.html"


def test_asset_writes_the_file_with_metadata(monkeypatch, tmp_path):
    from pipelines.defs.publish.dashboard import dashboard as dashboard_asset
    from pipelines.lib.resources import SettingsResource, WarehouseResource

    work = tmp_path / "work.duckdb"
    with duckdb.connect(str(work)) as conn:
        build_database(conn)
    monkeypatch.setenv("MKPI_DASHBOARD_PATH", str(tmp_path / "site" / "dashboard.html"))
    result = dg.materialize([dashboard_asset], resources={
        "settings": SettingsResource(), "warehouse": WarehouseResource(database=str(work))})
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert event.asset_key == dg.AssetKey(["publish", "dashboard"])
    assert metadata["path"].value == str(tmp_path / "site" / "dashboard.html")
    assert metadata["bytes"].value == (tmp_path / "site" / "dashboard.html").stat().st_size
    assert metadata["families"].value == ", ".join(FAMILIES)
    spec = dashboard_asset.specs_by_key[dg.AssetKey(["publish", "dashboard"])]
    assert spec.group_name == "publish"
    assert {dep.asset_key for dep in spec.deps} == {dg.AssetKey(["kpi", "kpi_vs_objective"]),
                                                   dg.AssetKey(["kpi", "kpi_daily"]),
                                                   dg.AssetKey(["publish", "analyst_copy"])}  # meta.source_status


def test_renders_in_chromium_without_errors(dashboard, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, path, _, _ = dashboard
    errors: list[str] = []
    remote: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.route(re.compile(r"^https?://"), lambda route: (remote.append(route.request.url), route.abort()))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=10_000)
            for family in FAMILIES:
                charts = page.locator(f"section#family-{family} .js-plotly-plot")
                assert charts.count() >= 1, family
                assert page.locator(f"section#family-{family} .js-plotly-plot svg.main-svg").count() >= 1, family
                assert page.locator(f"#trend-{family} .scatterlayer .trace").count() >= 1, family
            assert page.locator("#mix-web .barlayer .trace").count() == 2  # organic_search, paid_search
            assert page.locator(".card[title]").count() >= 10
            # The KPI menu switches the trend chart without errors.
            page.locator("#trend-web .updatemenu-header-group").click()
            page.locator("#trend-web .updatemenu-dropdown-button", has_text="Conversion rate").click()
            page.wait_for_timeout(200)
            assert "Conversion rate" in page.locator("#trend-web .ytitle").text_content()
            page.locator("#trend-web .updatemenu-header-group").click()
            page.locator("#trend-web .updatemenu-dropdown-button", has_text="Sessions").click()
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    shutil.copyfile(shot, "/tmp/mkpi-dashboard.png")
    assert errors == []
    assert remote == []
    assert shot.stat().st_size > 10_000
