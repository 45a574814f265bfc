-- Per feed: how much it brought, in which languages, how often its pages could be extracted,
-- and how long after publication its articles were loaded (median, minutes).
create or replace view source_coverage as
select f.feed_id, coalesce(f.title, f.url) as feed, f.url,
       mode(a.site_name) as site,
       count(a.article_id) as articles,
       list_sort(list_distinct(list(a.language) filter (where a.language is not null)))
           as languages,
       round(avg(case when a.extraction_status = 'ok' then 1.0 else 0.0 end), 3)
           as extraction_success_rate,
       round(median(epoch(a.loaded_at - a.published_at) / 60.0)
             filter (where a.published_at is not null and a.loaded_at >= a.published_at), 1)
           as median_delay_minutes,
       min(a.first_seen_at) as first_article_at,
       max(a.first_seen_at) as last_article_at
from feeds f left join articles a using (feed_id)
group by all;
