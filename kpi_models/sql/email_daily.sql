-- kpi.email_daily: e-mail KPIs by send date, per marketing e-mail and per day (KPI_CATALOGUE: e-mail).
-- Grain: date x source x email_id, where email_id = 'all' is the day's total over every e-mail sent that
-- day (filter email_id = 'all' for totals; never add the two kinds of rows together). Counters are
-- HubSpot's statistics (`open` and `click` are unique recipients); HubSpot's own ratios (percentages) are
-- never reused. Open rates are inflated by Apple Mail Privacy Protection: click rate is the safer objective.
-- Dates are the e-mail's send date (UTC). Full rebuild.
WITH per_email AS (
    SELECT
        send_date AS date,
        'hubspot' AS source,
        'email' AS channel,
        email_id,
        any_value(name) AS email_name,
        CAST(sum(sent) AS BIGINT) AS sent,
        CAST(sum(delivered) AS BIGINT) AS delivered,
        CAST(sum("open") AS BIGINT) AS opened,
        CAST(sum(click) AS BIGINT) AS clicked,
        CAST(sum(bounce) AS BIGINT) AS bounced,
        CAST(sum(unsubscribed) AS BIGINT) AS unsubscribed,
        CAST(sum(spamreport) AS BIGINT) AS spam_reports
    FROM hubspot.email_statistics
    WHERE send_date IS NOT NULL
    GROUP BY send_date, email_id
),
per_day AS (
    SELECT date, source, channel, 'all' AS email_id, CAST(NULL AS VARCHAR) AS email_name,
           CAST(sum(sent) AS BIGINT) AS sent, CAST(sum(delivered) AS BIGINT) AS delivered,
           CAST(sum(opened) AS BIGINT) AS opened, CAST(sum(clicked) AS BIGINT) AS clicked,
           CAST(sum(bounced) AS BIGINT) AS bounced, CAST(sum(unsubscribed) AS BIGINT) AS unsubscribed,
           CAST(sum(spam_reports) AS BIGINT) AS spam_reports
    FROM per_email
    GROUP BY date, source, channel
),
unioned AS (
    SELECT * FROM per_email
    UNION ALL BY NAME
    SELECT * FROM per_day
)
SELECT
    *,
    delivered / nullif(sent, 0) AS email_deliverability_rate,
    opened / nullif(delivered, 0) AS email_open_rate,
    clicked / nullif(delivered, 0) AS email_click_rate,
    clicked / nullif(opened, 0) AS email_click_to_open_rate,
    bounced / nullif(sent, 0) AS email_bounce_rate,
    unsubscribed / nullif(delivered, 0) AS email_unsubscribe_rate
FROM unioned
