-- How coverage of a topic moved: articles per day with the topic and their share of the day's
-- tagged articles, since a date.
-- Parameters: $topic (an IPTC code like medtop:11000000, or part of a label like 'politics'),
--             $since (date)
select day, topic_code, topic, articles, share, avg_score
from topic_volume_daily
where (topic_code = $topic or topic ilike '%' || $topic || '%')
  and day >= cast($since as date)
order by day, topic_code;
