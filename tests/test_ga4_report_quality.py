"""What GA4 says about its own answers (thresholding, sampling, the (other) row, truncation), kept per property,
report and day in `ga4.report_quality`.

The sandbox's knob (AnswerQuality) marks answers as GA4 does, with the field names of the v1beta discovery
document; expected counts come from the World (samplingSpaceSize = 12 events x the World's sessions).
"""

from datetime import date

import dagster as dg
import duckdb
import pytest
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import DateRange, Dimension, Metric, RunReportRequest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from connectors.batches import Window
from connectors.ga4 import CART_FUNNEL, ECOMMERCE, REPORT_QUALITY, TRAFFIC, Ga4Connector
from connectors.parallel import AccountLog
from connectors.settings import GA4Settings
from connectors.warehouse import load_batches
from sandbox.ga4_server import EVENTS_PER_SESSION, AnswerQuality, Ga4Server
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID, World

TODAY = date(2026, 3, 31)
WINDOW = Window(date(2026, 3, 1), date(2026, 3, 6))
PID, SMALL = DEFAULT_GA4_PROPERTY_ID, SMALL_GA4_PROPERTY_ID
ALL = AnswerQuality(thresholding=1.0, sampling=1.0, sampled_share=0.25)


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, today=TODAY)


def sessions(world: World, property_id: str, days: list[date]) -> int:
    return sum(int(f.metrics["sessions"]) for d in days for f in world.ga4_facts(property_id, d))


def settings(url: str) -> GA4Settings:
    return GA4Settings(property_ids=(PID, SMALL), endpoint=url, timeout_seconds=5)


def test_sandbox_marks_answers_with_google_field_names(world):
    request = RunReportRequest(property=f"properties/{PID}", dimensions=[Dimension(name="date")],
                               metrics=[Metric(name="sessions")],
                               date_ranges=[DateRange(start_date="2026-03-01", end_date="2026-03-06")])
    with Ga4Server(world) as plain:
        meta = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                       client_options=ClientOptions(api_endpoint=plain.url)).run_report(request).metadata
        assert not meta.subject_to_thresholding and list(meta.sampling_metadatas) == []
    with Ga4Server(world, quality=ALL, truncated_before=date(2026, 3, 3)) as srv:
        client = BetaAnalyticsDataClient(credentials=AnonymousCredentials(), transport="rest",
                                         client_options=ClientOptions(api_endpoint=srv.url))
        response = client.run_report(request)
        raw = srv.requests[-1]
    meta = response.metadata
    served = [date(2026, 3, d) for d in range(3, 7)]  # days before the retention date are withheld
    assert [r.dimension_values[0].value for r in response.rows] == [d.strftime("%Y%m%d") for d in served]
    assert meta.subject_to_thresholding is True
    (sampling,) = meta.sampling_metadatas
    assert sampling.sampling_space_size == EVENTS_PER_SESSION * sessions(world, PID, served)
    assert sampling.samples_read_count == round(sampling.sampling_space_size * 0.25)
    (reason,) = meta.data_truncation_reasons
    assert reason.data_truncation_type.name == "DATA_TRUNCATION_TYPE_PROPERTY"
    assert reason.data_truncation_date == "2026-03-03"
    assert raw.query.get("$alt") == ["json;enum-encoding=int"]


def test_the_seeded_knob_draws_the_same_answer_for_the_same_request(world):
    knob = AnswerQuality(seed=3, thresholding=0.5, sampling=0.5)
    draws = [knob.draw(world.seed, p, date(2026, 3, d), date(2026, 3, d), "runFunnelReport")
             for p in (PID, SMALL) for d in range(1, 31)]
    assert draws == [knob.draw(world.seed, p, date(2026, 3, d), date(2026, 3, d), "runFunnelReport")
                     for p in (PID, SMALL) for d in range(1, 31)]
    assert {t for t, _s in draws} == {True, False} and {s for _t, s in draws} == {True, False}
    assert AnswerQuality.parse("seed=3,thresholding=0.5,sampling=0.5") == knob
    with pytest.raises(ValueError, match="MKPI_SANDBOX_GA4_QUALITY"):
        AnswerQuality.parse("thresholds=1")


