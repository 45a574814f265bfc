-- One row per article with its day: the UTC date of its publication, else of its first sight.
-- This is the one definition of an article's day; every view, named query, the report and the
-- export read it (so an article at 03:00 UTC falls on the same day in every session time zone).
create or replace view article_days as
select article_id, feed_id, story_id, language, extraction_status, word_count,
       published_at, first_seen_at, loaded_at,
       coalesce(published_at, first_seen_at) as seen_at,
       cast(timezone('UTC', coalesce(published_at, first_seen_at)) as date) as day
from articles;
