-- The entities named in the most articles of the period (the report's fallback when there is
-- too little history for trends). Parameters: $start, $end, $top.
select n.name as entity, n.label, count(distinct e.article_id) as articles,
       sum(e.mentions) as mentions
from article_entities e join article_days a using (article_id)
join entities n using (entity_id)
where a.day between $start and $end
group by e.entity_id, n.name, n.label
order by articles desc, mentions desc, entity
limit $top