def test_connector_keeps_one_quality_row_per_property_report_and_day(world, tmp_path):
    with Ga4Server(world, quality=ALL, truncated_before=date(2026, 3, 3), cardinality_limit=40) as srv:
        connector = Ga4Connector(settings(srv.url))
        with duckdb.connect(str(tmp_path / "w.db")) as conn:
            for report in (TRAFFIC, ECOMMERCE):
                load_batches(conn, [*connector.fetch(report, WINDOW), *connector.quality_batches(report.name, WINDOW)])
            rows = conn.execute("SELECT * EXCLUDE (_loaded_at, _window_start, _window_end) FROM ga4.report_quality "
                                "ORDER BY report, property_id, date").fetchall()
    names = REPORT_QUALITY.schema.names
    got = [dict(zip(names, r, strict=True)) for r in rows]
    assert len(got) == 2 * 2 * WINDOW.days  # reports x properties x days
    served = [date(2026, 3, d) for d in range(3, 7)]
    for row in got:
        space = EVENTS_PER_SESSION * sessions(world, row["property_id"], served)
        assert row["subject_to_thresholding"] is True and row["sampled"] is True
        assert (row["samples_read_count"], row["sampling_space_size"]) == (round(space * 0.25), space)
        truncated = row["date"] < date(2026, 3, 3)
        assert row["data_truncation_reasons"] == ("DATA_TRUNCATION_TYPE_PROPERTY" if truncated else None)
    # the traffic report of the big property overflows 40 rows, so GA4 folds the rest into (other)
    other = {(r["report"], r["property_id"]) for r in got if r["data_loss_from_other_row"]}
    assert other == {("traffic_by_channel", PID)}
    counts = connector.quality_counts("traffic_by_channel")
    assert counts == {"quality_days": 12, "quality_days_thresholded": 12, "quality_days_sampled": 12,
                      "quality_days_other_row": 6, "quality_days_truncated": 12}


def test_a_report_replaces_only_its_own_quality_rows(world, tmp_path):
    with Ga4Server(world) as srv:
        connector = Ga4Connector(settings(srv.url))
        with duckdb.connect(str(tmp_path / "w.db")) as conn:
            for report in (TRAFFIC, ECOMMERCE, ECOMMERCE):
                load_batches(conn, [*connector.fetch(report, WINDOW), *connector.quality_batches(report.name, WINDOW)])
            counts = dict(conn.execute("SELECT report, count(*) FROM ga4.report_quality GROUP BY ALL").fetchall())
            flags = conn.execute("SELECT DISTINCT subject_to_thresholding, sampled, samples_read_count, "
                                 "data_loss_from_other_row, data_truncation_reasons FROM ga4.report_quality").fetchall()
    assert counts == {"traffic_by_channel": 2 * WINDOW.days, "ecommerce_by_date": 2 * WINDOW.days}
    assert flags == [(False, False, None, False, None)]  # an exact answer says so


def test_a_failed_property_gets_no_quality_row(world):
    with Ga4Server(world, forbidden_properties=(SMALL,)) as srv:
        connector = Ga4Connector(settings(srv.url))
        accounts = AccountLog("ga4")
        list(connector.fetch(TRAFFIC, WINDOW, accounts=accounts))
        batches = list(connector.quality_batches(TRAFFIC.name, WINDOW))
    assert list(accounts.failures) == [SMALL]
    assert [b.scope for b in batches] == [{"property_id": PID, "report": "traffic_by_channel"}]


def test_funnel_answers_carry_sampling_only(world):
    with Ga4Server(world, quality=ALL) as srv:
        connector = Ga4Connector(settings(srv.url))
        list(connector.fetch(CART_FUNNEL, WINDOW))
        rows = [r for b in connector.quality_batches(CART_FUNNEL.name, WINDOW) for r in b.data.to_pylist()]
    assert len(rows) == 2 * WINDOW.days  # one answer per property and day
    for row in rows:
        space = EVENTS_PER_SESSION * sessions(world, row["property_id"], [row["date"]])
        assert row["report"] == "cart_funnel_daily"
        assert row["subject_to_thresholding"] is None and row["data_loss_from_other_row"] is None  # not reported
        assert row["sampled"] is True and row["sampling_space_size"] == space


def test_asset_metadata_counts_the_flagged_days(world, tmp_path, monkeypatch):
    from pipelines.components.source_assets import source_asset
    from pipelines.lib.resources import GA4Resource, WarehouseResource

    traffic_by_channel = source_asset("ga4", "ga4.traffic_by_channel")

    with Ga4Server(world, quality=AnswerQuality(thresholding=1.0)) as srv:
        monkeypatch.setenv("MKPI_GA4_ENDPOINT", srv.url)
        monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", f"{PID},{SMALL}")
        database = str(tmp_path / "w.db")
        result = dg.materialize([traffic_by_channel], partition_key="2026-03-05", resources={
            "ga4": GA4Resource(), "warehouse": WarehouseResource(database=database)})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    assert (metadata["quality_days"], metadata["quality_days_thresholded"], metadata["quality_days_sampled"]) == (
        2, 2, 0)
    with duckdb.connect(database, read_only=True) as conn:
        assert conn.execute("SELECT property_id, report, date, subject_to_thresholding FROM ga4.report_quality "
                            "ORDER BY ALL").fetchall() == [
            (p, "traffic_by_channel", date(2026, 3, 5), True) for p in (PID, SMALL)]
