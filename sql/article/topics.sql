-- The topics of one article, best first. Parameters: $1 article_id.
select topic_code, topic, score, evidence, tagger
from article_topics where article_id = $1
order by score desc
