"""The latest materialisation of each asset read from its `asset_keys` row without Dagster's empty event-log lookup
(pipelines/lib/event_storage.py `latest_materialization_records`), checked against Dagster's own method on the same
rows: materialised assets, a never-materialised (observed) one, and one wiped then observed (whose row keeps a
stale record: Dagster's lookup is then needed and made)."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from pipelines.lib import event_storage

DONE, OBSERVED, WIPED = dg.AssetKey(["raw", "done"]), dg.AssetKey(["raw", "observed"]), dg.AssetKey(["raw", "wiped"])


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("latest"))) as instance:
        for key in (DONE, DONE, WIPED):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=OBSERVED))
        instance.wipe_assets([WIPED])
        instance.report_runless_asset_event(dg.AssetObservation(asset_key=WIPED))  # its row visible again
        yield instance


def _latest(instance: dg.DagsterInstance, keys: list[dg.AssetKey], method: Any) -> tuple[dict[Any, Any], int]:
    """The latest records as `method` answers them, and how many event-log queries it sent."""
    storage = instance.event_log_storage
    rows = storage._fetch_asset_rows(asset_keys=keys)  # noqa: SLF001 - what get_asset_records hands it
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM event_logs" in statement:
            sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        found = method(storage, rows)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return {key: (r.storage_id if r else None) for key, r in found.items()}, len(sent)


def test_materialised_assets_answered_from_their_rows(instance) -> None:
    ours, ours_sent = _latest(instance, [DONE], event_storage.latest_materialization_records)
    dagsters, dagsters_sent = _latest(instance, [DONE], event_storage.DAGSTER_LATEST_MATERIALIZATION_RECORDS)
    newest = instance.fetch_materializations(DONE, limit=1).records[0].storage_id  # the second of the two
    assert ours == dagsters == {DONE: newest}
    assert (ours_sent, dagsters_sent) == (0, 1)  # Dagster's lookup of no asset (`IN ()`) not sent


@pytest.mark.parametrize("keys", [[OBSERVED], [WIPED], [DONE, WIPED, OBSERVED]], ids=["observed", "wiped", "mixed"])
def test_rows_without_a_current_record_go_through_dagsters_lookup(instance, keys) -> None:
    ours, ours_sent = _latest(instance, keys, event_storage.latest_materialization_records)
    dagsters, dagsters_sent = _latest(instance, keys, event_storage.DAGSTER_LATEST_MATERIALIZATION_RECORDS)
    assert ours == dagsters
    assert ours_sent == dagsters_sent == 1
    assert WIPED not in ours  # its pre-wipe materialisation is not its latest
    if DONE in keys:
        assert ours[DONE] == instance.fetch_materializations(DONE, limit=1).records[0].storage_id


def test_installed_where_dagsters_method_is_the_one_written_against() -> None:
    assert event_storage.LATEST_MATERIALIZATION_RECORDS is event_storage.latest_materialization_records
    def _get_latest_materialization_records(self: Any, raw_asset_rows: Any) -> Any:  # another version's
        return {}

    changed = type("SqlEventLogStorage", (), {"_get_latest_materialization_records": (
        _get_latest_materialization_records)})
    assert not event_storage.written_against(changed, "_get_latest_materialization_records")
    assert not event_storage.written_against(type("Other", (), {}), "_get_latest_materialization_records")
