-- Which feeds need attention: failing, erroring, silent or never polled, worst first, with the
-- last error. No parameters.
select feed, status, consecutive_failures, last_outcome, last_error, last_polled_at,
       last_new_item_at, hours_since_new_item, polls_7d, failures_7d, url
from feed_health
where status <> 'ok'
order by case status when 'failing' then 0 when 'erroring' then 1 when 'silent' then 2 else 3 end,
         consecutive_failures desc, feed;
