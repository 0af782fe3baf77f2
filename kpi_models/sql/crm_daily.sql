-- kpi.crm_daily: HubSpot's CRM outcomes per day, account (the portal) and channel (KPI_CATALOGUE: web analytics
-- leads and contacts created, CRM new customers; marketing return). Days are in the reporting time zone ($tz;
-- HubSpot timestamps are UTC); the channel is the contact's original source (hs_analytics_source through
-- kpi.channel_map, unknown -> other); archived records are left out, as in kpi.crm_monthly. Days after $as_of
-- (today, still running) are left out, as in crm_monthly.
--   leads, contacts_created, new_customers: contacts whose lead / create / customer date falls on the day; every
--   channel gets a row (zeros included) on each day something happened, so a day's channels add up.
--   won_deals, won_revenue: deals won on the day (close date; won = the stage's pipeline metadata, never its
--   label), attributed to the original source of the deal's first associated contact (deals without a contact:
--   other); amounts in the portal's company currency (currency_code), never converted here.
-- HubSpot types its properties by the portal's own definitions: values are TRY_CAST where used (a value that does
-- not cast counts as missing, named by the check hubspot_values_cast, never a failed query). A day is final once
-- it is over (HubSpot does not restate lifecycle dates; a later change is read by the next run, which rebuilds the
-- table and HubSpot's rows of kpi_daily whole). Full rebuild. Parameters: $tz, $as_of.
WITH portal AS (
    SELECT coalesce(max(portal_id), 'unknown') AS account_id, max(company_currency) AS currency_code
    FROM hubspot.account_details
),
contacts AS (
    SELECT
        c.id,
        coalesce(m.channel, 'other') AS channel,
        TRY_CAST(c.createdate AS TIMESTAMPTZ) AS created_at,
        CAST(timezone($tz, TRY_CAST(c.createdate AS TIMESTAMPTZ)) AS DATE) AS created_day,
        CAST(timezone($tz, TRY_CAST(c.hs_lifecyclestage_lead_date AS TIMESTAMPTZ)) AS DATE) AS lead_day,
        CAST(timezone($tz, TRY_CAST(c.hs_lifecyclestage_customer_date AS TIMESTAMPTZ)) AS DATE) AS customer_day
    FROM hubspot.contacts AS c
    LEFT JOIN kpi.channel_map AS m ON m.source = 'hubspot' AND m.raw_value = c.hs_analytics_source
    WHERE NOT coalesce(c.archived, false)
),
won AS (
    -- each won deal once, with the channel of its first associated contact
    SELECT
        d.id,
        CAST(timezone($tz, TRY_CAST(d.closedate AS TIMESTAMPTZ)) AS DATE) AS day,
        TRY_CAST(d.amount AS DOUBLE) AS amount,
        coalesce(arg_min(c.channel, (c.created_at, c.id)), 'other') AS channel
    FROM hubspot.deals AS d
    JOIN hubspot.deal_stages AS s ON s.pipeline_id = d.pipeline AND s.stage_id = d.dealstage AND s.is_won
    LEFT JOIN hubspot.deal_associations AS a ON a.deal_id = d.id AND a.to_type = 'contacts'
    LEFT JOIN contacts AS c ON c.id = a.to_id
    WHERE NOT coalesce(d.archived, false) AND TRY_CAST(d.closedate AS TIMESTAMPTZ) IS NOT NULL
    GROUP BY d.id, d.closedate, d.amount
),
events AS (
    SELECT channel, created_day AS day, 'contacts_created' AS what, CAST(NULL AS DOUBLE) AS amount FROM contacts
    UNION ALL
    SELECT channel, lead_day, 'leads', NULL FROM contacts
    UNION ALL
    SELECT channel, customer_day, 'new_customers', NULL FROM contacts
    UNION ALL
    SELECT channel, day, 'won_deals', amount FROM won
),
dated AS (SELECT * FROM events WHERE day <= $as_of),
days AS (SELECT DISTINCT day FROM dated),
channels AS (SELECT DISTINCT channel FROM contacts UNION SELECT DISTINCT channel FROM won)
SELECT
    d.day AS date,
    'hubspot' AS source,
    p.account_id,
    ch.channel,
    count(e.what) FILTER (WHERE e.what = 'leads') AS leads,
    count(e.what) FILTER (WHERE e.what = 'contacts_created') AS contacts_created,
    count(e.what) FILTER (WHERE e.what = 'new_customers') AS new_customers,
    count(e.what) FILTER (WHERE e.what = 'won_deals') AS won_deals,
    CAST(coalesce(sum(CAST(e.amount AS DECIMAL(38, 9))) FILTER (WHERE e.what = 'won_deals'), 0) AS DOUBLE)
        AS won_revenue,
    any_value(p.currency_code) AS currency_code,
    true AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM days AS d
CROSS JOIN channels AS ch
CROSS JOIN portal AS p
LEFT JOIN dated AS e ON e.day = d.day AND e.channel = ch.channel
GROUP BY d.day, p.account_id, ch.channel
