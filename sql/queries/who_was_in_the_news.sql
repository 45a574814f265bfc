-- Who was in the news: the entities named in the most articles since a date, with how many
-- outlets named them and the entity most often named beside them.
-- Parameters: $since (date, e.g. 2026-02-10), $label (PERSON, ORG, GPE, ... or 'any').
-- One entity across its spellings and short forms (entity_id, table entities). The entity rows
-- of the period are read once (named: every entity of those articles; hits: those of $label).
with named as (
    select e.entity_id, e.article_id, a.feed_id, e.salience
    from article_entities e
    join articles_between(cast($since as date), 'infinity'::date) a using (article_id)
    where e.day >= cast($since as date)  -- the article's day: only the period's rows are read
),
hits as (
    select h.* from named h join entities n using (entity_id)
    where $label = 'any' or n.label = $label
),
top as (
    select h.entity_id, n.name as entity, n.label, count(distinct h.article_id) as articles,
           count(distinct h.feed_id) as outlets, round(avg(h.salience), 3) as avg_salience
    from hits h join entities n using (entity_id) group by all
    order by articles desc, outlets desc, entity limit 25
),
-- the entities named beside each of the top 25, in how many of its articles (each article's
-- entities once), and the most frequent of them (ties: the first by name; only the tied
-- candidates are sorted, not every pair)
pairs as (
    select distinct article_id, entity_id from named
),
beside as (
    select t.entity_id, o.entity_id as other_id, count(*) as together
    from top t
    join (select distinct entity_id, article_id from hits) h using (entity_id)
    join pairs o on o.article_id = h.article_id and o.entity_id <> t.entity_id
    group by t.entity_id, o.entity_id
),
most as (
    select entity_id, max(together) as together from beside group by entity_id
),
best as (
    select b.entity_id, n.name as other, b.together
    from beside b semi join most m using (entity_id, together)
    join entities n on n.entity_id = b.other_id
    qualify row_number() over (partition by b.entity_id order by n.name) = 1
)
select t.entity, t.label, t.articles, t.outlets, t.avg_salience,
       b.other as most_named_with, b.together, t.entity_id
from top t left join best b using (entity_id)
order by t.articles desc, t.outlets desc, t.entity;
