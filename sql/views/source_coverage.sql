-- Per feed: how much it brought, in which languages, how often its pages could be extracted,
-- and how long after publication its articles were loaded (median, minutes).
--
-- source_coverage_between(first_day, last_day): over the articles of those UTC days (an
-- article's day as in article_days; read by articles_between, which reads those days' rows
-- only); every feed is a row, one without articles in the period too.
create or replace macro source_coverage_between(first_day, last_day) as table
with per_feed as (
    select feed_id,
           mode(site_name order by site_name) as site,  -- ties: the first by name
           count(*) as articles,
           list(distinct language order by language) filter (where language is not null)
               as languages,
           round(avg(case when extraction_status = 'ok' then 1.0 else 0.0 end), 3)
               as extraction_success_rate,
           round(median(epoch(loaded_at - published_at) / 60.0)
                 filter (where published_at is not null and loaded_at >= published_at), 1)
               as median_delay_minutes,
           min(first_seen_at) as first_article_at,
           max(first_seen_at) as last_article_at
    from articles_between(first_day, last_day) group by feed_id
)
select f.feed_id, coalesce(f.title, f.url) as feed, f.url, p.site,
       coalesce(p.articles, 0) as articles,
       coalesce(p.languages, []::varchar[]) as languages,
       p.extraction_success_rate, p.median_delay_minutes,
       p.first_article_at, p.last_article_at
from feeds f left join per_feed p using (feed_id);

-- source_coverage: every feed of the feed list, with its whole history's figures as of the last
-- rebuild of the derived tables (as_of; sql/derived/source_coverage_all.sql): after each load
-- while the store holds at most NEWSFLOW_SEARCH_REBUILD_MAX_ARTICLES, by the daily maintenance
-- beyond. For figures up to the last load, ask source_coverage_between for the days you need.
create or replace view source_coverage as
select f.feed_id, coalesce(f.title, f.url) as feed, f.url, s.site,
       coalesce(s.articles, 0) as articles, coalesce(s.languages, []::varchar[]) as languages,
       s.extraction_success_rate, s.median_delay_minutes, s.first_article_at,
       s.last_article_at, (select max(as_of) from source_coverage_all) as as_of
from feeds f left join source_coverage_all s using (feed_id);
