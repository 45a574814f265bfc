-- How each tagger did on one article. Parameters: $1 article_id.
select kind, tagger, status, reason, items, tagged_at
from article_tagging where article_id = $1
order by kind
