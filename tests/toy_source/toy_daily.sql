-- The toy platform's KPI SQL (SourceSpec.kpi_sql): its sessions per day and site, one row per date, source,
-- account_id and channel, added to kpi.kpi_daily by kpi_models.catalogue (the KPI keeps the catalogue's unit and
-- aggregation). The toy has no channels: one row per site and day, channel 'all'. is_final: every row read was
-- loaded at least the toy's re-read window (kpi.restatement_window) after its day. A day with a toy.visits_daily row
-- is a day the toy reported (`@raw`: kpi_daily's completeness check). Parameters: $start, $end, $tz.
-- @kpi sessions: sessions
-- @raw toy.visits_daily date
SELECT
    v.date,
    'toy' AS source,
    v.site_id AS account_id,
    'all' AS channel,
    CAST(sum(v.visits) AS BIGINT) AS sessions,
    -- no window for the toy (a context built before it was registered): provisional, never a dropped row
    coalesce(bool_and(date_diff('day', v.date, CAST(timezone($tz, v._loaded_at) AS DATE)) >= w.days), false)
        AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM toy.visits_daily AS v
LEFT JOIN kpi.restatement_window AS w ON w.source = 'toy'
WHERE v.date BETWEEN $start AND $end
GROUP BY v.date, v.site_id, w.days
