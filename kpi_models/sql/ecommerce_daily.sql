-- kpi.ecommerce_daily: e-commerce KPIs per day, source and currency (KPI_CATALOGUE: e-commerce).
-- Grain: date x source x channel ('all': the sources report e-commerce site-wide) x currency_code (amounts
-- in different currencies are never added, rule 5). Parts are stored beside each ratio.
--   GA4:    orders = ecommercePurchases, revenue = purchaseRevenue; cart abandonment =
--           (addToCarts - ecommercePurchases) / addToCarts; conversion = orders / sessions.
--   Matomo: orders and revenue from Goals.get idGoal=ecommerceOrder; cart abandonment = abandoned carts /
--           (abandoned carts + visits with an order); conversion = orders / visits (VisitsSummary.get).
-- Parameters: $start, $end.
WITH ga4_sessions AS (
    SELECT property_id, date, sum(sessions) AS sessions
    FROM ga4.traffic_by_channel
    WHERE date BETWEEN $start AND $end
    GROUP BY ALL
),
ga4 AS (
    SELECT
        e.date,
        'ga4' AS source,
        coalesce(e.currency_code, '?') AS currency_code,
        CAST(sum(e.ecommerce_purchases) AS BIGINT) AS orders,
        CAST(sum(e.purchase_revenue) AS DOUBLE) AS revenue,
        CAST(sum(e.add_to_carts - e.ecommerce_purchases) AS BIGINT) AS abandoned_carts,
        CAST(sum(e.add_to_carts) AS BIGINT) AS carts,
        CAST(sum(s.sessions) AS BIGINT) AS sessions
    FROM ga4.ecommerce_by_date AS e
    LEFT JOIN ga4_sessions AS s ON s.property_id = e.property_id AND s.date = e.date
    WHERE e.date BETWEEN $start AND $end
    GROUP BY ALL
),
matomo AS (
    SELECT
        o.date,
        'matomo' AS source,
        coalesce(o.currency_code, '?') AS currency_code,
        CAST(sum(o.nb_conversions) AS BIGINT) AS orders,
        CAST(sum(o.revenue) AS DOUBLE) AS revenue,
        CAST(sum(coalesce(a.nb_conversions, 0)) AS BIGINT) AS abandoned_carts,
        CAST(sum(coalesce(a.nb_conversions, 0) + o.nb_visits_converted) AS BIGINT) AS carts,
        CAST(sum(v.nb_visits) AS BIGINT) AS sessions
    FROM matomo.goals AS o
    LEFT JOIN matomo.goals AS a
        ON a.site_id = o.site_id AND a.date = o.date AND a.goal = 'ecommerceAbandonedCart'
    LEFT JOIN matomo.visits_summary AS v ON v.site_id = o.site_id AND v.date = o.date
    WHERE o.goal = 'ecommerceOrder' AND o.date BETWEEN $start AND $end
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
    'all' AS channel,
    currency_code,
    orders,
    revenue,
    abandoned_carts,
    carts,
    sessions,
    revenue / nullif(orders, 0) AS average_basket,
    abandoned_carts / nullif(carts, 0) AS cart_abandonment_rate,
    orders / nullif(sessions, 0) AS ecommerce_conversion_rate
FROM unioned
