"""kpi_daily's generated SELECT has fixed columns (kpi_models.catalogue.KPI_DAILY_COLUMNS), so a rebuild checks its
table for missing columns without binding the SQL (issue #21 target 5: each Dagster kpi_daily step, a process of its
own, described the whole generated SQL again). What guards it:

- the constant is what DuckDB itself describes for every form of the SQL (all sources at once, each source's part,
  each part with the table's ENUM names), in order;
- a table that has those columns gets no DESCRIBE; one built by an earlier version without a column still gains it
  (described then), its rows kept.
"""

from datetime import date

from connectors.warehouse import connect
from kpi_models.catalogue import KPI_DAILY_COLUMNS
from kpi_models.context import KpiContext
from kpi_models.layer import create_rollup_views
from kpi_models.runner import MODELS, _missing_columns, ensure_model_table, name_types, used_params
from tests.recording import Recording

PARAMS = {"start": date(2026, 3, 1), "end": date(2026, 3, 1), **KpiContext().params()}


def test_the_known_columns_are_what_duckdb_describes_for_every_form_of_the_sql(tmp_path):
    model = MODELS["kpi_daily"]
    with connect(tmp_path / "k.duckdb") as conn:
        create_rollup_views(conn)  # the upstream tables and kpi_daily, empty
        names = name_types(conn, model.table, tuple(model.enums()))
        queries = [model.combined(model.sources), *model.parts().values(),
                   *(model.typed_part(source, names) for source in model.sources)]
        assert len(queries) == 1 + 2 * len(model.sources)
        for query in queries:
            described = conn.execute(f"DESCRIBE SELECT * FROM ({query})", used_params(query, PARAMS)).fetchall()
            assert tuple(r[0] for r in described) == KPI_DAILY_COLUMNS
        assert model.output_columns() == KPI_DAILY_COLUMNS
        assert tuple(conn.table(model.table).columns) == KPI_DAILY_COLUMNS


def test_a_complete_table_is_not_described_and_a_missing_column_still_is(tmp_path):
    model = MODELS["kpi_daily"]
    query = model.combined(model.sources)
    params = used_params(query, PARAMS)
    with connect(tmp_path / "k.duckdb") as conn:
        create_rollup_views(conn)
        recording = Recording(conn)
        assert _missing_columns(recording, model.table, query, params, KPI_DAILY_COLUMNS) == []  # type: ignore[arg-type]
        assert not [s for s in recording.sent if s.startswith("DESCRIBE")]
        conn.execute("ALTER TABLE kpi.kpi_daily DROP COLUMN attribution")  # a table of an earlier version
        conn.execute("INSERT INTO kpi.kpi_daily (date, source, channel, account_id, kpi, numerator, is_final) "
                     "VALUES ('2026-02-27', 'ga4', 'organic_search', 'p1', 'sessions', 12, true)")
        recording = Recording(conn)
        assert _missing_columns(recording, model.table, query, params, KPI_DAILY_COLUMNS) == [  # type: ignore[arg-type]
            ("attribution", "VARCHAR")]
        assert [s for s in recording.sent if s.startswith("DESCRIBE")]
        ensure_model_table(conn, model)  # an existing table lacking a column gains it, its rows kept
        assert tuple(conn.table(model.table).columns) == KPI_DAILY_COLUMNS
        assert conn.execute("SELECT date, kpi, numerator, attribution FROM kpi.kpi_daily").fetchall() == [
            (date(2026, 2, 27), "sessions", 12.0, None)]
