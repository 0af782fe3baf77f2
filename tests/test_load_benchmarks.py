"""The load benchmarks of issue #21 (targets 2 and 4) compare the same work: their setups, never their timings."""

import duckdb
import pytest

from bench import bench_hubspot_upsert as hub
from bench import bench_memory
from bench.bench_load import STREAM, load_bare, make_rows


def contacts(path) -> list[tuple]:
    with duckdb.connect(str(path)) as conn:
        return conn.execute("SELECT * EXCLUDE (_loaded_at) FROM hubspot.contacts ORDER BY id").fetchall()


def test_hubspot_baseline_and_loader_upsert_the_same_rows(tmp_path):
    """The per-page DELETE baseline and the staged loader, given the same list and the same changed pages, leave
    equal tables: 300 records listed, then 3 pages of changes (half updates of listed ids, half new)."""
    stream = hub.contacts_stream()
    hub.load_staged(tmp_path / "staged.duckdb", hub.list_pages(stream, 0, 3))
    hub.load_staged(tmp_path / "old.duckdb", hub.list_pages(stream, 0, 2))
    hub.load_per_page_delete(tmp_path / "old.duckdb", list(hub.list_pages(stream, 200, 1)))
    assert contacts(tmp_path / "staged.duckdb") == contacts(tmp_path / "old.duckdb")
    changes = hub.changed_pages(stream, 300, 3)
    assert sum(b.num_rows for b in changes) == 300
    hub.load_staged(tmp_path / "staged.duckdb", changes)
    hub.load_per_page_delete(tmp_path / "old.duckdb", changes)
    after = contacts(tmp_path / "staged.duckdb")
    assert after == contacts(tmp_path / "old.duckdb")
    ids = [row[0] for row in after]
    updated = {b.data["id"][0].as_py() for b in changes}  # each page's first row updates a listed record
    assert len(ids) == len(set(ids)) == 300 + 150 and updated <= set(ids)


def test_memory_children_write_every_row(capsys):
    for method in bench_memory.METHODS:
        bench_memory.child(1_000, method)
        out = capsys.readouterr().out
        assert "ROWS 1000" in out and "PEAK_RSS_MB" in out and "BASE_RSS_MB" in out, (method, out)


def test_bare_streamed_insert_writes_every_page(tmp_path):
    data = make_rows(2_500)
    load_bare(tmp_path / "bare.duckdb", data, page_rows=1_000)
    with duckdb.connect(str(tmp_path / "bare.duckdb")) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT (date, item_id)) FROM t").fetchone() == (2_500, 2_500)
        assert [r[0] for r in conn.execute("DESCRIBE t").fetchall()] == STREAM.schema.names


@pytest.mark.parametrize("disposition", ["replace", "merge"])
def test_dlt_replace_and_merge_load_the_same_rows(tmp_path, disposition):
    pytest.importorskip("dlt", reason="dlt is installed by make bench only (pip install -e '.[bench]')")
    from bench.bench_load import load_with_dlt

    data = make_rows(300)
    load_with_dlt(tmp_path, data, disposition)
    load_with_dlt(tmp_path, data, disposition)  # loading the same rows again replaces them: still 300
    with duckdb.connect(str(tmp_path / "dlt.duckdb")) as conn:
        got = conn.execute("SELECT item_id, date, sessions FROM bench.load_rows ORDER BY item_id, date").fetchall()
    want = sorted(zip(*(data.column(c).to_pylist() for c in ("item_id", "date", "sessions")), strict=True))
    assert got == want
