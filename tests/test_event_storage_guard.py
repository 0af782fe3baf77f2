"""The SQLite and in-memory event log patches (pipelines/lib/event_storage.py `install`) are installed only over the
Dagster methods they were written against (WRITTEN_AGAINST); a changed one keeps Dagster's own. No server needed."""

import pytest
from dagster._core.storage.event_log.in_memory import InMemoryEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from pipelines.lib import event_storage


def test_every_sqlite_patch_written_against_the_installed_dagster() -> None:
    assert event_storage.SQLITE_WRITTEN_AGAINST and all(event_storage.SQLITE_WRITTEN_AGAINST.values())


def test_a_changed_method_or_one_it_reuses_fails_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_storage.written_against(SqliteEventLogStorage, "_connect", event_storage.DAGSTER_CONNECT)
    changed = dict(event_storage.WRITTEN_AGAINST)
    changed["SqliteEventLogStorage._connect"] = "0" * 16
    changed["InMemoryEventLogStorage.store_event"] = "0" * 16  # what the in-memory batch write copies after its insert
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", changed)
    assert not event_storage.written_against(SqliteEventLogStorage, "_connect", event_storage.DAGSTER_CONNECT)
    assert not event_storage.written_against(InMemoryEventLogStorage, "store_event_batch",
                                             event_storage.DAGSTER_IN_MEMORY_STORE_EVENT_BATCH)
    assert event_storage.written_against(SqliteEventLogStorage, "store_event_batch",
                                         event_storage.DAGSTER_STORE_EVENT_BATCH)


def test_install_keeps_dagsters_method_where_the_guard_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    guarded = dict(event_storage.SQLITE_WRITTEN_AGAINST)
    guarded["SqliteEventLogStorage._connect"] = False
    monkeypatch.setattr(event_storage, "SQLITE_WRITTEN_AGAINST", guarded)
    was_installed = SqliteEventLogStorage.dispose is event_storage._dispose  # noqa: SLF001
    event_storage.uninstall()
    try:
        event_storage.install()
        assert SqliteEventLogStorage._connect is event_storage.DAGSTER_CONNECT  # noqa: SLF001
        assert SqliteEventLogStorage.dispose is event_storage._dispose  # noqa: SLF001 - the others installed
        assert InMemoryEventLogStorage.store_event_batch is event_storage.store_event_batch_in_memory
    finally:
        monkeypatch.undo()
        event_storage.install() if was_installed else event_storage.uninstall()  # as this process had them
    event_storage.install()
    assert SqliteEventLogStorage._connect is event_storage._connect  # noqa: SLF001 - guard passed: the project's
    if not was_installed:
        event_storage.uninstall()
