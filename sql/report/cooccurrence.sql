-- The pairs among the $top entities with the most co-occurrences in the period
-- (entity_pairs_between), and how many pairs the period has in all.
-- Parameters: $start, $end, $top.
with pairs as (
    select entity_id_a, entity_a, entity_id_b, entity_b, articles
    from entity_pairs_between($start, $end)
),
nodes as (
    select entity_id, sum(articles) as weight
    from (select entity_id_a as entity_id, entity_a as entity, articles from pairs
          union all select entity_id_b, entity_b, articles from pairs)
    group by entity_id, entity
    order by weight desc, entity
    limit $top
)
select p.entity_a, p.entity_b, p.articles, (select count(*) from pairs) as all_pairs
from pairs p
where p.entity_id_a in (select entity_id from nodes)
  and p.entity_id_b in (select entity_id from nodes)
order by p.articles desc, p.entity_a, p.entity_b
