-- The active feeds that used to bring items and have brought nothing new for $silence_hours
-- (feed_health_at, sql/views/feed_health.sql), failing ones first: what the feed_health task of
-- news_maintenance and `newsflow maintain` report. Parameters: $as_of, $failing_after,
-- $silence_hours.
select feed, url, last_outcome, last_error, consecutive_failures, last_success_at,
       last_new_item_at, items_total, status
from feed_health_at($as_of, $failing_after, $silence_hours)
where active and silent
order by consecutive_failures desc, last_new_item_at nulls first, url
