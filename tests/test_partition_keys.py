"""pipelines/lib/partition_keys.py: the daily partitions' keys listed once per process and last day give exactly
Dagster's keys, day after day, and no caller can change another's list."""

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._core.definitions.partitions.definition.time_window import TimeWindowPartitionsDefinition

from pipelines.lib import partition_keys

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def installed() -> Iterator[None]:
    """The cached listing, emptied, then whatever this process had before (the code location installs it)."""
    before = TimeWindowPartitionsDefinition.get_partition_keys
    partition_keys.uninstall()
    partition_keys.install()
    try:
        yield
    finally:
        partition_keys.uninstall()
        TimeWindowPartitionsDefinition.get_partition_keys = before  # type: ignore[method-assign]


def _keys(definition: dg.PartitionsDefinition, at: datetime) -> list[str]:
    with dg.partition_loading_context(effective_dt=at):
        return list(definition.get_partition_keys())


def _dagster_keys(definition: TimeWindowPartitionsDefinition, at: datetime) -> list[str]:
    with dg.partition_loading_context(effective_dt=at):
        return list(partition_keys.DAGSTER_GET_PARTITION_KEYS(definition))


def test_keys_by_hand_day_after_day(installed: None) -> None:
    """The keys up to the last complete day in the reporting time zone, the cached answer moving with the day."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone="Europe/Paris")
    assert _keys(daily, datetime(2024, 1, 4, 12, tzinfo=PARIS)) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert _keys(daily, datetime(2024, 1, 4, 23, 59, tzinfo=PARIS)) == ["2024-01-01", "2024-01-02", "2024-01-03"]
    # 23:30 UTC on the 4th is 00:30 on the 5th in Paris: the 4th is complete there
    assert _keys(daily, datetime(2024, 1, 4, 23, 30, tzinfo=UTC)) == [
        "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    # back to an earlier time: its own (cached) answer, not the later one
    assert _keys(daily, datetime(2024, 1, 3, 1, tzinfo=PARIS)) == ["2024-01-01", "2024-01-02"]
    assert _keys(daily, datetime(2024, 1, 1, 1, tzinfo=PARIS)) == []
    shifted = dg.DailyPartitionsDefinition(start_date="2024-01-02", timezone="Europe/Paris", end_offset=1)
    assert _keys(shifted, datetime(2024, 1, 4, 12, tzinfo=PARIS)) == ["2024-01-02", "2024-01-03", "2024-01-04"]


def test_same_keys_as_dagster_across_dst(installed: None) -> None:
    """Daily and hourly definitions across both daylight-saving changes and with an exclusion: the cached listing
    is Dagster's own at every effective time, cached or not."""
    definitions = [dg.DailyPartitionsDefinition(start_date="2023-03-20", timezone="Europe/Paris"),
                   dg.HourlyPartitionsDefinition(start_date="2023-10-28-00:00", timezone="Europe/Paris"),
                   dg.DailyPartitionsDefinition(start_date="2023-03-20", exclusions=[datetime(2023, 3, 25)])]
    times = [datetime(2023, 3, 27, 1, tzinfo=PARIS), datetime(2023, 10, 29, 2, 30, tzinfo=UTC),
             datetime(2023, 10, 30, 5, tzinfo=PARIS), datetime(2023, 3, 27, 1, tzinfo=PARIS)]
    expected = [[_dagster_keys(d, t) for t in times] for d in definitions]
    for _ in range(2):  # a miss, then the cached answers
        assert [[_keys(d, t) for t in times] for d in definitions] == expected
    assert len(expected[0][0]) == 7 and len(expected[2][0]) == 5  # Paris 20..26; UTC 20..24 (25th excluded)


def test_each_caller_gets_its_own_list(installed: None) -> None:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    at = datetime(2024, 1, 3, 12, tzinfo=UTC)
    first = _keys(daily, at)
    with dg.partition_loading_context(effective_dt=at):
        mine = daily.get_partition_keys()
        assert isinstance(mine, list)
        mine.append("2099-01-01")
    assert _keys(daily, at) == first == ["2024-01-01", "2024-01-02"]


def test_installed_by_the_code_location() -> None:
    """Every process that loads the code location (run workers, mkpi, the tests' runs) lists keys once a day."""
    import pipelines.definitions  # noqa: F401 - installs at import

    assert TimeWindowPartitionsDefinition.get_partition_keys is partition_keys.get_partition_keys
