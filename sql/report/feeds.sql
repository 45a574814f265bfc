-- Each feed's health as of $as_of (feed_health_at, sql/views/feed_health.sql).
-- Parameters: $as_of, $failing_after, $silence_hours.
select feed, status, last_polled_at, last_outcome, last_status, last_error,
       consecutive_failures, items_total, hours_since_new_item, hours_since_poll
from feed_health_at($as_of, $failing_after, $silence_hours)
