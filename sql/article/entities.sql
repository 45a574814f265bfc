-- The entities tagged in one article, most salient first, with the entity each one is across
-- articles. Parameters: $1 article_id.
select e.entity, e.label, e.mentions, e.salience, e.in_title, e.first_offset, e.tagger,
       e.entity_id, n.name as across_articles
from article_entities e left join entities n using (entity_id)
where e.article_id = $1
order by e.salience desc, e.entity
