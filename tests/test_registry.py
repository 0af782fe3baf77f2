"""The source registry and the source protocol (issue #20 item 1): one list of sources, one shape per connector.

A sixth platform must be a connector module, a sandbox server, a registry entry and SQL: so every registry entry's
module answers the protocol of connectors/source.py, and no module outside the registry spells out the list of
sources again (a literal holding three or more source codes is such a list).
"""

from __future__ import annotations

import ast
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from connectors import raw_tables, registry
from connectors.batches import Stream, Window
from connectors.probe import CONFIG_REFUSED, Finding
from connectors.settings import load_settings
from connectors.source import SourceConnector, SourceModule, stream_named

ROOT = Path(__file__).resolve().parents[1]
# the registry itself, and the sandbox (it emulates each platform and names them in its own right)
ALLOWED = {ROOT / "connectors" / "registry.py"}
SCANNED = ("connectors", "kpi_models", "pipelines")
# Copies still being replaced by their owners in this change (issue #20 item 2, the Dagster side): each must go; no
# other file may add one.
PENDING: set[str] = set()  # files allowed to list the sources for now: none


@pytest.fixture
def empty_settings(tmp_path):
    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    return load_settings(path, environ={})


def test_codes_run_hubspot_first_then_the_report_sources():
    assert registry.codes() == ("hubspot", "ga4", "search_console", "matomo", "google_ads", "facebook", "instagram",
                                "linkedin")
    assert registry.codes("incremental") == ("hubspot",)
    assert registry.codes("report") == ("ga4", "search_console", "matomo", "google_ads", "facebook", "instagram",
                                        "linkedin")
    assert registry.money_codes() == ("ga4", "matomo", "google_ads")


@pytest.mark.parametrize("spec", registry.SOURCES, ids=lambda s: s.code)
def test_every_registered_module_answers_the_source_protocol(spec, empty_settings):
    module = spec.connector_module()
    assert isinstance(module, SourceModule)
    assert module.SOURCE == spec.code
    assert module.STREAMS and all(isinstance(s, Stream) for s in module.STREAMS)
    # a source's raw tables live in the schema named after its code (publish, reserved names and the loader rely on it)
    assert {s.schema_name for s in module.STREAMS} == {spec.code}
    connector = module.connect(empty_settings)
    assert isinstance(connector, SourceConnector)
    # nothing configured: the probe reports the refused configuration, without a request and without raising
    findings = connector.probe()
    assert [(f.ok, f.text) for f in findings] == [(False, CONFIG_REFUSED)]
    assert isinstance(findings[0], Finding) and findings[0].fix


@pytest.mark.parametrize("spec", registry.SOURCES, ids=lambda s: s.code)
def test_every_raw_table_is_declared_once_in_raw_tables(spec):
    declared = {v.table for v in vars(raw_tables).values() if isinstance(v, Stream)}
    declared |= {s.table for s in raw_tables.HUBSPOT_STREAMS}
    assert {s.table for s in spec.connector_module().STREAMS} <= declared


def test_an_unknown_stream_names_the_known_ones():
    from connectors import matomo

    with pytest.raises(ValueError, match="unknown stream 'matomo.nope': this source writes matomo.visits_summary"):
        stream_named(matomo.STREAMS, "matomo.nope")


def test_tables_read_with_another_stream_name_it(empty_settings):
    from connectors import ga4, hubspot

    window = Window(date(2026, 3, 1), date(2026, 3, 2))
    connector = hubspot.connect(empty_settings)
    with pytest.raises(ValueError, match="hubspot.deal_associations is read with hubspot.deals"):
        connector.fetch(hubspot.ASSOCIATIONS, window)
    with pytest.raises(ValueError, match="hubspot.email_events_daily is read with hubspot.email_statistics"):
        connector.fetch(hubspot.EMAIL_EVENTS_DAILY, window)
    with pytest.raises(ValueError, match="ga4.report_quality is written from each report's answers"):
        ga4.report_for(ga4.REPORT_QUALITY)
    assert ga4.report_for(raw_tables.GA4_TRAFFIC) is ga4.TRAFFIC


def test_matomo_fetch_of_one_stream_gives_that_table_only():
    """The protocol's form (stream, window) filters the one bulk read: the referrer rows are those the one-read
    form gives, and no other table comes with them."""
    from connectors.matomo import REFERRERS, MatomoConnector
    from connectors.settings import MatomoSettings, Secret
    from sandbox.matomo_server import MatomoServer
    from sandbox.world import World

    token = "0123456789abcdef0123456789abcdef"
    window = Window(date(2026, 3, 1), date(2026, 3, 4))
    with MatomoServer(World(seed=7, today=date(2026, 3, 31)), token=token) as server:
        settings = MatomoSettings(url=server.url + "/", site_ids=("1",), token=Secret(token), timeout_seconds=5)
        one = list(MatomoConnector(settings).fetch(REFERRERS, window))
        every = list(MatomoConnector(settings).fetch(window))
    assert {b.stream.table for b in one} == {"matomo.referrer_types"}
    expected = [b.data for b in every if b.stream.table == "matomo.referrer_types"]
    assert pa.concat_tables([b.data for b in one]).equals(pa.concat_tables(expected))
    assert sum(b.num_rows for b in one) > 0


