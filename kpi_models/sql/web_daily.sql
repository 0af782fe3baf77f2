-- kpi.web_daily: web analytics KPIs per day, source, account and channel (KPI_CATALOGUE: web analytics).
-- Grain: date x source x account_id x channel. account_id is the GA4 property or the Matomo site: two properties
-- are two rows, never summed into one (rule 9). GA4 and Matomo rows sit side by side (`source`), never blended:
-- their bounce rates mean different things (rule 8). The additive parts are stored beside each ratio, and every
-- ratio is sum(numerator) / nullif(sum(denominator), 0) at this grain, so weeks and months recompute ratios from
-- sums. API ratio fields (GA4 bounceRate, Matomo bounce_rate) are never used.
--   GA4:    bounce = sessions not engaged; conversion = sessions x sessionKeyEventRate (stored as
--           converting_sessions); session duration = sessions x averageSessionDuration (GA4's own definition of
--           a session's length); engagement time = userEngagementDuration (avg_engagement_time, GA4 only).
--           Rows dated "(other)" are left out.
--   Matomo: sessions = nb_visits (Referrers.getReferrerType); bounce = bounce_count (visits with one action);
--           conversion = nb_visits_converted; session duration = sum_visit_length; no engagement rate. The
--           `campaign` referrer type is every tagged URL: where the MarketingCampaignsReporting plugin gave
--           visits by campaign medium (matomo.campaign_mediums), they are split through the channel mapping
--           (matomo_campaign_medium; an unknown medium stays campaign_tagged) and only the rest keeps the
--           campaign type's channel (campaign_tagged).
-- is_final: every input row was loaded at least the source's restatement window (kpi.restatement_window) after
-- its day (rule 11). quality: GA4 answers flagged thresholded, sampled or with rows folded into (other).
-- orders, revenue: GA4 purchases and purchase revenue by session channel, in the property's currency_code (never
-- converted here), for marketing ROI by GA4 session channel; Matomo's are left empty (its campaign mediums carry
-- no revenue): Matomo's e-commerce is kpi.ecommerce_daily's.
-- Sums of fractional values are exact (DECIMAL), so a rebuild gives the same bits whatever order DuckDB's threads
-- add in. Unmapped raw channel values count as `other`. Parameters: $start, $end (source-local dates), $tz.
-- One part per source (`-- @part`), rebuilt on its own: a source whose raw table changed shape fails its part only,
-- and the other source's rows are still rebuilt. `-- @select` computes the ratios over each part (`part`).
-- @part ga4
WITH ga4_quality AS (
    SELECT property_id, date, bool_or(subject_to_thresholding) AS thresholded, bool_or(sampled) AS sampled,
           bool_or(data_loss_from_other_row) AS other_row
    FROM ga4.report_quality
    WHERE report = 'traffic_by_channel' AND date BETWEEN $start AND $end
    GROUP BY ALL
)
SELECT
    t.date,
    'ga4' AS source,
    t.property_id AS account_id,
    coalesce(m.channel, 'other') AS channel,
    CAST(sum(t.sessions) AS BIGINT) AS sessions,
    CAST(sum(t.engaged_sessions) AS BIGINT) AS engaged_sessions,
    CAST(sum(t.sessions - t.engaged_sessions) AS BIGINT) AS bounced_sessions,
    CAST(sum(t.converting_sessions) AS BIGINT) AS converting_sessions,
    CAST(sum(CAST(t.session_duration_seconds AS DECIMAL(38, 9))) AS DOUBLE) AS session_duration_seconds,
    CAST(sum(CAST(t.user_engagement_duration AS DECIMAL(38, 9))) AS DOUBLE) AS engagement_duration_seconds,
    CAST(sum(CAST(t.key_events AS DECIMAL(38, 9))) AS DOUBLE) AS key_events,
    CAST(sum(t.new_users) AS BIGINT) AS new_users,
    CAST(sum(t.ecommerce_purchases) AS BIGINT) AS orders,
    CAST(sum(CAST(t.purchase_revenue AS DECIMAL(38, 9))) AS DOUBLE) AS revenue,
    any_value(t.currency_code) AS currency_code,
    bool_and(date_diff('day', t.date, CAST(timezone($tz, t._loaded_at) AS DATE)) >= w.days) AS is_final,
    list_filter([CASE WHEN bool_or(q.thresholded) THEN 'thresholded' END,
                 CASE WHEN bool_or(q.sampled) THEN 'sampled' END,
                 CASE WHEN bool_or(q.other_row OR t.is_other) THEN 'other_row' END], x -> x IS NOT NULL)
        AS quality
