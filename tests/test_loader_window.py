"""Issue #19 item 1: a batch's rows lie inside its window and its account, and keys are unique in the whole table.

Why: the loader deletes a batch's window for its account and inserts the batch's rows. A row dated outside that
window (GA4 or Search Console answering a day nobody asked for) was committed next to the row already loaded for
that day, so `search_console.site_totals` held two rows for one key (806 and 972 clicks), and KPI sums doubled
silently. Such a row is an answer error now: InvalidResponse naming the source, the account, the table and window
it was read for and the offending date; nothing of the load is written. Expected rows are written by hand here.
"""

from datetime import date

import duckdb
import pyarrow as pa
import pytest

from connectors.batches import Batch, Stream, Window
from connectors.errors import InvalidResponse
from connectors.warehouse import connect, load_batches

STREAM = Stream(
    table="search_console.site_totals_demo",
    schema=pa.schema([("site_url", pa.string()), ("date", pa.date32()), ("clicks", pa.int64())]),
    key=("site_url", "date"),
    scope_column="site_url",
)
SITE = "sc-domain:example.com"
D1, D2, D3, D4, D5 = (date(2026, 3, d) for d in range(1, 6))


def batch(rows: list[tuple[str, date | None, int]], start: date, end: date, site: str = SITE) -> Batch:
    data = pa.table({"site_url": pa.array([r[0] for r in rows], pa.string()),
                     "date": pa.array([r[1] for r in rows], pa.date32()),
                     "clicks": pa.array([r[2] for r in rows], pa.int64())}, schema=STREAM.schema)
    return Batch(STREAM, data, Window(start, end), {"site_url": site})


def rows(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return conn.execute("SELECT site_url, date, clicks FROM search_console.site_totals_demo ORDER BY ALL").fetchall()


@pytest.mark.battery("Out-of-window answers")
def test_a_row_on_a_day_loaded_outside_the_window_is_refused_and_nothing_written(tmp_path):
    """The issue's case: D1 was loaded with 806 clicks; a re-read of D3..D4 answers D1 again with 972."""
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch([(SITE, D1, 806), (SITE, D2, 10)], D1, D2)])
        with pytest.raises(InvalidResponse) as caught:
            load_batches(conn, [batch([(SITE, D3, 30), (SITE, D4, 40)], D3, D4),
                                batch([(SITE, D1, 972)], D3, D4)])
        assert rows(conn) == [(SITE, D1, 806), (SITE, D2, 10)]  # nothing of the second load, no duplicate
        message = str(caught.value)
        for part in ("search_console", SITE, "search_console.site_totals_demo", "2026-03-03..2026-03-04",
                     "2026-03-01", "outside the requested window"):
            assert part in message, (part, message)
        assert caught.value.field == "date"


@pytest.mark.battery("Out-of-window answers")
@pytest.mark.parametrize("day", [date(2026, 2, 28), D5], ids=["before the start date", "after the end date"])
def test_rows_before_or_after_the_window_are_refused(tmp_path, day):
    with connect(tmp_path / "w.duckdb") as conn:
        with pytest.raises(InvalidResponse, match=day.isoformat()):
            load_batches(conn, [batch([(SITE, D2, 1), (SITE, day, 2), (SITE, D3, 3)], D2, D4)])
        assert conn.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_name = 'site_totals_demo'").fetchone() == (0,)


@pytest.mark.battery("Out-of-window answers")
def test_a_row_of_another_account_than_its_batch_is_refused(tmp_path):
    """The window was cleared for the batch's account only: another account's row would sit beside its own."""
    other = "sc-domain:other.example"
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch([(other, D1, 5)], D1, D1, site=other)])
        with pytest.raises(InvalidResponse, match="other.example"):
            load_batches(conn, [batch([(SITE, D1, 1), (other, D1, 6)], D1, D1)])
        assert rows(conn) == [(other, D1, 5)]


def test_rows_on_the_window_edges_load(tmp_path):
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch([(SITE, D2, 2), (SITE, D4, 4)], D2, D4)])
        assert rows(conn) == [(SITE, D2, 2), (SITE, D4, 4)]


@pytest.mark.battery("Out-of-window answers")
def test_keys_stay_unique_in_the_table_with_undated_rows(tmp_path):
    """A row without a date belongs to the window it was loaded with; a later window does not clear it. The same
    undated key loaded with another window is a duplicate in the table, refused even on the loader's fast path
    (new rows alone decide uniqueness only when every row has its date)."""
    with connect(tmp_path / "w.duckdb") as conn:
        load_batches(conn, [batch([(SITE, None, 1)], D1, D1)])
        with pytest.raises(ValueError, match="duplicate key"):
            load_batches(conn, [batch([(SITE, None, 2)], D3, D3)])
        assert rows(conn) == [(SITE, None, 1)]
        load_batches(conn, [batch([(SITE, None, 3)], D1, D2)])  # its own window (and wider) replaces it
        assert rows(conn) == [(SITE, None, 3)]


@pytest.mark.battery("Out-of-window answers")
def test_search_console_answering_a_day_before_the_window_loads_nothing(tmp_path):
    """Through the official client and the sandbox: the first load is the world's; the re-read of 2026-03-05..06 is
    answered (a scripted hostile answer) with a row for 2026-03-01 as well. The run fails naming the day; the table
    keeps exactly the first load's rows (the world's figures), one per day."""
    from connectors.http import RetryPolicy
    from connectors.search_console import SITE_TOTALS, SearchConsoleConnector
    from connectors.settings import SearchConsoleSettings
    from sandbox.gsc_server import GscServer
    from sandbox.world import DEFAULT_GSC_SITE, World

    world = World(seed=7, today=date(2026, 3, 31))
    first = Window(D1, D4)
    with GscServer(world) as server, connect(tmp_path / "w.duckdb") as conn:
        gsc = SearchConsoleConnector(SearchConsoleSettings(sites=(DEFAULT_GSC_SITE,), endpoint=server.url,
                                                           timeout_seconds=5), policy=RetryPolicy(max_attempts=1))
        load_batches(conn, gsc.fetch(SITE_TOTALS, first))
        expected = [(day, world.gsc_day(DEFAULT_GSC_SITE, day).clicks) for day in first.dates()]
        hostile = {"rows": [{"keys": [d.isoformat()], "clicks": 972, "impressions": 5000, "ctr": 0.19, "position": 3.0}
                            for d in (D1, D5, date(2026, 3, 6))], "responseAggregationType": "byProperty"}
        server.add_fault("status", 200, hostile)
        with pytest.raises(InvalidResponse, match="2026-03-01") as caught:
            load_batches(conn, gsc.fetch(SITE_TOTALS, Window(D5, date(2026, 3, 6))))
        assert DEFAULT_GSC_SITE in str(caught.value) and "search_console" in str(caught.value)
        assert conn.execute("SELECT date, clicks FROM search_console.site_totals ORDER BY date").fetchall() == expected
