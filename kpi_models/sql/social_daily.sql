-- kpi.social_daily: social network KPIs per day, network and account (KPI_CATALOGUE: social networks; issue #22).
-- Grain: date x source x account_id, channel 'social'. source is the network (facebook, instagram, linkedin) and
-- account_id its Page, professional account or organization: two accounts are two rows, never summed (rule 9).
-- Read from <source>.account_daily of the social raw-table contract (connectors/raw_tables.py), whose dates are the
-- platform's own days (Meta: end_time's day minus one in the account's time zone; LinkedIn: the UTC day).
--   followers: the level at the end of the day (NULL where the platform gives none): never summed, a week or month
--              takes its last day's value (kpi_models/catalogue.py, aggregation last).
--   follower_growth: follower_gains - follower_losses; a platform that gives only a net figure (LinkedIn) has
--              losses NULL and its gains are already net: growth = gains (its platform guide says so; no quality
--              flag, which every KPI of the row would carry). NULL when the platform gives no gains or no losses
--              for the day (Instagram's follower_count is gross new followers: its gains alone are not growth).
--   social_reach: that day's distinct accounts reached; never summed across days (aggregation distinct).
--   social_engagement_rate = engagements / impressions; social_engagement_rate_per_reach = engagements / reach,
--              daily only (reach does not add up, so this rate has no weekly or monthly value).
-- Every measure stays NULL (never 0) where the platform does not report it: sums over NULL stay NULL.
-- is_final: the row was loaded at least the network's re-read window (kpi.restatement_window) after its day (rule
-- 11); a network without a window row (never configured) is provisional, never a dropped row.
-- One part per network (`-- @part`), rebuilt on its own. Parameters: $start, $end, $tz.
-- @part facebook
SELECT 'facebook' AS source, a.* FROM facebook.account_daily AS a WHERE a.date BETWEEN $start AND $end
-- @part instagram
SELECT 'instagram' AS source, a.* FROM instagram.account_daily AS a WHERE a.date BETWEEN $start AND $end
-- @part linkedin
SELECT 'linkedin' AS source, a.* FROM linkedin.account_daily AS a WHERE a.date BETWEEN $start AND $end
-- @select
SELECT
    p.date,
    p.source,
    p.account_id,
    'social' AS channel,
    p.followers,
    p.follower_gains,
    p.follower_losses,
    -- net growth: gains - losses; LinkedIn's gains are already net (losses NULL by the contract); a network whose
    -- losses are unknown (Instagram: follower_count is new followers only) has no growth, never its gross gains
    CASE WHEN p.source = 'linkedin' THEN p.follower_gains ELSE p.follower_gains - p.follower_losses END
        AS follower_growth,
    p.impressions AS social_impressions,
    p.reach AS social_reach,
    p.engagements AS social_engagements,
    p.shares AS social_shares,
    p.link_clicks AS social_link_clicks,
    p.posts_published,
    p.page_views,
    p.engagements / nullif(p.impressions, 0) AS social_engagement_rate,
    p.engagements / nullif(p.reach, 0) AS social_engagement_rate_per_reach,
    coalesce(date_diff('day', p.date, CAST(timezone($tz, p._loaded_at) AS DATE)) >= w.days, false) AS is_final,
    CAST([] AS VARCHAR[]) AS quality
FROM part AS p
LEFT JOIN kpi.restatement_window AS w ON w.source = p.source