def _source_lists(path: Path, codes: set[str]) -> list[str]:
    """Literals (tuple, list, set, dict keys) of a module naming three or more source codes: a copy of the list."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        named = {i.value for i in items if isinstance(i, ast.Constant) and i.value in codes}
        if len(named) >= 3:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(named)}")
    return found


def test_no_module_outside_the_registry_spells_out_the_sources():
    codes = set(registry.codes())
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py")) if p not in ALLOWED]
    offenders = [hit for path in files for hit in _source_lists(path, codes)
                 if str(path.relative_to(ROOT)) not in PENDING]
    assert offenders == [], "read connectors/registry.py instead of listing the sources:\n" + "\n".join(offenders)


def test_stale_after_days_takes_registered_sources_only(tmp_path):
    from connectors.errors import ConfigError

    path = tmp_path / "mkpi.yaml"
    path.write_text("alerts:\n  stale_after_days:\n    matomoo: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alerts.stale_after_days.matomoo: 'matomoo' is not one of hubspot, ga4"):
        load_settings(path, environ={})
    path.write_text("alerts:\n  stale_after_days:\n    matomo: 5\n", encoding="utf-8")
    assert load_settings(path, environ={}).alerts.stale_after_days["matomo"] == 5


def test_configured_accounts_are_named_as_kpi_rows_name_them(tmp_path):
    """Alerts judge staleness per configured source and account: ids as kpi_daily writes them (GA4 without the
    `properties/` prefix, Ads without dashes), HubSpot's any-account None, unconfigured sources absent."""
    from kpi_models.alerts import configured_accounts

    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    settings = load_settings(path, environ={
        "MKPI_GA4_PROPERTY_IDS": "properties/123,456", "MKPI_GOOGLE_ADS_CUSTOMER_IDS": "123-456-7890",
        "MKPI_HUBSPOT_TOKEN": "pat-na1-test", "MKPI_MATOMO_SITE_IDS": "3"})
    assert configured_accounts(settings) == {"hubspot": None, "ga4": ("123", "456"), "matomo": ("3",),
                                             "google_ads": ("1234567890",)}


def test_hubspot_fetch_of_an_object_stream_reads_from_the_cursor_and_commits_the_next():
    """The protocol's cursor: companies changed since the cursor (less the look-back) are read, none other among the
    live ones, and the last batch carries the run's start as the next cursor. The truth is the sandbox store's."""
    from connectors.batches import Cursor
    from connectors.http import RetryPolicy
    from connectors.hubspot import HubSpotConnector
    from connectors.settings import HubSpotSettings, Secret
    from sandbox.hubspot_server import HubSpotServer
    from sandbox.world import World

    token = "pat-sandbox-test-0123456789abcdef"
    day_ms = 86_400_000
    with HubSpotServer(World(seed=7, today=date(2026, 3, 31)), token=token, requests_per_10s=100_000,
                       search_per_second=100_000) as server:
        settings = HubSpotSettings(endpoint=server.url, token=Secret(token), requests_per_10s=100_000,
                                   search_per_second=100_000, timeout_seconds=20)
        connector = HubSpotConnector(settings, now_ms=lambda: server.now_ms,
                                     policy=RetryPolicy(base_delay=0.01, max_delay=0.05))
        cursor = server.now_ms - 30 * day_ms
        batches = list(connector.fetch("hubspot.companies", Window(date(2026, 3, 31), date(2026, 3, 31)),
                                       cursor=str(cursor)))
        since = cursor - settings.lookback_seconds * 1000
        truth = {str(i) for ts, i in server.store.tables["companies"].by_modified if since <= ts <= server.now_ms}
        now = server.now_ms
    live = {row["id"] for b in batches for row in b.data.to_pylist() if not row["archived"]}
    assert truth and live == truth
    assert {b.stream.table for b in batches} == {"hubspot.companies"}
    assert batches[-1].cursor == Cursor("hubspot", "companies", "portal", str(now))


def test_registry_windows_are_the_settings_defaults(tmp_path):
    """The registry's re-read windows (KPI finality when no settings are given) are the settings' own defaults."""
    path = tmp_path / "mkpi.yaml"
    path.write_text("{}\n", encoding="utf-8")
    settings = load_settings(path, environ={})
    assert {s.code: s.configured_reread_days(settings) for s in registry.SOURCES} == {
        s.code: s.reread_days for s in registry.SOURCES}
