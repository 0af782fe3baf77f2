"""The sandbox HubSpot portal shared between a test session's processes (sandbox/hubspot_store.py, _shared_base).

Tests compute their expectations from the world, so a portal read from the session's folder must be the very portal
the world gives: the same records, properties, associations and clocks, as a build with no folder gives them.
Small portals (30 days, 50 bulk-imported contacts) keep this cheap; the 400-day one is the same code.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from sandbox import hubspot_store
from sandbox.hubspot_store import PORTAL_CACHE_ENV, CrmStore, _Base, _compute_base, _shared_base
from sandbox.world import DEFAULT_GA4_PROPERTY_ID, Incident, World

DAYS, BULK = 30, 50


def _same(a: _Base, b: _Base) -> None:
    assert a.records == b.records
    assert a.associations == b.associations
    assert (a.bulk_import_ms, a.end_of_today_ms) == (b.bulk_import_ms, b.end_of_today_ms)
    # equal and in the same order: stores page through records in the order they were built
    assert [[rid for rid, *_ in rows] for rows in a.records.values()] == [
        [rid for rid, *_ in rows] for rows in b.records.values()]


def test_a_portal_from_the_folder_is_the_one_the_world_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                                               ) -> None:
    world = World(seed=5, today=date(2026, 3, 31))
    monkeypatch.delenv(PORTAL_CACHE_ENV, raising=False)
    built = _compute_base(world, DAYS, BULK)
    assert len(built.records["contacts"]) > BULK  # world contacts besides the bulk import: a portal worth comparing

    monkeypatch.setenv(PORTAL_CACHE_ENV, str(tmp_path))
    first = _shared_base(world, DAYS, BULK)  # built here, left in the folder
    _same(first, built)
    files = sorted(p.name for p in tmp_path.iterdir())  # the portal and its lock file; no partial file
    assert len(files) == 2 and files[0].endswith(f"-5-2026-03-31-{DAYS}-{BULK}.pickle"), files
    assert files[1] == files[0] + ".lock"

    def never(*args: object) -> _Base:
        raise AssertionError("built again although the folder holds it")

    monkeypatch.setattr(hubspot_store, "_compute_base", never)
    again = _shared_base(World(seed=5, today=date(2026, 3, 31)), DAYS, BULK)  # another process's view: read
    _same(again, built)
    # a store over the read portal answers as one over the built portal
    monkeypatch.setattr(hubspot_store, "_BASE_CACHE", {})
    assert CrmStore(world, history_days=DAYS, bulk_import_size=BULK).counts() == _counts(built, world)


def _counts(base: _Base, world: World) -> dict[str, dict[str, int]]:
    """The counts a store built from `base` has, the store's in-process cache holding `base` only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hubspot_store, "_BASE_CACHE", {(world.seed, world.today.isoformat(), DAYS, BULK): base})
        return CrmStore(world, history_days=DAYS, bulk_import_size=BULK).counts()


def test_each_seed_day_and_size_has_a_portal_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PORTAL_CACHE_ENV, str(tmp_path))
    keys = [(5, date(2026, 3, 31), DAYS, BULK), (6, date(2026, 3, 31), DAYS, BULK), (5, date(2026, 3, 30), DAYS, BULK),
            (5, date(2026, 3, 31), DAYS + 1, BULK), (5, date(2026, 3, 31), DAYS, 0)]
    for seed, today, days, bulk in keys:
        world = World(seed=seed, today=today)
        _same(_shared_base(world, days, bulk), _compute_base(world, days, bulk))
    assert len(list(tmp_path.glob("*.pickle"))) == len(keys)


def test_worlds_of_one_seed_and_day_made_otherwise_have_the_same_portal() -> None:
    """The portal's key is (seed, today, sizes), in this process and in the folder: it holds because the portal reads
    GA4's default property at its own scale (1.0), without the world's incidents, restatement or profile. Should the
    portal come to depend on one of them, this fails, and the key must then name it."""
    today = date(2026, 3, 31)
    worlds = [World(seed=5, today=today),
              World(seed=5, today=today, ga4_properties={DEFAULT_GA4_PROPERTY_ID: 2.0}),
              World(seed=5, today=today, incidents=[Incident("tracking_break", DEFAULT_GA4_PROPERTY_ID,
                                                             date(2026, 3, 10), None, 0.5)]),
              World(seed=5, today=today, restatement_days=3), World(seed=5, today=today, profile="many")]
    first, *others = [_compute_base(world, DAYS, BULK) for world in worlds]
    for other in others:
        _same(other, first)


def test_processes_asking_at_once_build_it_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Test workers start their HubSpot files together: one builds while the others wait on the lock, then read.
    Threads here (each opens the lock file on its own, as processes do): the lock is the file's, not the process's."""
    monkeypatch.setenv(PORTAL_CACHE_ENV, str(tmp_path))
    builds: list[int] = []
    compute = hubspot_store._compute_base

    def counted(world: World, history_days: int, bulk_import_size: int) -> _Base:
        builds.append(1)
        return compute(world, history_days, bulk_import_size)

    monkeypatch.setattr(hubspot_store, "_compute_base", counted)
    start = threading.Barrier(3)
    results: list[_Base] = []

    def ask() -> None:
        start.wait(timeout=60)
        results.append(_shared_base(World(seed=5, today=date(2026, 3, 31)), DAYS, BULK))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)  # a lock never released would hang here, not the session
    assert not any(thread.is_alive() for thread in threads)
    assert len(builds) == 1 and len(results) == 3
    expected = compute(World(seed=5, today=date(2026, 3, 31)), DAYS, BULK)
    for result in results:
        _same(result, expected)


def test_without_a_folder_nothing_is_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv(PORTAL_CACHE_ENV, raising=False)
        else:
            monkeypatch.setenv(PORTAL_CACHE_ENV, unset)
        world = World(seed=5, today=date(2026, 3, 31))
        _same(_shared_base(world, DAYS, BULK), _compute_base(world, DAYS, BULK))
    assert list(tmp_path.iterdir()) == []
