"""Issue #21 targets 2 and 4: the loader streams pages (memory flat in rows) and merges an upsert stream once per load.

- A page is written and released: nothing of the loader keeps it until COMMIT (a registered view did, ~80 bytes
  per row), so a backfill's memory does not grow with its pages.
- An upsert stream's pages are staged and merged into the table once per load: one scan of the table instead of
  one per 100-row page, with the same result as applying the pages one after the other (a later page wins; a
  page's `replaces` clears rows of earlier pages too). Expected rows are written by hand.
- The key check's hashes: duplicates across pages and across accounts are told apart correctly.
"""

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from connectors.batches import Batch, Cursor, Stream, Window
from connectors.warehouse import _KeyHashes, _StreamedInsert, connect, load_batches, read_cursor

D1, D2 = date(2026, 1, 1), date(2026, 1, 2)
WINDOW_STREAM = Stream(
    table="demo.items",
    schema=pa.schema([("account", pa.string()), ("date", pa.date32()), ("item", pa.int64()), ("n", pa.int64())]),
    key=("account", "date", "item"),
    scope_column="account",
)
UPSERT = Stream(
    table="demo.contacts",
    schema=pa.schema([("id", pa.string()), ("date", pa.date32()), ("stage", pa.string())]),
    key=("id",),
    write_mode="upsert",
)
ASSOCIATIONS = Stream(
    table="demo.deal_associations",
    schema=pa.schema([("deal_id", pa.string()), ("to_type", pa.string()), ("to_id", pa.string())]),
    key=("deal_id", "to_type", "to_id"),
    partition_column="deal_id",
    write_mode="upsert",
    replace_by=("deal_id", "to_type"),
)


def items(account: str, start: int, n: int) -> Batch:
    """`n` rows of one account, items start..start+n-1, alternating over the window's two days."""
    item = np.arange(start, start + n, dtype=np.int64)
    day = (D1 - date(1970, 1, 1)).days + (item % 2).astype(np.int32)
    data = pa.table({"account": pa.array(np.full(n, account, object), pa.string()),
                     "date": pa.array(day, pa.int32()).cast(pa.date32()),
                     # computed by Arrow, so every column is in Arrow's memory pool (numpy's arrays are not)
                     "item": pc.add(pa.array(item), 0), "n": pc.add(pa.array(np.arange(n, dtype=np.int64)), 0)},
                    schema=WINDOW_STREAM.schema)
    return Batch(WINDOW_STREAM, data, Window(D1, D2), {"account": account})


def contacts(rows: list[tuple[str, str]], cursor: str | None = None, **extra: list[Any]) -> Batch:
    data = pa.table({"id": [r[0] for r in rows], "date": pa.array([D1] * len(rows), pa.date32()),
                     "stage": [r[1] for r in rows], **extra})
    return Batch(UPSERT, data, Window(D1, D1), cursor=Cursor("demo", "contacts", "portal", cursor) if cursor else None)


def associations(rows: list[tuple[str, str, str]], replaces: list[tuple[str, str]] | None = None) -> Batch:
    data = pa.table({"deal_id": [r[0] for r in rows], "to_type": [r[1] for r in rows], "to_id": [r[2] for r in rows]},
                    schema=ASSOCIATIONS.schema)
    replaced = None if replaces is None else pa.table({"deal_id": [r[0] for r in replaces],
                                                       "to_type": [r[1] for r in replaces]})
    return Batch(ASSOCIATIONS, data, Window(D1, D1), replaces=replaced)


