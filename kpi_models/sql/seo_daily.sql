-- kpi.seo_daily: SEO KPIs per day and Search Console property (KPI_CATALOGUE: SEO, rule 4).
-- From the byProperty date-only totals ONLY: page rows over-count impressions (several URLs of a site on
-- one result page) and query rows miss anonymised queries, so neither is ever summed into these KPIs.
-- Average position is impression-weighted: sum(position x impressions) / sum(impressions), stored with its
-- numerator (position_x_impressions) so weeks and months re-weight correctly; Search Console's own ctr is
-- never reused. Dates are Search Console's (Pacific time). Parameters: $start, $end.
SELECT
    date,
    'search_console' AS source,
    'organic_search' AS channel,
    site_url,
    search_type,
    CAST(sum(clicks) AS BIGINT) AS search_clicks,
    CAST(sum(impressions) AS BIGINT) AS search_impressions,
    CAST(sum(position * impressions) AS DOUBLE) AS position_x_impressions,
    sum(clicks) / nullif(sum(impressions), 0) AS search_ctr,
    sum(position * impressions) / nullif(sum(CASE WHEN position IS NOT NULL THEN impressions END), 0)
        AS search_avg_position
FROM search_console.site_totals
WHERE date BETWEEN $start AND $end
GROUP BY ALL
