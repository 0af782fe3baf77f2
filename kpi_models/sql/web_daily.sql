-- kpi.web_daily: web analytics KPIs per day and channel, from GA4 (KPI_CATALOGUE: web analytics).
-- Grain: date x source x channel. The additive parts are stored beside each ratio, and every ratio is
-- sum(numerator) / nullif(sum(denominator), 0) at this grain, so weeks and months can recompute
-- ratios from sums. GA4's own bounceRate is never used (rule 1). Rows whose date is GA4's "(other)"
-- cannot be dated and are left out; rows whose channel is "(other)" or unmapped count as `other`.
-- Parameters: $start, $end (inclusive dates in the property's time zone).
WITH traffic AS (
    SELECT
        t.date,
        coalesce(m.channel, 'other') AS channel,
        CAST(sum(t.sessions) AS BIGINT) AS sessions,
        CAST(sum(t.engaged_sessions) AS BIGINT) AS engaged_sessions,
        CAST(sum(t.converting_sessions) AS BIGINT) AS converting_sessions,
        CAST(sum(t.user_engagement_duration) AS DOUBLE) AS engagement_duration_seconds,
        CAST(sum(t.key_events) AS DOUBLE) AS key_events,
        CAST(sum(t.new_users) AS BIGINT) AS new_users
    FROM ga4.traffic_by_channel AS t
    LEFT JOIN kpi.channel_map AS m
        ON m.source = 'ga4' AND m.raw_value = t.session_default_channel_group
    WHERE t.date BETWEEN $start AND $end
    GROUP BY ALL
)
SELECT
    date,
    'ga4' AS source,
    channel,
    sessions,
    engaged_sessions,
    sessions - engaged_sessions AS bounced_sessions,
    converting_sessions,
    engagement_duration_seconds,
    key_events,
    new_users,
    engaged_sessions / nullif(sessions, 0) AS engagement_rate,
    (sessions - engaged_sessions) / nullif(sessions, 0) AS bounce_rate,
    converting_sessions / nullif(sessions, 0) AS conversion_rate,
    engagement_duration_seconds / nullif(sessions, 0) AS avg_session_duration
FROM traffic
