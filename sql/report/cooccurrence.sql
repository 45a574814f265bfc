-- The pairs among the $top entities with the most co-occurrences in the period
-- (entity_pairs_between), and how many pairs the period has in all.
-- Parameters: $start, $end, $top.
with pairs as (
    select entity_a, entity_b, articles from entity_pairs_between($start, $end)
),
nodes as (
    select entity, sum(articles) as weight
    from (select entity_a as entity, articles from pairs
          union all select entity_b, articles from pairs)
    group by entity
    order by weight desc, entity
    limit $top
)
select p.entity_a, p.entity_b, p.articles, (select count(*) from pairs) as all_pairs
from pairs p
where p.entity_a in (select entity from nodes) and p.entity_b in (select entity from nodes)
order by p.articles desc, p.entity_a, p.entity_b
