select n.name as entity, n.label, count(distinct e.article_id) as articles
from article_entities e join entities n using (entity_id)
group by all order by articles desc, entity limit 12