def test_pages_are_released_once_written(tmp_path, monkeypatch):
    """40 pages of ~0.6 MB each streamed into one INSERT, cut into batches of one page (the row group size set to a
    page's 25,000 rows): while each page is read, the Arrow memory alive is the queue's batches, the ones DuckDB's
    threads convert and the page in hand: measured 3 to 4 pages, up to 10 while the machine is loaded (DuckDB's
    threads let their batches go later), never all 40 (~25 MB), as a page held until COMMIT (a registered view)
    would leave. The rows are all there afterwards, in the pages' order."""
    monkeypatch.setattr(_StreamedInsert, "ROW_GROUP_ROWS", 25_000)
    alive: list[int] = []

    def pages() -> Iterator[Batch]:
        for page in range(40):
            alive.append(pa.total_allocated_bytes())
            yield items("p1", page * 25_000, 25_000)

    page_bytes = items("p1", 0, 25_000).data.nbytes
    with connect(tmp_path / "w.duckdb") as conn:
        result = load_batches(conn, pages())
        assert result.rows_by_table == {"demo.items": 1_000_000}
        assert conn.execute("SELECT count(*), count(DISTINCT item), sum(n) FROM demo.items").fetchone() == (
            1_000_000, 1_000_000, 40 * sum(range(25_000)))
        items_in_order = conn.execute("SELECT item FROM demo.items").fetchnumpy()["item"]
        assert (items_in_order == np.arange(1_000_000)).all()
    assert max(alive) - alive[0] < 15 * page_bytes, str([round((a - alive[0]) / page_bytes, 1) for a in alive])


def test_a_key_repeated_on_another_page_of_the_window_is_refused(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [items("p1", 0, 10)])
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, [items("p1", 0, 100), items("p1", 200, 100), items("p1", 99, 1)])
        assert conn.execute("SELECT count(*), min(item), max(item) FROM demo.items").fetchone() == (10, 0, 9)


def test_the_same_day_and_item_under_two_accounts_is_no_duplicate(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [items("p1", 0, 1000), items("p2", 0, 1000), items("p1", 1000, 5)])
        assert conn.execute("SELECT account, count(*) FROM demo.items GROUP BY ALL ORDER BY ALL").fetchall() == [
            ("p1", 1005), ("p2", 1000)]


def test_key_hashes_collide_only_on_equal_hashes():
    top = np.uint64(2**64 - 5)  # in the last of the sixteen hash ranges
    hashes = _KeyHashes()
    hashes.add(np.array([7, 2**40, top], np.uint64))
    hashes.add(np.array([8, 2**63, 2**41], np.uint64))
    assert not hashes.collide()
    hashes.add(np.array([3, top], np.uint64))  # equal to the first page's last hash, on a third page
    assert hashes.collide()
    within = _KeyHashes()
    within.add(np.array([5, 9, 5], np.uint64))
    assert within.collide()
    assert not _KeyHashes().collide()


def test_a_key_shared_by_two_accounts_is_refused_when_the_scope_column_is_not_in_the_key(tmp_path):
    """Item 3 of 2026-01-02 sent by two accounts of a table keyed by (date, item) alone: one key, two rows. The
    accounts' hashes would tell the two keys apart, so such a table is checked whole (`_new_rows_decide`)."""
    shared = Stream(table="demo.shared", schema=WINDOW_STREAM.schema, key=("date", "item"), scope_column="account")
    pages = [Batch(shared, items(account, 3, 1).data, Window(D1, D2), {"account": account}) for account in ("a", "b")]
    with connect(tmp_path / "w.duckdb") as conn:
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, pages)
        assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'shared'").fetchone() == (0,)


def rows(conn: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    return conn.execute(f"SELECT * EXCLUDE (_loaded_at, _window_start, _window_end) FROM {table} ORDER BY ALL"
                        ).fetchall()


def test_upsert_pages_of_one_load_apply_in_order(tmp_path):
    """As if applied one after the other: a later page's row wins over an earlier page's and over the table's."""
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [contacts([("2", "old"), ("3", "kept")], cursor="100")])
        load_batches(conn, [contacts([("1", "lead"), ("2", "lead")]), contacts([("2", "customer")]),
                            contacts([("1", "opportunity"), ("4", "lead")], cursor="200")])
        assert rows(conn, "demo.contacts") == [("1", D1, "opportunity"), ("2", D1, "customer"), ("3", D1, "kept"),
                                               ("4", D1, "lead")]
        assert read_cursor(conn, "demo", "contacts", "portal") == "200"


