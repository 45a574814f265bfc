-- The publisher's categories of one article, mapped to IPTC where a rule matched.
-- Parameters: $1 article_id.
select category, topic_code, topic
from article_categories where article_id = $1
order by category
