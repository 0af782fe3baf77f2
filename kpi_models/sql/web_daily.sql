-- kpi.web_daily: web analytics KPIs per day, source and channel (KPI_CATALOGUE: web analytics).
-- Grain: date x source x channel. GA4 and Matomo rows sit side by side (`source`), never blended:
-- their bounce rates mean different things (rule 8). The additive parts are stored beside each ratio,
-- and every ratio is sum(numerator) / nullif(sum(denominator), 0) at this grain, so weeks and months
-- recompute ratios from sums. API ratio fields (GA4 bounceRate, Matomo bounce_rate) are never used.
--   GA4:    bounce = sessions not engaged; conversion = sessions x sessionKeyEventRate (stored as
--           converting_sessions); duration = userEngagementDuration. Rows dated "(other)" are left out.
--   Matomo: sessions = nb_visits (Referrers.getReferrerType); bounce = bounce_count (visits with one
--           action); conversion = nb_visits_converted; duration = sum_visit_length; no engagement rate.
-- Unmapped raw channel values count as `other`. Parameters: $start, $end (inclusive, source-local dates).
WITH ga4 AS (
    SELECT
        t.date,
        'ga4' AS source,
        coalesce(m.channel, 'other') AS channel,
        CAST(sum(t.sessions) AS BIGINT) AS sessions,
        CAST(sum(t.engaged_sessions) AS BIGINT) AS engaged_sessions,
        CAST(sum(t.sessions - t.engaged_sessions) AS BIGINT) AS bounced_sessions,
        CAST(sum(t.converting_sessions) AS BIGINT) AS converting_sessions,
        CAST(sum(t.user_engagement_duration) AS DOUBLE) AS engagement_duration_seconds,
        CAST(sum(t.key_events) AS DOUBLE) AS key_events,
        CAST(sum(t.new_users) AS BIGINT) AS new_users
    FROM ga4.traffic_by_channel AS t
    LEFT JOIN kpi.channel_map AS m
        ON m.source = 'ga4' AND m.raw_value = t.session_default_channel_group
    WHERE t.date BETWEEN $start AND $end
    GROUP BY ALL
),
matomo AS (
    SELECT
        r.date,
        'matomo' AS source,
        coalesce(m.channel, 'other') AS channel,
        CAST(sum(r.nb_visits) AS BIGINT) AS sessions,
        CAST(NULL AS BIGINT) AS engaged_sessions,
        CAST(sum(r.bounce_count) AS BIGINT) AS bounced_sessions,
        CAST(sum(r.nb_visits_converted) AS BIGINT) AS converting_sessions,
        CAST(sum(r.sum_visit_length) AS DOUBLE) AS engagement_duration_seconds,
        CAST(NULL AS DOUBLE) AS key_events,
        CAST(NULL AS BIGINT) AS new_users
    FROM matomo.referrer_types AS r
    LEFT JOIN kpi.channel_map AS m
        ON m.source = 'matomo' AND m.raw_value = r.referrer_type
    WHERE r.date BETWEEN $start AND $end
    GROUP BY ALL
),
unioned AS (
    SELECT * FROM ga4
    UNION ALL BY NAME
    SELECT * FROM matomo
)
SELECT
    date,
    source,
    channel,
    sessions,
    engaged_sessions,
    bounced_sessions,
    converting_sessions,
    engagement_duration_seconds,
    key_events,
    new_users,
    engaged_sessions / nullif(sessions, 0) AS engagement_rate,
    bounced_sessions / nullif(sessions, 0) AS bounce_rate,
    converting_sessions / nullif(sessions, 0) AS conversion_rate,
    engagement_duration_seconds / nullif(sessions, 0) AS avg_session_duration
FROM unioned
