"""HubSpot before the report sources, by a declared order (issue #20 item 2), not by cron times.

When HubSpot is configured, its scheduled run leads: the report sources' runs of that morning follow it whether it
succeeds or fails (a failing source never holds the others back), and `daily_refresh` steps aside. When HubSpot is not
configured, or no HubSpot run exists that morning, `daily_refresh` emits the report runs itself. Fast: the schedules
and sensors are called with contexts built by dagster's build_* helpers, on one-op stand-in jobs; no pipeline run.
The stand-in runs are recorded in a SQLite test instance kept in memory-backed /dev/shm where there is one
(tests/tmpfs.py): on this machine's disk each stand-in run cost about a second of fsync waits, which no check reads.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from pipelines.defs.schedules import RANGE_END_TAG, RANGE_START_TAG, REFRESH_DAY_TAG, SOURCE_TAG, daily_refresh
from pipelines.defs.schedules import hubspot_refresh as hubspot_refresh_schedule
from pipelines.defs.sensors import (
    daily_refresh_after_hubspot,
    daily_refresh_after_hubspot_canceled,
    daily_refresh_after_hubspot_failed,
)
from tests.tmpfs import instance_in_memory

TICK = datetime(2026, 3, 10, 6, 0, tzinfo=ZoneInfo("UTC"))
# GA4 re-reads 3 days and Matomo 3 (their default windows), ending the day before 2026-03-10: stated by hand.
EXPECTED = {"daily_refresh:ga4:2026-03-10": ("ga4", "2026-03-07", "2026-03-09"),
            "daily_refresh:matomo:2026-03-10": ("matomo", "2026-03-07", "2026-03-09")}


@pytest.fixture
def two_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """GA4 and Matomo configured, HubSpot not (yet); the reporting time zone UTC."""
    for name in ("MKPI_SEARCH_CONSOLE_SITES", "MKPI_GOOGLE_ADS_CUSTOMER_IDS", "MKPI_HUBSPOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKPI_GA4_PROPERTY_IDS", "123456789")
    monkeypatch.setenv("MKPI_MATOMO_URL", "https://matomo.example/")
    monkeypatch.setenv("MKPI_MATOMO_SITE_IDS", "1")
    monkeypatch.setenv("MKPI_REPORTING_TIMEZONE", "UTC")


def _summary(requests: object) -> dict[str, tuple[str, str, str]]:
    assert isinstance(requests, list), requests
    return {r.run_key: (r.tags[SOURCE_TAG], r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests}


def _hubspot_run(instance: dg.DagsterInstance, succeed: bool, tags: dict[str, str]) -> dg.DagsterRun:
    """A finished run of a stand-in `hubspot_refresh_job` carrying the tags HubSpot's scheduled run carries."""
    @dg.op
    def read_hubspot() -> None:
        if not succeed:
            raise RuntimeError("HubSpot answered 503")

    @dg.job(name="hubspot_refresh_job")
    def stand_in() -> None:
        read_hubspot()

    result = stand_in.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert result.success is succeed
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def _status_context(instance: dg.DagsterInstance, run: dg.DagsterRun, sensor_name: str) -> dg.RunStatusSensorContext:
    event_type = dg.DagsterEventType.RUN_SUCCESS if run.is_success else dg.DagsterEventType.RUN_FAILURE
    [record] = instance.get_records_for_run(run.run_id, of_type=event_type).records
    event = record.event_log_entry.dagster_event
    assert event is not None
    return dg.build_run_status_sensor_context(sensor_name=sensor_name, dagster_event=event,
                                              dagster_instance=instance, dagster_run=run)


def test_hubspot_unconfigured_the_schedule_requests_the_report_runs_itself(two_sources: None) -> None:
    assert _summary(daily_refresh(dg.build_schedule_context(scheduled_execution_time=TICK))) == EXPECTED
    assert isinstance(hubspot_refresh_schedule(dg.build_schedule_context(scheduled_execution_time=TICK)),
                      dg.SkipReason)


