-- Per feed: its polling state and the last 7 days of polls, and a status. The one definition of
-- feed health: the macro feed_health_at(as_of, failing_after, silence_hours) is read by this
-- view (now, with the thresholds of the settings table, which every run writes from
-- NEWSFLOW_FEED_FAILING_AFTER and NEWSFLOW_FEED_SILENCE_HOURS), by the report, by
-- `newsflow maintain` and by the news_maintenance DAG. status, worst first:
--   removed (no longer in the feed list), never_polled, dead (the last poll was a permanent
--   error: HTTP 404 or 410, not a feed at all, a blocked or invalid address), failing
--   (failing_after or more failed polls in a row), erroring (the last poll failed),
--   never_worked (polled failing_after times or more and never brought an item), silent (used
--   to bring items, nothing new for silence_hours), ok.
-- silent is also a column of its own: a failing feed can be silent too. needs_attention is true
-- for dead, failing, never_worked and silent feeds: what the health check fails on.
create or replace macro feed_health_at(as_of, failing_after, silence_hours) as table
with polled as (
    select feed_id, count(*) as polls_total from feed_polls group by feed_id
),
recent as (
    select feed_id, count(*) as polls_7d,
           count(*) filter (where outcome not in ('ok', 'not_modified')) as failures_7d,
           sum(items_new) as items_new_7d,
           round(median(duration_ms)) as median_poll_ms
    from feed_polls
    where polled_at >= cast(as_of as timestamptz) - interval 7 day
    group by feed_id
),
judged as (
    select f.*, coalesce(p.polls_total, 0) as polls_total,
           f.last_outcome in ('parse_error', 'blocked', 'invalid_url')
               or (f.last_outcome = 'http_error' and f.last_status in (404, 410)) as is_dead,
           f.active and f.items_total > 0
               and coalesce(f.last_new_item_at, f.added_at)
                   < cast(as_of as timestamptz) - to_seconds(cast(silence_hours as double) * 3600)
               as is_silent
    from feeds f left join polled p using (feed_id)
),
health as (
    select f.feed_id, coalesce(f.title, f.url) as feed, f.url, f.active,
           f.last_polled_at, f.last_outcome, f.last_status, f.last_error, f.consecutive_failures,
           f.polls_total, coalesce(r.polls_7d, 0) as polls_7d, coalesce(r.failures_7d, 0) as failures_7d,
           round(1 - coalesce(r.failures_7d, 0) / nullif(r.polls_7d, 0), 3) as success_rate_7d,
           coalesce(r.items_new_7d, 0) as items_new_7d, r.median_poll_ms,
           f.items_total, f.last_success_at, f.last_new_item_at,
           round(epoch(cast(as_of as timestamptz) - f.last_new_item_at) / 3600.0, 1)
               as hours_since_new_item,
           round(epoch(cast(as_of as timestamptz) - f.last_polled_at) / 3600.0, 1)
               as hours_since_poll,
           f.next_poll_at,
           case when not f.active then 'removed'
                when f.last_polled_at is null then 'never_polled'
                when f.is_dead then 'dead'
                when f.consecutive_failures >= failing_after then 'failing'
                when f.last_outcome not in ('ok', 'not_modified') then 'erroring'
                when f.items_total = 0 and f.polls_total >= failing_after then 'never_worked'
                when f.is_silent then 'silent'
                else 'ok' end as status,
           f.is_silent as silent
    from judged f left join recent r using (feed_id)
)
select *, active and (silent or status in ('dead', 'failing', 'never_worked')) as needs_attention
from health;

create or replace view feed_health as
select * from feed_health_at(
    now(),
    (select coalesce(max(value) filter (where name = 'feed_failing_after'), 3) from settings),
    (select coalesce(max(value) filter (where name = 'feed_silence_hours'), 48) from settings)
);
