-- kpi.crm_monthly: CRM and retention KPIs per month (KPI_CATALOGUE: CRM and retention), in the reporting
-- time zone ($tz; HubSpot timestamps are UTC). Archived (deleted) records are left out.
-- Grain: month x source x account_id (the HubSpot portal) x channel. Channel rows (from hs_analytics_source
-- through the channel mapping) carry leads, contacts_created and new_customers; the channel = 'all' row carries those totals plus the
-- native-grain KPIs that have no channel: churn_rate, loyalty_rate, nps (with its response count).
--   churn_rate   = customers lost in the month / customers at the start of the month (a customer acquired
--                  during the month is not in the denominator); "lost" = the churn-date property.
--   loyalty_rate = customers with >= 2 won deals closed in the trailing 12 months / customers with >= 1;
--                  a customer is a contact associated with the won deal (a deal with several contacts counts
--                  once for each of them); won = the stage's pipeline metadata (closed, probability 1.0), never
--                  its label.
--   nps          = (promoters 9-10 - detractors 0-6) / responses x 100.
-- As-of: nothing after $as_of (yesterday in the reporting time zone) is counted, as in every KPI table: a contact
-- created today, a lead or customer date, a churn date, a won deal or an NPS answer of today waits for tomorrow's
-- run. The current month is therefore month-to-date up to $as_of, and is_final is true only for complete months
-- (the month's last day <= $as_of); flow ratios (churn) are judged on complete months only.
-- HubSpot types its properties by the portal's own definitions: a property re-typed as text in the portal arrives as
-- VARCHAR. Every such value is cast explicitly (TRY_CAST) where it is used, so a value that does not cast is a
-- NULL (counted and named by the check hubspot_values_cast), never a failed query.
-- Full rebuild (months are small). Parameters: $tz, $as_of.
WITH portal AS (
    SELECT coalesce(max(portal_id), 'unknown') AS account_id FROM hubspot.account_details
),
dated AS (
    SELECT
        c.id,
        coalesce(m.channel, 'other') AS channel,
        CAST(timezone($tz, TRY_CAST(c.createdate AS TIMESTAMPTZ)) AS DATE) AS created_day,
        CAST(timezone($tz, TRY_CAST(c.hs_lifecyclestage_lead_date AS TIMESTAMPTZ)) AS DATE) AS lead_day,
        CAST(timezone($tz, TRY_CAST(c.hs_lifecyclestage_customer_date AS TIMESTAMPTZ)) AS DATE) AS customer_day,
        TRY_CAST(ch.churn_value AS DATE) AS churn_day
    FROM hubspot.contacts AS c
    LEFT JOIN kpi.channel_map AS m ON m.source = 'hubspot' AND m.raw_value = c.hs_analytics_source
    -- the configured churn-date property (hubspot.churn_date_property), whatever the portal calls it
    LEFT JOIN contact_churn AS ch ON ch.id = c.id
    WHERE NOT coalesce(c.archived, false)
),
contacts AS (
    SELECT id, channel,
           CASE WHEN created_day <= $as_of THEN created_day END AS created_day,
           CASE WHEN lead_day <= $as_of THEN lead_day END AS lead_day,
           CASE WHEN customer_day <= $as_of THEN customer_day END AS customer_day,
           CASE WHEN churn_day <= $as_of THEN churn_day END AS churn_day
    FROM dated
    WHERE created_day <= $as_of
),
bounds AS (
    -- every month from the first contact to the as-of month: customers churn in months nobody was created in
    SELECT min(created_day) AS first_day, CAST($as_of AS DATE) AS last_day
    FROM contacts
),
months AS (
    SELECT CAST(m AS DATE) AS month, CAST(m + INTERVAL 1 MONTH AS DATE) AS next_month
    FROM bounds, range(date_trunc('month', first_day), date_trunc('month', last_day) + INTERVAL 1 DAY,
                       INTERVAL 1 MONTH) AS t(m)
    WHERE first_day IS NOT NULL
),
channels AS (SELECT DISTINCT channel FROM contacts),
by_channel AS (
    SELECT
        mo.month,
        ch.channel,
        count(c.id) FILTER (WHERE c.lead_day >= mo.month AND c.lead_day < mo.next_month) AS leads,
        count(c.id) FILTER (WHERE c.created_day >= mo.month AND c.created_day < mo.next_month) AS contacts_created,
        count(c.id) FILTER (WHERE c.customer_day >= mo.month AND c.customer_day < mo.next_month) AS new_customers
    FROM months AS mo
    CROSS JOIN channels AS ch
    LEFT JOIN contacts AS c ON c.channel = ch.channel
    GROUP BY mo.month, ch.channel
),
retention AS (
    SELECT
        mo.month,
        count(c.id) FILTER (WHERE c.customer_day < mo.month AND (c.churn_day IS NULL OR c.churn_day >= mo.month))
            AS customers_at_start,
        count(c.id) FILTER (WHERE c.customer_day < mo.month AND c.churn_day >= mo.month
                            AND c.churn_day < mo.next_month) AS customers_lost
    FROM months AS mo
    LEFT JOIN contacts AS c ON c.customer_day IS NOT NULL
    GROUP BY mo.month
),
won_deals AS (
    SELECT d.id AS deal_id, a.to_id AS contact_id, CAST(timezone($tz, TRY_CAST(d.closedate AS TIMESTAMPTZ)) AS DATE) AS closed_day
    FROM hubspot.deals AS d
    JOIN hubspot.deal_stages AS s ON s.pipeline_id = d.pipeline AND s.stage_id = d.dealstage AND s.is_won
    JOIN hubspot.deal_associations AS a ON a.deal_id = d.id AND a.to_type = 'contacts'
    WHERE NOT coalesce(d.archived, false) AND TRY_CAST(d.closedate AS TIMESTAMPTZ) IS NOT NULL
      AND CAST(timezone($tz, TRY_CAST(d.closedate AS TIMESTAMPTZ)) AS DATE) <= $as_of
),
loyalty AS (
    SELECT month, count(*) FILTER (WHERE deals >= 1) AS customers_with_won_deal,
           count(*) FILTER (WHERE deals >= 2) AS repeat_customers
    FROM (
        SELECT mo.month, w.contact_id, count(DISTINCT w.deal_id) AS deals
        FROM months AS mo
        JOIN won_deals AS w ON w.closed_day >= CAST(mo.next_month - INTERVAL 12 MONTH AS DATE)
                           AND w.closed_day < mo.next_month
        GROUP BY mo.month, w.contact_id
    )
    GROUP BY month
),
nps AS (
    SELECT
        CAST(date_trunc('month', timezone($tz, TRY_CAST(f.hs_submission_timestamp AS TIMESTAMPTZ))) AS DATE) AS month,
        count(*) AS nps_responses,
        count(*) FILTER (WHERE TRY_CAST(f.hs_value AS DOUBLE) >= 9) AS promoters,
        count(*) FILTER (WHERE TRY_CAST(f.hs_value AS DOUBLE) <= 6) AS detractors
    FROM hubspot.feedback_submissions AS f
    WHERE upper(f.hs_survey_type) = 'NPS' AND TRY_CAST(f.hs_value AS DOUBLE) IS NOT NULL AND NOT coalesce(f.archived, false)
      AND CAST(timezone($tz, TRY_CAST(f.hs_submission_timestamp AS TIMESTAMPTZ)) AS DATE) <= $as_of
    GROUP BY 1
),
totals AS (
    SELECT month, 'all' AS channel, sum(leads) AS leads, sum(contacts_created) AS contacts_created,
           sum(new_customers) AS new_customers
    FROM by_channel
    GROUP BY month
)
SELECT
    b.month,
    'hubspot' AS source,
    p.account_id,
    b.channel,
    CAST(b.leads AS BIGINT) AS leads,
    CAST(b.contacts_created AS BIGINT) AS contacts_created,
    CAST(b.new_customers AS BIGINT) AS new_customers,
    CAST(NULL AS BIGINT) AS customers_at_start,
    CAST(NULL AS BIGINT) AS customers_lost,
    CAST(NULL AS DOUBLE) AS churn_rate,
    CAST(NULL AS BIGINT) AS customers_with_won_deal,
    CAST(NULL AS BIGINT) AS repeat_customers,
    CAST(NULL AS DOUBLE) AS loyalty_rate,
    CAST(NULL AS BIGINT) AS nps_responses,
    CAST(NULL AS BIGINT) AS promoters,
    CAST(NULL AS BIGINT) AS detractors,
    CAST(NULL AS DOUBLE) AS nps,
    CAST(b.month + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE) <= $as_of AS is_final
FROM by_channel AS b
CROSS JOIN portal AS p
UNION ALL
SELECT
    t.month,
    'hubspot' AS source,
    p.account_id,
    'all' AS channel,
    CAST(t.leads AS BIGINT),
    CAST(t.contacts_created AS BIGINT),
    CAST(t.new_customers AS BIGINT),
    CAST(r.customers_at_start AS BIGINT),
    CAST(r.customers_lost AS BIGINT),
    r.customers_lost / nullif(r.customers_at_start, 0),
    CAST(coalesce(l.customers_with_won_deal, 0) AS BIGINT),
    CAST(coalesce(l.repeat_customers, 0) AS BIGINT),
    l.repeat_customers / nullif(l.customers_with_won_deal, 0),
    CAST(coalesce(n.nps_responses, 0) AS BIGINT),
    CAST(coalesce(n.promoters, 0) AS BIGINT),
    CAST(coalesce(n.detractors, 0) AS BIGINT),
    100.0 * (n.promoters - n.detractors) / nullif(n.nps_responses, 0),
    CAST(t.month + INTERVAL 1 MONTH - INTERVAL 1 DAY AS DATE) <= $as_of
FROM totals AS t
CROSS JOIN portal AS p
LEFT JOIN retention AS r USING (month)
LEFT JOIN loyalty AS l USING (month)
LEFT JOIN nps AS n USING (month)
