-- The countries the period's articles are about (article_countries: each article's countries
-- of focus), for the report's map. Parameters: $start, $end.
with located as (
    select c.article_id, c.country_code, c.score
    from article_countries c join article_days a using (article_id)
    where a.day between $start and $end
)
select l.country_code, coalesce(n.name, l.country_code) as country,
       count(distinct l.article_id) as articles,
       round(count(distinct l.article_id) / (select count(distinct article_id) from located), 4)
           as share,
       round(sum(l.score), 3) as score
from located l left join countries n using (country_code)
group by all
order by articles desc, score desc, country