def test_hubspot_configured_its_run_leads_and_daily_refresh_steps_aside(two_sources: None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", "pat-na1-test")
    with instance_in_memory() as instance:
        _hubspot_run(instance, True, {SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-10"})  # this morning's
        skip = daily_refresh(dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK))
    assert isinstance(skip, dg.SkipReason)
    assert "pat-na1-test" not in (skip.skip_message or "")
    request = hubspot_refresh_schedule(dg.build_schedule_context(scheduled_execution_time=TICK))
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "hubspot_refresh:2026-03-10"
    assert request.tags[REFRESH_DAY_TAG] == "2026-03-10"


def test_without_this_mornings_hubspot_run_daily_refresh_requests_the_report_runs(
        two_sources: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """HubSpot configured but its schedule off (or its run never created): the report sources still run, and the
    sensors after a HubSpot run that comes later do not launch them a second time."""
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", "pat-na1-test")
    with instance_in_memory() as instance:
        _hubspot_run(instance, True, {SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-09"})  # yesterday's only
        requests = daily_refresh(dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK))
        assert _summary(requests) == EXPECTED
        assert isinstance(requests, list)

        @dg.op
        def reread() -> None:
            pass

        @dg.job(name="daily_refresh_job")
        def report_run() -> None:
            reread()

        for request in requests:  # as the daemon launches them: each run tagged with its run key
            report_run.execute_in_process(instance=instance, tags={**request.tags, "dagster/run_key": request.run_key})
        late = _hubspot_run(instance, True, {SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-10"})
        skip = daily_refresh_after_hubspot(_status_context(instance, late, "daily_refresh_after_hubspot"))
        assert isinstance(skip, dg.SkipReason)


def test_hubspot_success_requests_the_report_runs(two_sources: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", "pat-na1-test")
    with instance_in_memory() as instance:
        run = _hubspot_run(instance, True, {SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-10"})
        context = _status_context(instance, run, "daily_refresh_after_hubspot")
        assert _summary(daily_refresh_after_hubspot(context)) == EXPECTED


def test_hubspot_failure_requests_the_report_runs_too(two_sources: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", "pat-na1-test")
    with instance_in_memory() as instance:
        run = _hubspot_run(instance, False, {SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-10"})
        context = _status_context(instance, run, "daily_refresh_after_hubspot_failed").for_run_failure()
        assert _summary(daily_refresh_after_hubspot_failed(context)) == EXPECTED


def test_hubspot_canceled_requests_the_report_runs_too(two_sources: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A canceled HubSpot run (by hand, or by run monitoring's maximum runtime) is neither a success nor a failure:
    the report sources still run that morning."""
    monkeypatch.setenv("MKPI_HUBSPOT_TOKEN", "pat-na1-test")

    @dg.op
    def read_hubspot() -> None:
        pass

    @dg.job(name="hubspot_refresh_job")
    def stand_in() -> None:
        read_hubspot()

    with instance_in_memory() as instance:
        created = instance.create_run_for_job(stand_in, tags={SOURCE_TAG: "hubspot", REFRESH_DAY_TAG: "2026-03-10"})
        instance.report_run_canceled(created)
        run = instance.get_run_by_id(created.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.CANCELED
        [record] = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED).records
        event = record.event_log_entry.dagster_event
        assert event is not None
        context = dg.build_run_status_sensor_context(sensor_name="daily_refresh_after_hubspot_canceled",
                                                     dagster_event=event, dagster_instance=instance, dagster_run=run)
        assert _summary(daily_refresh_after_hubspot_canceled(context)) == EXPECTED


def test_a_hubspot_run_started_by_hand_leads_nothing(two_sources: None) -> None:
    with instance_in_memory() as instance:
        run = _hubspot_run(instance, True, {SOURCE_TAG: "hubspot"})
        context = _status_context(instance, run, "daily_refresh_after_hubspot")
        assert isinstance(daily_refresh_after_hubspot(context), dg.SkipReason)


def test_the_sensors_are_in_the_definitions() -> None:
    from pipelines.definitions import defs

    for name in ("daily_refresh_after_hubspot", "daily_refresh_after_hubspot_failed",
                 "daily_refresh_after_hubspot_canceled"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_schedule_def("hubspot_refresh") and defs.resolve_schedule_def("daily_refresh")
