"""The PostgreSQL storage patches (pipelines/lib/event_storage.py PG_PATCHES) are installed only over the Dagster
methods they were written against (WRITTEN_AGAINST): a changed Dagster method (an upgrade) keeps Dagster's own.
No server needed."""

import dagster as dg
import pytest

from pipelines.lib import event_storage

pytest.importorskip("dagster_postgres")


def test_installed_dagster_is_the_one_written_against() -> None:
    """At the pinned Dagster every patch is the project's; this fails first when an upgrade changes one of them
    (then re-check the patch against the new Dagster and update its digest)."""
    assert dg.__version__ == "1.13.27"
    assert event_storage.PG_PATCHES
    for cls, name, ours, dagsters in event_storage.PG_PATCHES:
        assert ours is not dagsters, f"{cls.__name__}.{name}"


def _dagsters_own(monkeypatch) -> None:
    """Dagster's methods on the classes again (an earlier test may have installed the project's)."""
    for cls, name, _ours, dagsters in event_storage.PG_PATCHES:
        monkeypatch.setattr(cls, name, dagsters)


def test_a_changed_dagster_method_keeps_dagsters_own(monkeypatch, caplog) -> None:
    _dagsters_own(monkeypatch)
    changed = dict(event_storage.WRITTEN_AGAINST)
    changed["PostgresEventLogStorage._store_asset_event"] = "0" * 16  # what store_event's copy reuses
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", changed)
    patches = {(cls.__name__, name): (ours, dagsters)
               for cls, name, ours, dagsters in event_storage._postgres_patches()}
    for name in ("store_event", "store_event_batch"):  # both reuse it: Dagster's own
        ours, dagsters = patches[("PostgresEventLogStorage", name)]
        assert ours is dagsters
    ours, dagsters = patches[("PostgresEventLogStorage", "_connect")]  # the others stay the project's
    assert ours is not dagsters
    assert "PostgresEventLogStorage._store_asset_event is not the version" in caplog.text


def test_a_missing_method_keeps_dagsters_own(monkeypatch) -> None:
    _dagsters_own(monkeypatch)
    changed = {k: v for k, v in event_storage.WRITTEN_AGAINST.items() if k != "PostgresRunStorage.connect"}
    monkeypatch.setattr(event_storage, "WRITTEN_AGAINST", changed)
    patches = {(cls.__name__, name): (ours, dagsters)
               for cls, name, ours, dagsters in event_storage._postgres_patches()}
    ours, dagsters = patches[("PostgresRunStorage", "connect")]
    assert ours is dagsters
    assert event_storage.source_digest(None) is None
