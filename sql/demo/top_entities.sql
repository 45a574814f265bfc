select entity, label, count(*) as articles from article_entities
group by all order by articles desc, entity limit 12
