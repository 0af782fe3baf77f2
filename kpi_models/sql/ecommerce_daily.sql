-- kpi.ecommerce_daily: e-commerce KPIs per day, source, account and currency (KPI_CATALOGUE: e-commerce).
-- Grain: date x source x account_id x channel ('all': the sources report e-commerce site-wide) x currency_code
-- (amounts in different currencies are never added, rule 5). Parts are stored beside each ratio.
-- Built from the SESSIONS side (rule 10): GA4 leaves out the e-commerce row of a day whose e-commerce metrics are
-- all zero (no keepEmptyRows), so a day with sessions and no e-commerce event is a day with 0 orders, and its
-- sessions stay in the conversion rate's denominator.
--   GA4:    orders = ecommercePurchases, revenue = purchaseRevenue (ga4.ecommerce_by_date); sessions from
--           ga4.traffic_by_channel; cart abandonment from the closed funnel add_to_cart -> purchase by day
--           (ga4.cart_funnel_daily, runFunnelReport): abandoned_carts = users at add_to_cart who did not then
--           purchase, carts = users at add_to_cart (user-days: a roll-up adds days); add_to_cart_events is GA4's
--           addToCarts event count, kept for reference only (comparing events with purchases goes negative on
--           "buy now" days).
--   Matomo: orders and revenue from Goals.get idGoal=ecommerceOrder; cart abandonment = abandoned carts /
--           (abandoned carts + visits with an order); conversion = orders / visits (VisitsSummary.get).
-- The two sources define cart abandonment differently: never compare them as one.
-- is_final: every input row loaded at least the source's restatement window after its day (rule 11).
-- Parameters: $start, $end, $tz. One part per source (`-- @part`), each rebuilt on its own; `-- @select` computes
-- the ratios over a part.
-- @part ga4
WITH ga4_sessions AS (
    SELECT property_id, date, any_value(currency_code) AS currency_code, sum(sessions) AS sessions,
           min(_loaded_at) AS loaded_at
    FROM ga4.traffic_by_channel
    WHERE date BETWEEN $start AND $end
    GROUP BY ALL
),
ga4_quality AS (
    SELECT property_id, date, bool_or(subject_to_thresholding) AS thresholded, bool_or(sampled) AS sampled
    FROM ga4.report_quality
    WHERE report IN ('traffic_by_channel', 'ecommerce_by_date') AND date BETWEEN $start AND $end
    GROUP BY ALL
)
SELECT
    s.date,
    'ga4' AS source,
    s.property_id AS account_id,
    coalesce(e.currency_code, s.currency_code, '?') AS currency_code,
    CAST(coalesce(e.ecommerce_purchases, 0) AS BIGINT) AS orders,
    CAST(coalesce(e.purchase_revenue, 0) AS DOUBLE) AS revenue,
    CAST(coalesce(f.cart_users, 0) - coalesce(f.purchased_after_cart_users, 0) AS BIGINT) AS abandoned_carts,
    CAST(coalesce(f.cart_users, 0) AS BIGINT) AS carts,
    CAST(coalesce(e.add_to_carts, 0) AS BIGINT) AS add_to_cart_events,
    CAST(s.sessions AS BIGINT) AS sessions,
    date_diff('day', s.date, CAST(timezone($tz, least(s.loaded_at, coalesce(e._loaded_at, s.loaded_at),
                                                      coalesce(f._loaded_at, s.loaded_at))) AS DATE))
        >= w.days AS is_final,
    list_filter([CASE WHEN q.thresholded THEN 'thresholded' END, CASE WHEN q.sampled THEN 'sampled' END],
                x -> x IS NOT NULL) AS quality
FROM ga4_sessions AS s
JOIN kpi.restatement_window AS w ON w.source = 'ga4'
LEFT JOIN ga4.ecommerce_by_date AS e ON e.property_id = s.property_id AND e.date = s.date
LEFT JOIN ga4.cart_funnel_daily AS f ON f.property_id = s.property_id AND f.date = s.date
LEFT JOIN ga4_quality AS q ON q.property_id = s.property_id AND q.date = s.date
-- @part matomo
SELECT
    v.date,
    'matomo' AS source,
    v.site_id AS account_id,
    coalesce(o.currency_code, v.currency_code, '?') AS currency_code,
    CAST(coalesce(o.nb_conversions, 0) AS BIGINT) AS orders,
    CAST(coalesce(o.revenue, 0) AS DOUBLE) AS revenue,
    CAST(coalesce(a.nb_conversions, 0) AS BIGINT) AS abandoned_carts,
    CAST(coalesce(a.nb_conversions, 0) + coalesce(o.nb_visits_converted, 0) AS BIGINT) AS carts,
    CAST(NULL AS BIGINT) AS add_to_cart_events,
    CAST(v.nb_visits AS BIGINT) AS sessions,
    date_diff('day', v.date, CAST(timezone($tz, least(v._loaded_at, coalesce(o._loaded_at, v._loaded_at),
                                                      coalesce(a._loaded_at, v._loaded_at))) AS DATE))
        >= w.days AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM matomo.visits_summary AS v
JOIN kpi.restatement_window AS w ON w.source = 'matomo'
LEFT JOIN matomo.goals AS o ON o.site_id = v.site_id AND o.date = v.date AND o.goal = 'ecommerceOrder'
LEFT JOIN matomo.goals AS a ON a.site_id = v.site_id AND a.date = v.date AND a.goal = 'ecommerceAbandonedCart'
WHERE v.date BETWEEN $start AND $end
-- @select
SELECT
    date,
    source,
    account_id,
    'all' AS channel,
    currency_code,
    orders,
    revenue,
    abandoned_carts,
    carts,
    add_to_cart_events,
    sessions,
    revenue / nullif(orders, 0) AS average_basket,
    abandoned_carts / nullif(carts, 0) AS cart_abandonment_rate,
    orders / nullif(sessions, 0) AS ecommerce_conversion_rate,
    is_final,
    -- a rate outside [0, 1] is flagged on its row, never a failed run
    CASE WHEN NOT (coalesce(abandoned_carts / nullif(carts, 0), 0) BETWEEN 0 AND 1
                   AND coalesce(orders / nullif(sessions, 0), 0) BETWEEN 0 AND 1)
         THEN list_append(quality, 'out_of_range') ELSE quality END AS quality
FROM part
