-- kpi.email_daily: e-mail KPIs by day, per marketing e-mail and per day (KPI_CATALOGUE: e-mail, rule 6).
-- Grain: date x source x account_id (the HubSpot portal) x email_id, where email_id = 'all' is the day's total
-- over every e-mail of that day (filter email_id = 'all' for totals; never add the two kinds of rows together).
-- Counters are HubSpot's statistics (`open` and `click` are unique recipients); HubSpot's own ratios
-- (percentages) are never reused. Open rates are inflated by Apple Mail Privacy Protection: click rate is the
-- safer objective.
-- Dating (rule 6): a batch e-mail is dated by its publish instant (publishDate, else publishedAt: the connector
-- keeps it in published_at, UTC) converted to the reporting time zone $tz: a send at 23:30 UTC is the next day
-- in Paris. An automated e-mail accumulates lifetime counters, so its activity is dated by event day from the
-- statistics histogram (hubspot.email_events_daily), never by its first publication.
-- Days after $as_of (today, still running) are left out. is_final: loaded at least the e-mail re-read window
-- after the day (counters keep moving for weeks). Full rebuild. Parameters: $tz, $as_of.
WITH portal AS (
    SELECT coalesce(max(portal_id), 'unknown') AS account_id FROM hubspot.account_details
),
activity AS (
    SELECT CAST(timezone($tz, s.published_at) AS DATE) AS date, s.email_id, s.name,
           s.sent, s.delivered, s."open", s.click, s.bounce, s.unsubscribed, s.spamreport, s._loaded_at
    FROM hubspot.email_statistics AS s
    WHERE NOT coalesce(s.is_automated, false) AND s.published_at IS NOT NULL
    UNION ALL
    SELECT e.date, e.email_id, s.name, e.sent, e.delivered, e."open", e.click, e.bounce, e.unsubscribed,
           e.spamreport, e._loaded_at
    FROM hubspot.email_events_daily AS e
    LEFT JOIN hubspot.email_statistics AS s USING (email_id)
),
per_email AS (
    SELECT
        a.date,
        'hubspot' AS source,
        p.account_id,
        'email' AS channel,
        a.email_id,
        any_value(a.name) AS email_name,
        CAST(sum(a.sent) AS BIGINT) AS sent,
        CAST(sum(a.delivered) AS BIGINT) AS delivered,
        CAST(sum(a."open") AS BIGINT) AS opened,
        CAST(sum(a.click) AS BIGINT) AS clicked,
        CAST(sum(a.bounce) AS BIGINT) AS bounced,
        CAST(sum(a.unsubscribed) AS BIGINT) AS unsubscribed,
        CAST(sum(a.spamreport) AS BIGINT) AS spam_reports,
        bool_and(date_diff('day', a.date, CAST(timezone($tz, a._loaded_at) AS DATE)) >= w.days) AS is_final
    FROM activity AS a
    CROSS JOIN portal AS p
    JOIN kpi.restatement_window AS w ON w.source = 'hubspot'
    WHERE a.date <= $as_of
    GROUP BY a.date, p.account_id, a.email_id
),
per_day AS (
    SELECT date, source, account_id, channel, 'all' AS email_id, CAST(NULL AS VARCHAR) AS email_name,
           CAST(sum(sent) AS BIGINT) AS sent, CAST(sum(delivered) AS BIGINT) AS delivered,
           CAST(sum(opened) AS BIGINT) AS opened, CAST(sum(clicked) AS BIGINT) AS clicked,
           CAST(sum(bounced) AS BIGINT) AS bounced, CAST(sum(unsubscribed) AS BIGINT) AS unsubscribed,
           CAST(sum(spam_reports) AS BIGINT) AS spam_reports, bool_and(is_final) AS is_final
    FROM per_email
    GROUP BY date, source, account_id, channel
),
unioned AS (
    SELECT * FROM per_email
    UNION ALL BY NAME
    SELECT * FROM per_day
)
SELECT
    date, source, account_id, channel, email_id, email_name, sent, delivered, opened, clicked, bounced,
    unsubscribed, spam_reports,
    delivered / nullif(sent, 0) AS email_deliverability_rate,
    opened / nullif(delivered, 0) AS email_open_rate,
    clicked / nullif(delivered, 0) AS email_click_rate,
    clicked / nullif(opened, 0) AS email_click_to_open_rate,
    bounced / nullif(sent, 0) AS email_bounce_rate,
    unsubscribed / nullif(delivered, 0) AS email_unsubscribe_rate,
    is_final,
    -- a rate outside [0, 1] (more opens than deliveries ...) is flagged on its row, never a failed run
    CASE WHEN NOT (coalesce(delivered / nullif(sent, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(opened / nullif(delivered, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(clicked / nullif(delivered, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(clicked / nullif(opened, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(bounced / nullif(sent, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(unsubscribed / nullif(delivered, 0), 0) BETWEEN 0 AND 1)
         THEN ['out_of_range'] ELSE CAST([] AS VARCHAR[]) END AS quality
FROM unioned
