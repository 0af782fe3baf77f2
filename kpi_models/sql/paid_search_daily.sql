-- kpi.paid_search_daily: paid search KPIs per day, customer and campaign (KPI_CATALOGUE: paid search).
-- Grain: date x customer x campaign, currency kept on every row: amounts in different currencies are never
-- added here (rule 5), and no cross-currency total is produced. Cost is cost_micros / 1e6. The additive
-- parts are stored beside each ratio, and every ratio is a ratio of sums; Google Ads' own ctr, average_cpc
-- and cost_per_conversion are never used. Dates are in each account's time zone. Parameters: $start, $end.
SELECT
    a.date,
    'google_ads' AS source,
    coalesce(m.channel, 'other') AS channel,
    a.customer_id,
    a.campaign_id,
    any_value(a.campaign_name) AS campaign_name,
    any_value(a.advertising_channel_type) AS advertising_channel_type,
    a.currency_code,
    CAST(sum(a.cost_micros) AS BIGINT) AS cost_micros,
    CAST(sum(a.cost_micros) AS DOUBLE) / 1e6 AS ad_cost,
    CAST(sum(a.clicks) AS BIGINT) AS ad_clicks,
    CAST(sum(a.impressions) AS BIGINT) AS ad_impressions,
    CAST(sum(a.conversions) AS DOUBLE) AS ad_conversions,
    CAST(sum(a.conversions_value) AS DOUBLE) AS conversions_value,
    sum(a.clicks) / nullif(sum(a.impressions), 0) AS ad_ctr,
    (sum(a.cost_micros) / 1e6) / nullif(sum(a.clicks), 0) AS ad_cpc,
    (sum(a.cost_micros) / 1e6) / nullif(sum(a.conversions), 0) AS ad_cpa,
    sum(a.conversions_value) / nullif(sum(a.cost_micros) / 1e6, 0) AS ad_roas,
    sum(a.conversions) / nullif(sum(a.clicks), 0) AS ad_conversion_rate
FROM google_ads.campaign_daily AS a
LEFT JOIN kpi.channel_map AS m
    ON m.source = 'google_ads' AND m.raw_value = a.advertising_channel_type
WHERE a.date BETWEEN $start AND $end
GROUP BY a.date, channel, a.customer_id, a.campaign_id, a.currency_code
