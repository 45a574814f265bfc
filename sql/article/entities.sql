-- The entities tagged in one article, most salient first. Parameters: $1 article_id.
select entity, label, mentions, salience, in_title, first_offset, tagger
from article_entities where article_id = $1
order by salience desc, entity
