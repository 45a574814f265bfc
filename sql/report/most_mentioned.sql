-- The entities named in the most articles of the period (the report's fallback when there is
-- too little history for trends). Parameters: $start, $end, $top.
select e.entity, mode(e.label) as label, count(distinct e.article_id) as articles,
       sum(e.mentions) as mentions
from article_entities e join article_days a using (article_id)
where a.day between $start and $end
group by e.entity
order by articles desc, mentions desc, e.entity
limit $top
