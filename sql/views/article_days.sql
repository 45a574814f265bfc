-- utc_day(ts): the UTC date of a timestamp with time zone, in any session time zone. Integer
-- arithmetic on its epoch (floor division by a day's microseconds): the same day as
-- cast(timezone('UTC', ts) as date), a quarter of its time over millions of rows (0.09 s
-- against 0.31 s for 3M articles).
create or replace macro utc_day(ts) as
date '1970-01-01' + cast((epoch_us(ts) - ((epoch_us(ts) % 86400000000) + 86400000000)
                          % 86400000000) // 86400000000 as integer);

-- One row per article with its day: the UTC date of its publication, else of its first sight.
-- This is the one definition of an article's day; every view, named query, the report and the
-- export read it (so an article at 03:00 UTC falls on the same day in every session time zone).
create or replace view article_days as
select article_id, feed_id, story_id, language, extraction_status, word_count,
       published_at, first_seen_at, loaded_at,
       coalesce(published_at, first_seen_at) as seen_at,
       utc_day(coalesce(published_at, first_seen_at)) as day
from articles;

-- articles_between(first_day, last_day): the articles of those UTC days (their day as in
-- article_days), every column of articles with seen_at and day. Read as two ranges, each on a
-- stored column (published_at; first_seen_at of the articles without one), so that the reader
-- skips the data files and row groups outside the period: a week's articles read a week's
-- rows, where a filter on article_days.day (an expression) reads every row.
create or replace macro articles_between(first_day, last_day) as table
select *, coalesce(published_at, first_seen_at) as seen_at,
       utc_day(coalesce(published_at, first_seen_at)) as day
from articles
where published_at >= timezone('UTC', cast(first_day as date)::timestamp)
  and published_at < timezone('UTC', (cast(last_day as date) + 1)::timestamp)
union all
select *, first_seen_at as seen_at, utc_day(first_seen_at) as day
from articles
where published_at is null
  and first_seen_at >= timezone('UTC', cast(first_day as date)::timestamp)
  and first_seen_at < timezone('UTC', (cast(last_day as date) + 1)::timestamp);
