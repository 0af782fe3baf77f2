-- kpi.toy_daily: the toy platform's sessions per day and site (tests/toy_source). Parameters: $start, $end.
SELECT
    v.date,
    'toy' AS source,
    v.site_id AS account_id,
    'all' AS channel,
    CAST(sum(v.visits) AS BIGINT) AS sessions,
    true AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM toy.visits_daily AS v
WHERE v.date BETWEEN $start AND $end
GROUP BY v.date, v.site_id
