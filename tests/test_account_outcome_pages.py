"""account_outcome reads a small first page, then pages on: a concurrent run's materialisations written between this
run's creation and its own are skipped, never taken for this run's (pipelines/lib/accounts.py)."""

import logging
import time

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from pipelines.lib import accounts

KEY = dg.AssetKey(["ga4", "traffic_by_channel"])


@dg.op
def noop() -> None:
    return None


@dg.job
def job() -> None:
    noop()


def _store(instance: dg.DagsterInstance, run_id: str, day: str, failed: dict[str, str]) -> None:
    materialization = dg.AssetMaterialization(KEY, partition=day, metadata={
        "failed_accounts": dg.MetadataValue.json(failed), "window_start": "2026-01-01", "window_end": "2026-01-09"})
    event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, job_name="job",
                         event_specific_data=StepMaterializationData(materialization))
    instance.store_event(EventLogEntry(error_info=None, level=logging.DEBUG, user_message="", run_id=run_id,
                                       timestamp=time.time(), dagster_event=event))


def test_this_runs_outcome_is_found_past_the_first_page(tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        mine = instance.create_run_for_job(job_def=job)
        other = instance.create_run_for_job(job_def=job)
        for day in range(1, 9):  # the other run's eight days come first: twice the first page
            _store(instance, other.run_id, f"2026-01-0{day}", {})
        _store(instance, mine.run_id, "2026-01-09", {"properties/2": "403 forbidden"})
        assert accounts._FIRST_PAGE < 8  # noqa: SLF001 - the case this test is about
        outcome = accounts.account_outcome(instance, mine.run_id, KEY)
        assert outcome is not None and outcome.failed == {"properties/2": "403 forbidden"}
        assert (outcome.window_start, outcome.window_end) == ("2026-01-01", "2026-01-09")
        # the other run's own outcome is its first record
        other_outcome = accounts.account_outcome(instance, other.run_id, KEY)
        assert other_outcome is not None and other_outcome.failed == {}
