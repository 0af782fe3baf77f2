"""The one SQL runner: rebuilds a window of a KPI table from its SQL file, in one transaction.

Why windows: a scheduled run re-reads a few trailing days of raw data; only those days of the KPI
tables need recomputing. A model's SQL is a plain SELECT taking `$start` and `$end`; the runner
deletes that window from the KPI table and inserts the SELECT's rows, so rebuilding is idempotent and
an analyst never sees a half-rebuilt table (the delete and insert commit together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import duckdb
import pyarrow as pa

from connectors import ga4, google_ads, hubspot, matomo, search_console
from connectors.batches import Stream, Window
from connectors.warehouse import ensure_tables, quote_ident, transaction

KPI_SCHEMA = "kpi"


@dataclass(frozen=True)
class KpiModel:
    """A KPI table: its SQL file, its grain (key) and the date column windows are cut on."""

    name: str
    key: tuple[str, ...]
    inputs: tuple[Stream, ...]
    rate_columns: tuple[str, ...] = ()
    # None: the table is rebuilt whole (small, non-partitioned tables such as monthly CRM KPIs).
    partition_column: str | None = "date"
    # Extra named SQL parameters the model needs (e.g. "tz", the reporting time zone).
    params: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return f"{KPI_SCHEMA}.{self.name}"

    def sql(self) -> str:
        return resources.files("kpi_models").joinpath("sql", f"{self.name}.sql").read_text(encoding="utf-8")


MODELS: dict[str, KpiModel] = {
    "web_daily": KpiModel(
        name="web_daily",
        key=("date", "source", "channel"),
        inputs=(ga4.TRAFFIC.stream, matomo.REFERRERS),
        rate_columns=("engagement_rate", "bounce_rate", "conversion_rate"),
    ),
    "seo_daily": KpiModel(
        name="seo_daily",
        key=("date", "source", "site_url", "search_type"),
        inputs=(search_console.SITE_TOTALS.stream,),
        rate_columns=("search_ctr",),
    ),
    "ecommerce_daily": KpiModel(
        name="ecommerce_daily",
        key=("date", "source", "channel", "currency_code"),
        inputs=(ga4.TRAFFIC.stream, ga4.ECOMMERCE.stream, matomo.GOAL_STREAM, matomo.VISITS),
        rate_columns=("cart_abandonment_rate", "ecommerce_conversion_rate"),
    ),
    "paid_search_daily": KpiModel(
        name="paid_search_daily",
        key=("date", "source", "customer_id", "campaign_id"),
        inputs=(google_ads.CAMPAIGN_DAILY,),
        # ad_conversion_rate may exceed 1 (several conversions per click): only the CTR is bounded
        rate_columns=("ad_ctr",),
    ),
    "email_daily": KpiModel(
        name="email_daily",
        key=("date", "source", "email_id"),
        inputs=(hubspot.EMAIL_STATISTICS,),
        rate_columns=("email_deliverability_rate", "email_open_rate", "email_click_rate", "email_click_to_open_rate",
                      "email_bounce_rate", "email_unsubscribe_rate"),
        partition_column=None,
    ),
    "crm_monthly": KpiModel(
        name="crm_monthly",
        key=("month", "source", "channel"),
        inputs=(hubspot.default_stream("contacts"), hubspot.default_stream("deals"),
                hubspot.default_stream("feedback_submissions"), hubspot.DEAL_STAGES, hubspot.ASSOCIATIONS),
        rate_columns=("churn_rate", "loyalty_rate"),
        partition_column=None,
        params=("tz",),
    ),
}


def write_channel_map(conn: duckdb.DuckDBPyConnection, channels: Mapping[str, Mapping[str, str]]) -> None:
    """Replace `kpi.channel_map` (source, raw_value, channel) with the editable mapping from config."""
    rows = [(source, raw, channel) for source, mapping in channels.items() for raw, channel in mapping.items()]
    table = pa.table(
        {
            "source": pa.array([r[0] for r in rows], pa.string()),
            "raw_value": pa.array([r[1] for r in rows], pa.string()),
            "channel": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    conn.register("__mkpi_channel_map", table)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {KPI_SCHEMA}.channel_map AS SELECT * FROM __mkpi_channel_map")
    finally:
        conn.unregister("__mkpi_channel_map")


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild wrote, for run metadata."""

    table: str
    window: Window | None
    rows: int
    columns: tuple[tuple[str, str], ...]