def test_a_later_page_replaces_associations_of_an_earlier_page(tmp_path):
    """Deal 1 answered with two contacts on page 1, then with none on page 2 (its `replaces`): it has none. Deal 2's
    contact c3 on page 1 is replaced by c4 on page 2. Deal 3 (not read) and deal 2's companies keep their rows."""
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [associations([("1", "contacts", "c0"), ("2", "companies", "k1"),
                                          ("3", "contacts", "c9")])])
        load_batches(conn, [associations([("1", "contacts", "c1"), ("1", "contacts", "c2"),
                                          ("2", "contacts", "c3")]),
                            associations([("2", "contacts", "c4")], replaces=[("1", "contacts"), ("2", "contacts")])])
        assert rows(conn, "demo.deal_associations") == [("2", "companies", "k1"), ("2", "contacts", "c4"),
                                                        ("3", "contacts", "c9")]


def test_a_duplicate_key_within_an_upsert_page_writes_nothing(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [contacts([("1", "lead")], cursor="100")])
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, [contacts([("2", "lead")]), contacts([("3", "a"), ("3", "b")], cursor="300")])
        assert rows(conn, "demo.contacts") == [("1", D1, "lead")]
        assert read_cursor(conn, "demo", "contacts", "portal") == "100"
        load_batches(conn, [contacts([("2", "lead")])])  # the failed load's staging left nothing behind
        assert rows(conn, "demo.contacts") == [("1", D1, "lead"), ("2", D1, "lead")]


def test_a_column_appearing_between_upsert_pages_is_added(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [contacts([("1", "lead"), ("2", "lead")]),
                            contacts([("2", "customer")], score=pa.array([7], pa.int64()))])
        assert conn.execute("SELECT id, stage, score FROM demo.contacts ORDER BY id").fetchall() == [
            ("1", "lead", None), ("2", "customer", 7)]


class CountingConnection:
    """A connection that counts the statements deleting from a table."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, table: str) -> None:
        self._conn = conn
        self._prefix = f'DELETE FROM {table}'
        self.deletes = 0

    def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.deletes += query.startswith(self._prefix)
        return self._conn.execute(query, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_an_upsert_load_scans_its_table_once_whatever_its_pages(tmp_path):
    """Linear in rows (issue #21 target 4): 40 pages of 100 contacts delete from the table once, not 40 times."""
    with connect(tmp_path / "w.duckdb") as raw:
        conn = CountingConnection(raw, '"demo"."contacts"')
        pages = [contacts([(str(p * 100 + i), "lead") for i in range(100)]) for p in range(40)]
        load_batches(conn, pages)  # type: ignore[arg-type]
        assert conn.deletes == 1
        assert raw.execute("SELECT count(*), count(DISTINCT id) FROM demo.contacts").fetchone() == (4000, 4000)


def test_a_duplicate_association_is_refused_and_the_table_kept(tmp_path):
    """The merge checks the rows it inserts only (every table row sharing their key is deleted): a key twice among
    them is still refused, naming it."""
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [associations([("1", "contacts", "c1")])])
        with pytest.raises(ValueError, match=r"duplicate key \{'deal_id': '2', 'to_type': 'contacts', 'to_id': 'c2'\}"):
            load_batches(conn, [associations([("1", "contacts", "c1")]),
                                associations([("2", "contacts", "c2"), ("2", "contacts", "c2")])])
        assert rows(conn, "demo.deal_associations") == [("1", "contacts", "c1")]


def day_rows(account: str, rows: list[tuple[date, int, int]], start: date, end: date, **extra: list[Any]) -> Batch:
    data = pa.table({"account": [account] * len(rows), "date": pa.array([r[0] for r in rows], pa.date32()),
                     "item": pa.array([r[1] for r in rows], pa.int64()),
                     "n": pa.array([r[2] for r in rows], pa.int64()), **extra})
    return Batch(WINDOW_STREAM, data, Window(start, end), {"account": account})


def test_pages_inserted_together_still_apply_in_order(tmp_path):
    """Pages wait to be inserted a few at a time; a page of another window clears its days after the earlier pages
    are in, as when each page was inserted at once: the second window (D2..D3) deletes the first's D2 row."""
    d3 = date(2026, 1, 3)
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [day_rows("p1", [(D1, 1, 10), (D2, 1, 20)], D1, D2), day_rows("p1", [(D1, 2, 11)], D1, D2),
                            day_rows("p1", [(d3, 1, 30)], D2, d3), day_rows("p2", [(D2, 1, 5)], D1, D2)])
        assert conn.execute("SELECT account, date, item, n FROM demo.items ORDER BY ALL").fetchall() == [
            ("p1", D1, 1, 10), ("p1", D1, 2, 11), ("p1", d3, 1, 30), ("p2", D2, 1, 5)]


