-- Who was in the news: the people named in the most articles since a date, with how many
-- outlets named them and the entity most often named beside them.
-- Parameters: $since (date, e.g. 2026-02-10), $label (PERSON, ORG, GPE, ... or 'any')
with hits as (
    select e.entity, e.label, e.article_id, a.feed_id, e.salience
    from article_entities e join articles a using (article_id)
    where coalesce(a.published_at, a.first_seen_at) >= cast($since as date)
      and ($label = 'any' or e.label = $label)
),
top as (
    select entity, label, count(distinct article_id) as articles,
           count(distinct feed_id) as outlets, round(avg(salience), 3) as avg_salience
    from hits group by all
    order by articles desc, outlets desc, entity limit 25
),
beside as (
    select t.entity, t.label, o.entity as other, count(*) as together
    from top t
    join hits h on h.entity = t.entity and h.label = t.label
    join article_entities o on o.article_id = h.article_id
         and not (o.entity = t.entity and o.label = t.label)
    group by t.entity, t.label, o.entity
    qualify row_number() over (partition by t.entity, t.label order by count(*) desc, other) = 1
)
select t.entity, t.label, t.articles, t.outlets, t.avg_salience,
       b.other as most_named_with, b.together
from top t left join beside b using (entity, label)
order by t.articles desc, t.outlets desc, t.entity;
