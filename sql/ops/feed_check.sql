-- Every active feed with its health (feed_health_at, sql/views/feed_health.sql), those that need
-- attention first (dead, failing, never worked, silent), then by name: what the feed_health task
-- of news_maintenance and `newsflow maintain` print and judge. Parameters: $as_of,
-- $failing_after, $silence_hours.
select feed, url, status, needs_attention, silent, last_outcome, last_status, last_error,
       consecutive_failures, polls_total, items_total, last_success_at, last_new_item_at
from feed_health_at($as_of, $failing_after, $silence_hours)
where active
order by needs_attention desc,
         case status when 'dead' then 0 when 'failing' then 1 when 'never_worked' then 2
                     when 'silent' then 3 else 4 end,
         consecutive_failures desc, feed, url
