-- Per feed: its polling state and the last 7 days of polls, and a status:
--   never_polled, failing (3 or more failures in a row), silent (used to bring items, nothing
--   new for 48 hours), removed, ok.
create or replace view feed_health as
with recent as (
    select feed_id, count(*) as polls_7d,
           count(*) filter (where outcome not in ('ok', 'not_modified')) as failures_7d,
           sum(items_new) as items_new_7d,
           round(median(duration_ms)) as median_poll_ms
    from feed_polls
    where polled_at >= now() - interval 7 day
    group by feed_id
)
select f.feed_id, coalesce(f.title, f.url) as feed, f.url, f.active,
       f.last_polled_at, f.last_outcome, f.last_error, f.consecutive_failures,
       coalesce(r.polls_7d, 0) as polls_7d, coalesce(r.failures_7d, 0) as failures_7d,
       round(1 - coalesce(r.failures_7d, 0) / nullif(r.polls_7d, 0), 3) as success_rate_7d,
       coalesce(r.items_new_7d, 0) as items_new_7d, r.median_poll_ms,
       f.items_total, f.last_new_item_at,
       round(epoch(now() - f.last_new_item_at) / 3600.0, 1) as hours_since_new_item,
       f.next_poll_at,
       case when not f.active then 'removed'
            when f.last_polled_at is null then 'never_polled'
            when f.consecutive_failures >= 3 then 'failing'
            when f.items_total > 0 and f.last_new_item_at < now() - interval 48 hour
                then 'silent'
            else 'ok' end as status
from feeds f left join recent r using (feed_id);
