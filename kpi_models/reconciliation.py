"""Cross-source reconciliation (`kpi.reconciliation`): do the platforms that see the same site agree, day by day?

Why: every platform measures its own slice of the same visitors. GA4 and Matomo both count the site's visits, Google
Ads clicks land as GA4 paid-search sessions, Search Console clicks as GA4 organic sessions, and both analytics tools
count the shop's orders. Each pair has a usual ratio (consent banners, ad blockers and bot filtering keep it off 1);
a day far outside it means one side lost data (a tag removed, a broken consent setup, a time-zone change, a
campaign without tagging). The ratio is stored per day and site with its band, and a non-blocking check per pair
warns naming the days and the likely causes. Which accounts observe the same site is configuration
(`reconciliation.sites` in config/mkpi.yaml), as are the bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from connectors.batches import Window
from connectors.warehouse import table_exists, transaction

TABLE = "kpi.reconciliation"
_SCHEMA = pa.schema([
    ("date", pa.date32()), ("check_name", pa.string()), ("site", pa.string()), ("value_a", pa.float64()),
    ("value_b", pa.float64()), ("ratio", pa.float64()), ("band_low", pa.float64()), ("band_high", pa.float64()),
    ("in_band", pa.bool_()), ("is_final", pa.bool_()),
])


@dataclass(frozen=True)
class Pair:
    """One reconciliation: value_a / value_b per day, from two sources that see the same site."""

    name: str
    a: str  # what value_a is, for texts
    b: str
    needs: tuple[str, ...]  # the site's accounts it needs: ga4_property, matomo_site, search_console_site, ads
    sql: str  # SELECT date, value_a, value_b, is_final for $start..$end and the site's accounts
    causes: str


# Each SQL reads the per-channel KPI tables (already one row per account and day) with the site's accounts as
# parameters: $ga4, $matomo, $gsc, $ads (a list). Money is compared in the reporting currency at each day's rate.
PAIRS: tuple[Pair, ...] = (
    Pair("ga4_sessions_per_matomo_visit", "GA4 sessions", "Matomo visits", ("ga4_property", "matomo_site"), """
        SELECT g.date, g.v AS value_a, m.v AS value_b, g.f AND m.f AS is_final
        FROM (SELECT date, sum(sessions) AS v, bool_and(is_final) AS f FROM kpi.web_daily
              WHERE source = 'ga4' AND account_id = $ga4 AND date BETWEEN $start AND $end GROUP BY date) AS g
        JOIN (SELECT date, sum(sessions) AS v, bool_and(is_final) AS f FROM kpi.web_daily
              WHERE source = 'matomo' AND account_id = $matomo AND date BETWEEN $start AND $end GROUP BY date) AS m
          USING (date)""",
         "GA4 drops visitors who refuse consent (Consent Mode without modelling) and Matomo may not; ad blockers "
         "block GA4 more often; a GA4 tag missing from some pages or templates; bot filtering; the two tools' time "
         "zones differing shifts visits between days"),
    Pair("ga4_paid_search_sessions_per_ads_click", "GA4 paid-search sessions", "Google Ads search and shopping clicks",
         ("ga4_property", "ads"), """
        SELECT g.date, g.v AS value_a, a.v AS value_b, g.f AND a.f AS is_final
        FROM (SELECT date, sum(sessions) AS v, bool_and(is_final) AS f FROM kpi.web_daily
              WHERE source = 'ga4' AND account_id = $ga4 AND channel = 'paid_search'
                AND date BETWEEN $start AND $end GROUP BY date) AS g
        JOIN (SELECT date, sum(ad_clicks) AS v, bool_and(is_final) AS f FROM kpi.paid_search_daily
              WHERE account_id IN (SELECT unnest($ads::VARCHAR[])) AND channel = 'paid_search'
                AND date BETWEEN $start AND $end GROUP BY date) AS a
          USING (date)""",
         "auto-tagging (gclid) off or stripped by a redirect, so paid clicks land as another channel; consent "
         "refusals and ad blockers; clicks that bounce before the tag fires; the Ads account's time zone differing "
         "from the property's"),
    Pair("ga4_orders_per_matomo_order", "GA4 purchases", "Matomo e-commerce orders", ("ga4_property", "matomo_site"),
         """
        SELECT g.date, g.v AS value_a, m.v AS value_b, g.f AND m.f AS is_final
        FROM (SELECT date, sum(orders) AS v, bool_and(is_final) AS f FROM kpi.ecommerce_daily
              WHERE source = 'ga4' AND account_id = $ga4 AND date BETWEEN $start AND $end GROUP BY date) AS g
        JOIN (SELECT date, sum(orders) AS v, bool_and(is_final) AS f FROM kpi.ecommerce_daily
              WHERE source = 'matomo' AND account_id = $matomo AND date BETWEEN $start AND $end GROUP BY date) AS m
          USING (date)""",
         "a purchase event missing on a payment path (an external payment page returning elsewhere); duplicate "
         "purchase events on page reloads; consent refusals; test orders counted by one tool only"),
    Pair("ga4_revenue_per_matomo_revenue", "GA4 purchase revenue", "Matomo e-commerce revenue",
         ("ga4_property", "matomo_site"), """
        SELECT g.date, g.v AS value_a, m.v AS value_b, g.f AND m.f AS is_final
        FROM (SELECT e.date, sum(e.revenue * fx.rate) AS v, bool_and(e.is_final AND fx.is_final) AS f
              FROM kpi.ecommerce_daily AS e JOIN kpi.fx_rate AS fx ON fx.date = e.date AND fx.currency = e.currency_code
              WHERE e.source = 'ga4' AND e.account_id = $ga4 AND e.date BETWEEN $start AND $end GROUP BY e.date) AS g
        JOIN (SELECT e.date, sum(e.revenue * fx.rate) AS v, bool_and(e.is_final AND fx.is_final) AS f
              FROM kpi.ecommerce_daily AS e JOIN kpi.fx_rate AS fx ON fx.date = e.date AND fx.currency = e.currency_code
              WHERE e.source = 'matomo' AND e.account_id = $matomo AND e.date BETWEEN $start AND $end
              GROUP BY e.date) AS m
          USING (date)""",
         "revenue sent with or without tax or shipping by one tool; a currency set differently in the two tools; "
         "missing or duplicate purchase events (see the orders check); refunds recorded by one tool only"),
    Pair("search_console_clicks_per_ga4_organic_session", "Search Console clicks", "GA4 organic-search sessions",
         ("search_console_site", "ga4_property"), """
        SELECT s.date, s.v AS value_a, g.v AS value_b, s.f AND g.f AS is_final
        FROM (SELECT date, sum(search_clicks) AS v, bool_and(is_final) AS f FROM kpi.seo_daily
              WHERE account_id = $gsc AND search_type = 'web' AND date BETWEEN $start AND $end GROUP BY date) AS s
        JOIN (SELECT date, sum(sessions) AS v, bool_and(is_final) AS f FROM kpi.web_daily
              WHERE source = 'ga4' AND account_id = $ga4 AND channel = 'organic_search'
                AND date BETWEEN $start AND $end GROUP BY date) AS g
          USING (date)""",
         "Google's share of organic search (other engines land in GA4 organic too); consent refusals lowering GA4's "
         "sessions; Search Console days are Pacific days and GA4's the property's; Discover and News clicks are "
         "outside web search"),
)
PAIR_NAMES = tuple(p.name for p in PAIRS)


@dataclass(frozen=True)
class Site:
    """The accounts that observe one site (any may be missing: the pairs that need it are skipped)."""

    name: str
    ga4_property: str | None = None
    matomo_site: str | None = None
    search_console_site: str | None = None
    ads: tuple[str, ...] = ()

    def has(self, need: str) -> bool:
        return bool(self.ads) if need == "ads" else getattr(self, need) is not None


def rebuild_reconciliation(conn: duckdb.DuckDBPyConnection, window: Window, sites: Sequence[Site],
                           bands: Mapping[str, tuple[float, float]]) -> int:
    """Replace the window's rows of `kpi.reconciliation` (one per day, pair and site with both sides), atomically;
    return how many were written."""
    rows: list[dict[str, object]] = []
    for site in sites:
        params = {"start": window.start, "end": window.end, "ga4": site.ga4_property, "matomo": site.matomo_site,
                  "gsc": site.search_console_site, "ads": list(site.ads)}
        for pair in PAIRS:
            if not all(site.has(n) for n in pair.needs) or not _tables_exist(conn, pair.sql):
                continue
            used = {k: v for k, v in params.items() if f"${k}" in pair.sql}
            low, high = bands[pair.name]
            for day, a, b, final in conn.execute(pair.sql + " ORDER BY date", used).fetchall():
                ratio = a / b if a is not None and b else None
                rows.append({"date": day, "check_name": pair.name, "site": site.name, "value_a": a, "value_b": b,
                             "ratio": ratio, "band_low": low, "band_high": high,
                             "in_band": None if ratio is None else low <= ratio <= high, "is_final": final})
    with transaction(conn):
        conn.execute("CREATE SCHEMA IF NOT EXISTS kpi")
        columns = ", ".join(f"{f.name} {_duck(f.type)}" for f in _SCHEMA)
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
        conn.execute(f"DELETE FROM {TABLE} WHERE date BETWEEN ? AND ?", [window.start, window.end])
        if rows:
            conn.register("__mkpi_reconciliation", pa.Table.from_pylist(rows, schema=_SCHEMA))
            try:
                conn.execute(f"INSERT INTO {TABLE} BY NAME SELECT * FROM __mkpi_reconciliation")
            finally:
                conn.unregister("__mkpi_reconciliation")
    return len(rows)


def out_of_band(conn: duckdb.DuckDBPyConnection, pair: str, window: Window | None = None) -> list[dict[str, object]]:
    """The days a pair left its band (in the window; all days without one), oldest first."""
    if not table_exists(conn, TABLE):
        return []
    where, params = "check_name = ? AND in_band = false", [pair]
    if window is not None:
        where += " AND date BETWEEN ? AND ?"
        params += [window.start, window.end]
    cursor = conn.execute(f"SELECT date, site, value_a, value_b, ratio, band_low, band_high FROM {TABLE} "
                          f"WHERE {where} ORDER BY date, site", params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def window_summary(conn: duckdb.DuckDBPyConnection, window: Window) -> list[dict[str, object]]:
    """Per site and pair over the window: the ratio of sums, the last day's ratio and the days out of band (the
    asset's metadata, which the Dagster UI plots run after run)."""
    if not table_exists(conn, TABLE):
        return []
    cursor = conn.execute(
        f"""SELECT site, check_name, sum(value_a) / nullif(sum(value_b), 0) AS ratio,
                   arg_max(ratio, date) AS last_day_ratio, count(*) FILTER (WHERE NOT in_band) AS days_out_of_band
            FROM {TABLE} WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY site, check_name""",
        [window.start, window.end])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def describe(pair: Pair, days: Sequence[Mapping[str, object]]) -> str:
    """The warning's sentence: which days left the band, by how much, and what usually causes it."""
    shown = ", ".join(f"{d['date']} ({d['site']}: {float(d['ratio']):.2f})" for d in days[:8])  # type: ignore[arg-type]
    more = f" and {len(days) - 8} more" if len(days) > 8 else ""
    low, high = days[0]["band_low"], days[0]["band_high"]
    return (f"{pair.a} / {pair.b} left its band [{low}, {high}] on {shown}{more}. Likely causes: {pair.causes}.")


def _tables_exist(conn: duckdb.DuckDBPyConnection, sql: str) -> bool:
    return all(table_exists(conn, t) for t in ("kpi.web_daily", "kpi.seo_daily", "kpi.paid_search_daily",
                                                "kpi.ecommerce_daily", "kpi.fx_rate") if t in sql)


def _duck(dtype: pa.DataType) -> str:
    return {pa.date32(): "DATE", pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}[dtype]
