-- kpi.seo_daily: SEO KPIs per day and Search Console property (KPI_CATALOGUE: SEO, rule 4).
-- Grain: date x source x account_id x search_type; account_id is the property (site_url, kept too).
-- From the byProperty date-only totals ONLY: page rows over-count impressions (several URLs of a site on
-- one result page) and query rows miss anonymised queries, so neither is ever summed into these KPIs.
-- Average position is impression-weighted: sum(position x impressions) / sum(impressions), stored with its
-- numerator (position_x_impressions) so weeks and months re-weight correctly; Search Console's own ctr is
-- never reused. Discover and Google News have no position: search_avg_position is NULL there ("not available").
-- Dates are Search Console's (Pacific time).
-- is_final: the day was read as final (before the answer's metadata.firstIncompleteDate) and loaded at least the
-- restatement window after it (rule 11); quality 'partial_day': a day at or after firstIncompleteDate (still
-- being collected: objectives leave it out of their as-of day). Parameters: $start, $end, $tz.
-- One row per raw row: the raw table's key (site_url, search_type, date; connectors/raw_tables.py) is this table's
-- grain, the loader refuses two rows with one key (connectors/warehouse.py) and the restatement windows hold one
-- row per source, so each raw row is its own group: its parts are the sums over its one row (a sum of one value
-- is that value, DECIMAL's rounding to 9 places kept; bool_and / bool_or of one value is that value), without
-- hashing every row into a group (issue #21 target 5: the year at 10M raw rows, 121,545 rows, bare SELECT
-- 0.108 -> 0.055 CPU-s).
SELECT
    s.date,
    'search_console' AS source,
    s.site_url AS account_id,
    'organic_search' AS channel,
    s.site_url,
    s.search_type,
    CAST(s.clicks AS BIGINT) AS search_clicks,
    CAST(s.impressions AS BIGINT) AS search_impressions,
    CAST(CAST(s.position * s.impressions AS DECIMAL(38, 9)) AS DOUBLE) AS position_x_impressions,
    CAST(CASE WHEN s.position IS NOT NULL THEN s.impressions END AS BIGINT) AS positioned_impressions,
    s.clicks / nullif(s.impressions, 0) AS search_ctr,
    CAST(CAST(s.position * s.impressions AS DECIMAL(38, 9)) AS DOUBLE)
        / nullif(CASE WHEN s.position IS NOT NULL THEN s.impressions END, 0)
        AS search_avg_position,
    s.data_state = 'final'
        AND date_diff('day', s.date, CAST(timezone($tz, s._loaded_at) AS DATE)) >= w.days AS is_final,
    list_filter([CASE WHEN s.data_state IS DISTINCT FROM 'final' THEN 'partial_day' END,
                 CASE WHEN NOT coalesce(s.clicks / nullif(s.impressions, 0), 0) BETWEEN 0 AND 1
                      THEN 'out_of_range' END],
                x -> x IS NOT NULL) AS quality
FROM search_console.site_totals AS s
JOIN kpi.restatement_window AS w ON w.source = 'search_console'
WHERE s.date BETWEEN $start AND $end
