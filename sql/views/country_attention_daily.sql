-- Per country (ISO 3166-1 alpha-2, see the table countries) and UTC day (see article_days):
-- in how many articles it was a country of focus (article_countries), from how many sources,
-- their summed focus score, and its share of that day's articles with any country.
create or replace view country_attention_daily as
with per_day as (
    select a.day, c.country_code,
           count(distinct c.article_id) as articles,
           count(distinct a.feed_id) as sources,
           sum(c.score) as score
    from article_countries c join article_days a using (article_id)
    group by all
),
day_total as (
    select a.day, count(distinct c.article_id) as located
    from article_countries c join article_days a using (article_id)
    group by all
)
select p.day, p.country_code, n.name as country, p.articles, p.sources,
       round(p.score, 3) as score,
       round(p.articles / t.located, 4) as share
from per_day p join day_total t using (day)
left join countries n using (country_code);
