"""A whole-table model's rebuild result gives its table's row count from the content fingerprint it takes anyway
(count, xor and sum of the rows' hashes), not from a count(*) of its own (issue #21 target 5): the count is the
table's, whether the table was rebuilt or left as it was, and still after an input changed."""

from datetime import UTC, datetime

from kpi_models.runner import rebuild
from tests.recording import Recording
from tests.test_runner_rebuilds import CTX, conn  # noqa: F401  (the fixture: GA4, Matomo and two HubSpot contacts)


def count(c, table: str) -> int:
    return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_the_rows_are_the_tables_rebuilt_or_left(conn):  # noqa: F811
    recording = Recording(conn)
    first = rebuild(recording, "crm_daily", None, CTX)  # type: ignore[arg-type]
    assert not first.skipped and first.rows == count(conn, "kpi.crm_daily") > 0
    again = rebuild(recording, "crm_daily", None, CTX)  # type: ignore[arg-type]
    assert again.skipped and again.rows == first.rows
    assert not [s for s in recording.sent if s.startswith("SELECT count(*) FROM") and "hash(" not in s]
    conn.execute("INSERT INTO hubspot.contacts (id, archived, createdate, hs_analytics_source) "
                 "VALUES ('3', false, ?, 'ORGANIC_SEARCH')", [datetime(2026, 3, 6, 9, tzinfo=UTC)])
    moved = rebuild(conn, "crm_daily", None, CTX)
    assert not moved.skipped and moved.rows == count(conn, "kpi.crm_daily")
