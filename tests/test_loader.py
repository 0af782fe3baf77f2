"""The one loader: window replacement is idempotent, atomic, typed and never duplicates a key."""

from datetime import date

import duckdb
import pyarrow as pa
import pytest

from connectors.batches import Batch, Stream, Window
from connectors.warehouse import connect, load_batches

STREAM = Stream(
    table="demo.events",
    schema=pa.schema([("account", pa.string()), ("date", pa.date32()), ("kind", pa.string()), ("n", pa.int64())]),
    key=("account", "date", "kind"),
    scope_column="account",
)


def batch(account: str, rows: list[tuple[date, str, int]], start: date, end: date) -> Batch:
    data = pa.table(
        {
            "account": pa.array([account] * len(rows), pa.string()),
            "date": pa.array([r[0] for r in rows], pa.date32()),
            "kind": pa.array([r[1] for r in rows], pa.string()),
            "n": pa.array([r[2] for r in rows], pa.int64()),
        }
    )
    return Batch(STREAM, data, Window(start, end), {"account": account})


D1, D2, D3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def snapshot(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute("SELECT account, date, kind, n FROM demo.events ORDER BY ALL").fetchall()


def test_same_window_twice_leaves_identical_rows(tmp_path):
    rows = [(D1, "a", 1), (D2, "a", 2), (D2, "b", 3)]
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch("p1", rows, D1, D2)])
        first = snapshot(conn)
        load_batches(conn, [batch("p1", rows, D1, D2)])
        assert snapshot(conn) == first == [("p1", D1, "a", 1), ("p1", D2, "a", 2), ("p1", D2, "b", 3)]


def test_reload_replaces_only_its_window_and_account(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch("p1", [(D1, "a", 1), (D2, "a", 2), (D3, "a", 3)], D1, D3),
                            batch("p2", [(D2, "a", 20)], D1, D3)])
        # a re-read of D2..D3 for p1 restates D3 and drops the D2 "a" row the source no longer has
        load_batches(conn, [batch("p1", [(D3, "a", 30), (D2, "c", 5)], D2, D3)])
        assert snapshot(conn) == [
            ("p1", D1, "a", 1), ("p1", D2, "c", 5), ("p1", D3, "a", 30), ("p2", D2, "a", 20),
        ]


def test_pages_of_one_window_are_all_kept(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        result = load_batches(conn, [batch("p1", [(D1, "a", 1)], D1, D2), batch("p1", [(D2, "a", 2)], D1, D2)])
        assert result.rows_by_table == {"demo.events": 2}
        assert len(snapshot(conn)) == 2


def test_error_while_iterating_batches_writes_nothing(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch("p1", [(D1, "a", 1)], D1, D1)])
        before = snapshot(conn)

        def failing():
            yield batch("p1", [(D1, "a", 99)], D1, D1)  # would replace the row ...
            raise RuntimeError("API failed on the second property")  # ... but the run fails

        with pytest.raises(RuntimeError):
            load_batches(conn, failing())
        assert snapshot(conn) == before


def test_duplicate_keys_are_refused_and_nothing_written(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, [batch("p1", [(D1, "a", 1), (D1, "a", 2)], D1, D1)])
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'events'"
        ).fetchone() == (0,)


def test_table_is_typed_from_the_batch_and_rows_carry_load_metadata(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch("p1", [(D1, "a", 1)], D1, D2)])
        types = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'events'").fetchall())
        assert types == {"account": "VARCHAR", "date": "DATE", "kind": "VARCHAR", "n": "BIGINT",
                         "_loaded_at": "TIMESTAMP WITH TIME ZONE", "_window_start": "DATE", "_window_end": "DATE"}
        assert conn.execute("SELECT _window_start, _window_end, _loaded_at IS NOT NULL FROM demo.events"
                            ).fetchone() == (D1, D2, True)


def test_batch_with_lossy_type_is_rejected():
    data = pa.table({"account": ["p"], "date": pa.array([D1], pa.date32()), "kind": ["a"], "n": [1.5]})
    with pytest.raises(pa.ArrowInvalid):
        Batch(STREAM, data, Window(D1, D1), {"account": "p"})


def test_connection_is_closed_after_an_error(tmp_path):
    path = tmp_path / "w.duckdb"
    with pytest.raises(RuntimeError), connect(path) as conn:
        conn.execute("CREATE TABLE t (x INT)")
        raise RuntimeError("boom")
    # another process could open it now: a read-only open from a fresh connection succeeds
    with connect(path, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


UPSERT = Stream(
    table="demo.contacts",
    schema=pa.schema([("id", pa.string()), ("date", pa.date32()), ("stage", pa.string())]),
    key=("id",),
    write_mode="upsert",
)


def contacts(rows: list[tuple[str, str]], cursor: str | None = None) -> Batch:
    from connectors.batches import Cursor

    data = pa.table({"id": [r[0] for r in rows], "date": pa.array([D1] * len(rows), pa.date32()),
                     "stage": [r[1] for r in rows]})
    return Batch(UPSERT, data, Window(D1, D1), cursor=Cursor("demo", "contacts", "portal", cursor) if cursor else None)


def test_upsert_replaces_by_key_and_commits_the_cursor_with_the_rows(tmp_path):
    from connectors.warehouse import read_cursor

    with connect(tmp_path / "w.duckdb") as conn:
        assert read_cursor(conn, "demo", "contacts", "portal") is None
        load_batches(conn, [contacts([("1", "lead"), ("2", "lead")], cursor="100")])
        load_batches(conn, [contacts([("2", "customer"), ("3", "lead")], cursor="200")])
        assert conn.execute("SELECT id, stage FROM demo.contacts ORDER BY id").fetchall() == [
            ("1", "lead"), ("2", "customer"), ("3", "lead")]
        assert read_cursor(conn, "demo", "contacts", "portal") == "200"


def test_a_failure_mid_stream_keeps_rows_and_cursor_as_they_were(tmp_path):
    from connectors.warehouse import read_cursor

    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [contacts([("1", "lead")], cursor="100")])

        def crashing():
            yield contacts([("1", "customer")], cursor="150")
            raise ConnectionError("reset after the first page")

        with pytest.raises(ConnectionError):
            load_batches(conn, crashing())
        assert conn.execute("SELECT id, stage FROM demo.contacts").fetchall() == [("1", "lead")]
        assert read_cursor(conn, "demo", "contacts", "portal") == "100"