def test_a_column_appearing_between_window_pages_is_added(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [day_rows("p1", [(D1, 1, 10)], D1, D2),
                            day_rows("p1", [(D2, 1, 20)], D1, D2, clicks=pa.array([3], pa.int64())),
                            day_rows("p1", [(D2, 2, 21)], D1, D2)])
        assert conn.execute("SELECT date, item, n, clicks FROM demo.items ORDER BY ALL").fetchall() == [
            (D1, 1, 10, None), (D2, 1, 20, 3), (D2, 2, 21, None)]


def small_statements(monkeypatch) -> None:
    """Row groups of 1,000 rows, statements of 4 of them: a 12-page load of 1,000-row pages runs three statements."""
    monkeypatch.setattr(_StreamedInsert, "ROW_GROUP_ROWS", 1_000)
    monkeypatch.setattr(_StreamedInsert, "STATEMENT_BATCHES", 4)


def insert_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mkpi-insert"]


def test_a_statement_failing_mid_stream_raises_its_error_and_writes_nothing(tmp_path, monkeypatch):
    """The table refuses a NULL `n`; page 10 of 12 carries one, in the load's third statement, which DuckDB runs on
    the insert thread: its error reaches the caller, the earlier statements' rows are rolled back, no insert thread
    is left, the connection loads again and its progress bar is on again."""
    small_statements(monkeypatch)
    pages = [items("p1", page * 1_000, 1_000) for page in range(12)]
    bad = pages[9].data.set_column(3, "n", pa.array([1] * 999 + [None], pa.int64()))
    pages[9] = Batch(WINDOW_STREAM, bad, pages[9].window, pages[9].scope)
    with connect(tmp_path / "w.duckdb") as conn:
        conn.execute("SET enable_progress_bar = true")  # the loader turns it off while it loads, then on again
        conn.execute("CREATE SCHEMA demo")
        conn.execute("CREATE TABLE demo.items (account VARCHAR, date DATE, item BIGINT, n BIGINT NOT NULL, "
                      "_loaded_at TIMESTAMPTZ, _window_start DATE, _window_end DATE)")
        load_batches(conn, [items("p1", 0, 10)])
        with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
            load_batches(conn, pages)
        assert not insert_threads()
        assert conn.execute("SELECT count(*), max(item) FROM demo.items").fetchone() == (10, 9)
        assert conn.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (True,)
        assert load_batches(conn, pages[:9]).rows == 9_000
        assert conn.execute("SELECT count(*), max(item) FROM demo.items").fetchone() == (9_000, 8_999)


def test_a_connector_failing_mid_stream_writes_nothing(tmp_path, monkeypatch):
    """The connector raises after 10 pages (two statements ended, a third open): its own error reaches the caller,
    nothing of the load is kept, the insert thread is gone."""
    small_statements(monkeypatch)

    def failing() -> Iterator[Batch]:
        for page in range(10):
            yield items("p1", page * 1_000, 1_000)
        raise RuntimeError("API failed on page 11")

    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [items("p1", 0, 10)])
        with pytest.raises(RuntimeError, match="page 11"):
            load_batches(conn, failing())
        assert not insert_threads()
        assert conn.execute("SELECT count(*), max(item) FROM demo.items").fetchone() == (10, 9)


def test_statements_of_a_window_keep_every_row_in_order_and_find_duplicates_across_them(tmp_path, monkeypatch):
    """12 pages of 1,000 rows in three statements: 12,000 rows in the pages' order; an item repeated on the last
    page (a key the first statement wrote) is refused."""
    small_statements(monkeypatch)
    with connect(tmp_path / "w.duckdb") as conn:
        assert load_batches(conn, [items("p1", page * 1_000, 1_000) for page in range(12)]).rows == 12_000
        assert (conn.execute("SELECT item FROM demo.items").fetchnumpy()["item"] == np.arange(12_000)).all()
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, [*(items("p1", page * 1_000, 1_000) for page in range(11)), items("p1", 10, 1)])
        assert conn.execute("SELECT count(*) FROM demo.items").fetchone() == (12_000,)
