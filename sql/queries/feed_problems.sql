-- Which feeds need attention: dead, failing, never worked, silent, erroring or never polled,
-- worst first, with the last error. No parameters.
select feed, status, consecutive_failures, last_outcome, last_error, last_polled_at,
       last_new_item_at, hours_since_new_item, polls_7d, failures_7d, url
from feed_health
where status <> 'ok'
order by case status when 'dead' then 0 when 'failing' then 1 when 'never_worked' then 2
                     when 'silent' then 3 when 'erroring' then 4 else 5 end,
         consecutive_failures desc, feed;
