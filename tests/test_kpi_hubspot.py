"""HubSpot's KPI rows: they stop at the as-of day like every table, and every HubSpot run rebuilds them whole.

Hand-made raw rows; expected values worked out by hand in the comments (issue #16 items 5 and 6).
"""

from datetime import UTC, date, datetime

import pytest

from connectors.warehouse import connect
from kpi_models.context import KpiContext
from kpi_models.layer import rebuild_hubspot_kpi_daily
from kpi_models.runner import ensure_model_table, rebuild
from tests.rows import insert

TODAY = date(2026, 3, 18)
AS_OF = date(2026, 3, 17)  # yesterday in Paris: today is still running
CTX = KpiContext(tz="Europe/Paris", as_of=AS_OF, channels={"hubspot": {"ORGANIC_SEARCH": "organic_search"}})


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def contact(cid: str, created: datetime, lead: datetime | None = None) -> dict:
    return {"id": cid, "archived": False, "createdate": created, "hs_analytics_source": "ORGANIC_SEARCH",
            "hs_lifecyclestage_lead_date": lead}


@pytest.fixture
def conn(tmp_path):
    with connect(tmp_path / "crm.duckdb") as c:
        ensure_model_table(c, "crm_monthly", CTX)
        insert(c, "hubspot.account_details", [{"portal_id": "147258369", "time_zone": "Europe/Paris"}])
        insert(c, "hubspot.contacts", [
            contact("1", at(date(2026, 3, 2), 9), at(date(2026, 3, 2), 10)),
            contact("2", at(date(2026, 3, 5), 9), at(date(2026, 3, 5), 10)),
            contact("3", at(AS_OF, 9), at(AS_OF, 10)),  # yesterday: counted
            contact("4", at(TODAY, 9), at(TODAY, 10)),  # today: not yet, in any table
        ])
        yield c


def test_every_hubspot_table_stops_at_the_as_of_day(conn):
    rebuild(conn, "crm_monthly", None, CTX)
    rebuild(conn, "crm_daily", None, CTX)
    rebuild_hubspot_kpi_daily(conn, CTX)
    # March to date: contacts 1, 2 and 3 became leads (4 did so today); crm_monthly and kpi_daily agree
    assert conn.execute("SELECT leads, contacts_created, account_id, is_final FROM kpi.crm_monthly "
                        "WHERE month = '2026-03-01' AND channel = 'all'").fetchone() == (3, 3, "147258369", False)
    assert conn.execute("SELECT sum(numerator), max(date) FROM kpi.kpi_daily WHERE kpi = 'leads'").fetchone() == (
        3, AS_OF)


def test_a_hubspot_run_rebuilds_its_kpi_rows_whole_and_nothing_else(conn):
    rebuild(conn, "crm_daily", None, CTX)
    rebuild_hubspot_kpi_daily(conn, CTX)
    # a report source's row, which HubSpot's rebuild must never touch
    conn.execute("INSERT INTO kpi.kpi_daily (date, source, channel, account_id, kpi, numerator, value, is_final, "
                 "quality) VALUES ('2026-03-02', 'ga4', 'direct', '1', 'sessions', 10, 10, true, [])")
    before = dict(conn.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'leads'").fetchall())
    assert before == {date(2026, 3, 2): 1, date(2026, 3, 5): 1, AS_OF: 1}
    # HubSpot moves contact 1's lead date from March 2 to March 5 (weeks later: outside any trailing window)
    conn.execute("UPDATE hubspot.contacts SET hs_lifecyclestage_lead_date = ? WHERE id = '1'",
                 [at(date(2026, 3, 5), 11)])
    rebuild(conn, "crm_daily", None, CTX)  # as the HubSpot run does, before HubSpot's rows of kpi_daily
    result = rebuild_hubspot_kpi_daily(conn, CTX)
    assert result is not None and result.rebuild.window.start == date(2026, 3, 2)
    after = dict(conn.execute("SELECT date, numerator FROM kpi.kpi_daily WHERE kpi = 'leads'").fetchall())
    assert after == {date(2026, 3, 2): 0, date(2026, 3, 5): 2, AS_OF: 1}  # March 2 taken back, not left stale
    assert conn.execute("SELECT numerator FROM kpi.kpi_daily WHERE source = 'ga4'").fetchone() == (10,)


def test_churn_reads_the_configured_churn_property(tmp_path):
    """hubspot.churn_date_property names the portal's own property: crm_monthly reads it, not a fixed column."""
    ctx = KpiContext(tz="Europe/Paris", as_of=date(2026, 4, 30), churn_date_property="date_de_resiliation")
    with connect(tmp_path / "churn.duckdb") as conn:
        ensure_model_table(conn, "crm_monthly", KpiContext(tz="Europe/Paris", as_of=AS_OF))
        conn.execute("ALTER TABLE hubspot.contacts ADD COLUMN date_de_resiliation DATE")
        customers = [{"id": str(i), "archived": False, "createdate": at(date(2026, 1, 5), 9),
                      "hs_lifecyclestage_customer_date": at(date(2026, 1, 20), 9)} for i in range(4)]
        insert(conn, "hubspot.contacts", customers)
        # two of the four customers left in March, per the portal's own property; the default column stays empty
        conn.execute("UPDATE hubspot.contacts SET date_de_resiliation = DATE '2026-03-12' WHERE id IN ('0', '1')")
        rebuild(conn, "crm_monthly", None, ctx)
        march = conn.execute("SELECT customers_at_start, customers_lost, churn_rate FROM kpi.crm_monthly "
                             "WHERE month = '2026-03-01' AND channel = 'all'").fetchone()
        assert march == (4, 2, pytest.approx(0.5))
        with pytest.raises(ValueError, match="churn_date_property 'lost_on' is not a column of hubspot.contacts"):
            rebuild(conn, "crm_monthly", None, KpiContext(tz="Europe/Paris", as_of=AS_OF,
                                                          churn_date_property="lost_on"))
