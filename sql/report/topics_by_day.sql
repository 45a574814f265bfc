-- Articles per UTC day of the period by each article's best topic (its highest score), with
-- $no_topic for articles without one. Parameters: $start, $end, $no_topic.
with period as (
    select article_id, day from article_days where day between $start and $end
),
best as (
    select t.article_id, t.topic_code, t.topic
    from article_topics t semi join period p using (article_id)
    qualify row_number() over (partition by t.article_id order by t.score desc, t.topic_code) = 1
)
select p.day, coalesce(b.topic_code, '') as topic_code, coalesce(b.topic, $no_topic) as topic,
       count(*) as articles
from period p left join best b using (article_id)
group by all
order by p.day, topic_code
