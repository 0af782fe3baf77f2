"""The same raw rows give the same KPI bits on every rebuild (issue #19 item 2): sums of fractional values are exact
(DECIMAL), so the order DuckDB's threads add in does not show in the last bit, and checksums can prove re-runs."""

from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pytest

from connectors.batches import Window
from connectors.warehouse import connect
from kpi_models.context import KpiContext
from kpi_models.fx import FxPolicy
from kpi_models.layer import create_rollup_views, rebuild_kpi_daily
from kpi_models.runner import ensure_model_table, rebuild
from tests import battery

D1 = date(2026, 3, 2)
CTX = KpiContext(tz="Europe/Paris", as_of=date(2026, 3, 10),
                 channels={"google_ads": {"SEARCH": "paid_search"}},
                 fx=FxPolicy("EUR", "config", {"USD": ((date(2026, 1, 1), 0.9137),)}))
CAMPAIGNS = 400_000  # enough rows for DuckDB to add them on several threads


@pytest.mark.battery("Determinism")
def test_rebuilds_give_identical_bits_whatever_the_thread_order(tmp_path):
    rng = np.random.default_rng(19)
    with connect(tmp_path / "bits.duckdb") as conn:
        conn.execute("SET threads = 4")
        ensure_model_table(conn, "paid_search_daily", CTX)
        rows = pa.table({
            "customer_id": ["42"] * CAMPAIGNS, "date": pa.array([D1] * CAMPAIGNS, pa.date32()),
            "campaign_id": pa.array(range(CAMPAIGNS), pa.int64()),
            "advertising_channel_type": ["SEARCH"] * CAMPAIGNS, "currency_code": ["USD"] * CAMPAIGNS,
            "impressions": pa.array([100] * CAMPAIGNS, pa.int64()), "clicks": pa.array([3] * CAMPAIGNS, pa.int64()),
            "interactions": pa.array([3] * CAMPAIGNS, pa.int64()),
            "cost_micros": pa.array(rng.integers(1, 9_999_999, CAMPAIGNS), pa.int64()),
            "conversions": pa.array(rng.random(CAMPAIGNS)),
            "conversions_value": pa.array(rng.random(CAMPAIGNS) * 80),
            "_loaded_at": pa.array([datetime(2026, 3, 9, tzinfo=UTC)] * CAMPAIGNS, pa.timestamp("us", "UTC")),
        })
        conn.register("__rows", rows)
        conn.execute("INSERT INTO google_ads.campaign_daily BY NAME SELECT * FROM __rows")
        conn.unregister("__rows")
        rebuild(conn, "paid_search_daily", Window(D1, D1), CTX)  # a row per campaign: nothing to add up yet
        create_rollup_views(conn)
        seen = set()
        for _ in range(3):  # (with float sums, two answers or more in three rebuilds were seen)
            rebuild_kpi_daily(conn, Window(D1, D1), CTX, sources=["google_ads"])
            seen.add(tuple(repr(v) for v in conn.execute(
                "SELECT numerator, denominator, value FROM kpi.kpi_daily WHERE kpi IN ('ad_cost', 'ad_cpa', "
                "'ad_roas', 'ad_conversions') ORDER BY kpi").fetchall()))
            seen.add(tuple(repr(v) for v in conn.execute(
                "SELECT numerator, denominator, value FROM kpi.kpi_monthly WHERE kpi = 'ad_roas'").fetchall()))
    battery.count("Determinism", "rebuilds on 4 threads", 3)
    battery.count("Determinism", "rows summed per rebuild", CAMPAIGNS)
    battery.count("Determinism", "distinct answers per query (daily rows, monthly roll-up)", len(seen) / 2)
    assert len(seen) == 2  # one answer for the daily rows, one for the monthly roll-up: the same bits every time