def rebuild(
    conn: duckdb.DuckDBPyConnection,
    model: KpiModel | str,
    window: Window | None,
    channels: Mapping[str, Mapping[str, str]] | None = None,
    params: Mapping[str, object] | None = None,
) -> RebuildResult:
    """Recompute `window` of the model's table from raw tables (the whole table when the model is not
    partitioned), atomically."""
    if isinstance(model, str):
        model = MODELS[model]
    given = dict(params or {})
    missing = [p for p in model.params if p not in given]
    if missing:
        raise ValueError(f"model {model.name} needs parameters {missing}")
    if model.partition_column is None:
        return _rebuild_whole(conn, model, channels, {p: given[p] for p in model.params})
    if window is None:
        raise ValueError(f"model {model.name} is partitioned: a window is required")
    params = {"start": window.start, "end": window.end, **{p: given[p] for p in model.params}}
    query = model.sql()
    target = quote_ident(model.table)
    part = quote_ident(model.partition_column)
    with transaction(conn):
        _prepare(conn, model, channels)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM ({query}) LIMIT 0", params)
        conn.execute(f"DELETE FROM {target} WHERE {part} BETWEEN $start AND $end", params)
        conn.execute(f"INSERT INTO {target} BY NAME {query}", params)
        row = conn.execute(f"SELECT count(*) FROM {target} WHERE {part} BETWEEN $start AND $end", params).fetchone()
        columns = tuple((r[0], r[1]) for r in conn.execute(f"DESCRIBE {target}").fetchall())
    return RebuildResult(model.table, window, int(row[0]) if row else 0, columns)


# Raw channel columns per source, for counting values the mapping does not know.
_RAW_CHANNELS = (
    ("ga4", "ga4.traffic_by_channel", "session_default_channel_group", "sessions"),
    ("matomo", "matomo.referrer_types", "referrer_type", "nb_visits"),
    ("google_ads", "google_ads.campaign_daily", "advertising_channel_type", "clicks"),
)



def _prepare(conn: duckdb.DuckDBPyConnection, model: KpiModel, channels: Mapping[str, Mapping[str, str]] | None
             ) -> None:
    if channels is not None:
        write_channel_map(conn, channels)
    ensure_tables(conn, model.inputs)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {KPI_SCHEMA}")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {KPI_SCHEMA}.channel_map "
                 "(source VARCHAR, raw_value VARCHAR, channel VARCHAR)")


def _rebuild_whole(conn: duckdb.DuckDBPyConnection, model: KpiModel,
                   channels: Mapping[str, Mapping[str, str]] | None, params: Mapping[str, object]) -> RebuildResult:
    target = quote_ident(model.table)
    with transaction(conn):
        _prepare(conn, model, channels)
        conn.execute(f"CREATE OR REPLACE TABLE {target} AS {model.sql()}", dict(params))
        row = conn.execute(f"SELECT count(*) FROM {target}").fetchone()
        columns = tuple((r[0], r[1]) for r in conn.execute(f"DESCRIBE {target}").fetchall())
    return RebuildResult(model.table, None, int(row[0]) if row else 0, columns)


def unmapped_channel_values(conn: duckdb.DuckDBPyConnection, window: Window) -> dict[str, dict[str, int]]:
    """Raw channel values in the window that the mapping does not know (they count as `other`),
    per source, with the sessions they carry."""
    found: dict[str, dict[str, int]] = {}
    existing = {r[0] for r in conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables").fetchall()}
    for source, table, column, measure in _RAW_CHANNELS:
        if table not in existing:
            continue
        rows = conn.execute(
            f"SELECT t.{column}, CAST(sum(t.{measure}) AS BIGINT) FROM {table} t "
            f"LEFT JOIN kpi.channel_map m ON m.source = ? AND m.raw_value = t.{column} "
            f"WHERE t.date BETWEEN ? AND ? AND m.channel IS NULL GROUP BY 1 ORDER BY 1",
            [source, window.start, window.end],
        ).fetchall()
        if rows:
            found[source] = {str(r[0]): int(r[1] or 0) for r in rows}
    return found