FROM ga4.traffic_by_channel AS t
JOIN kpi.restatement_window AS w ON w.source = 'ga4'
LEFT JOIN kpi.channel_map AS m
    ON m.source = 'ga4' AND m.raw_value = t.session_default_channel_group
LEFT JOIN ga4_quality AS q ON q.property_id = t.property_id AND q.date = t.date
WHERE t.date BETWEEN $start AND $end
GROUP BY ALL
-- @part matomo
WITH matomo_parts AS (
    -- every referrer type as Matomo reports it ...
    SELECT r.site_id, r.date, coalesce(m.channel, 'other') AS channel, r.nb_visits, r.bounce_count,
           r.nb_visits_converted, r.sum_visit_length, r._loaded_at
    FROM matomo.referrer_types AS r
    LEFT JOIN kpi.channel_map AS m ON m.source = 'matomo' AND m.raw_value = r.referrer_type
    WHERE r.date BETWEEN $start AND $end
    UNION ALL
    -- ... campaign visits by medium, moved to their channel ...
    SELECT c.site_id, c.date, coalesce(m.channel, 'campaign_tagged'), c.nb_visits, c.bounce_count,
           c.nb_visits_converted, c.sum_visit_length, c._loaded_at
    FROM matomo.campaign_mediums AS c
    LEFT JOIN kpi.channel_map AS m ON m.source = 'matomo_campaign_medium' AND m.raw_value = lower(c.campaign_medium)
    WHERE c.date BETWEEN $start AND $end
    UNION ALL
    -- ... and taken out of the campaign type's channel, which keeps only the visits no medium accounts for.
    SELECT c.site_id, c.date, coalesce(m.channel, 'other'), -c.nb_visits, -c.bounce_count, -c.nb_visits_converted,
           -c.sum_visit_length, c._loaded_at
    FROM matomo.campaign_mediums AS c
    LEFT JOIN kpi.channel_map AS m ON m.source = 'matomo' AND m.raw_value = 'campaign'
    WHERE c.date BETWEEN $start AND $end
)
SELECT
    p.date,
    'matomo' AS source,
    p.site_id AS account_id,
    p.channel,
    CAST(sum(p.nb_visits) AS BIGINT) AS sessions,
    CAST(NULL AS BIGINT) AS engaged_sessions,
    CAST(sum(p.bounce_count) AS BIGINT) AS bounced_sessions,
    CAST(sum(p.nb_visits_converted) AS BIGINT) AS converting_sessions,
    CAST(sum(p.sum_visit_length) AS DOUBLE) AS session_duration_seconds,
    CAST(NULL AS DOUBLE) AS engagement_duration_seconds,
    CAST(NULL AS DOUBLE) AS key_events,
    CAST(NULL AS BIGINT) AS new_users,
    CAST(NULL AS BIGINT) AS orders,
    CAST(NULL AS DOUBLE) AS revenue,
    CAST(NULL AS VARCHAR) AS currency_code,
    bool_and(date_diff('day', p.date, CAST(timezone($tz, p._loaded_at) AS DATE)) >= w.days) AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM matomo_parts AS p
JOIN kpi.restatement_window AS w ON w.source = 'matomo'
GROUP BY ALL
HAVING sum(p.nb_visits) <> 0  -- a channel whose visits were all moved out by the medium split
-- @select
SELECT
    date,
    source,
    account_id,
    channel,
    sessions,
    engaged_sessions,
    bounced_sessions,
    converting_sessions,
    session_duration_seconds,
    engagement_duration_seconds,
    key_events,
    new_users,
    orders,
    revenue,
    currency_code,
    engaged_sessions / nullif(sessions, 0) AS engagement_rate,
    bounced_sessions / nullif(sessions, 0) AS bounce_rate,
    converting_sessions / nullif(sessions, 0) AS conversion_rate,
    session_duration_seconds / nullif(sessions, 0) AS avg_session_duration,
    engagement_duration_seconds / nullif(sessions, 0) AS avg_engagement_time,
    is_final,
    -- a rate outside [0, 1] (a part counted twice at the source) is flagged on its row, never a failed run
    CASE WHEN NOT (coalesce(engaged_sessions / nullif(sessions, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(bounced_sessions / nullif(sessions, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(converting_sessions / nullif(sessions, 0), 0) BETWEEN 0 AND 1)
         THEN list_append(quality, 'out_of_range') ELSE quality END AS quality
FROM part
