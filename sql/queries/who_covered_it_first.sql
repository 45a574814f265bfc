-- Which outlets covered a story first: for stories run by more than one outlet since a date,
-- every outlet in the order it published, with its delay behind the first.
-- Parameters: $since (date)
with members as (
    select coalesce(a.story_id, a.article_id) as story_id, a.article_id, a.feed_id, a.title,
           coalesce(a.published_at, a.first_seen_at) as seen_at
    from articles a
    where coalesce(a.published_at, a.first_seen_at) >= cast($since as date)
),
multi as (
    select story_id from members group by story_id having count(distinct feed_id) > 1
)
select m.story_id, rank() over (partition by m.story_id order by m.seen_at) as rank,
       f.title as outlet, m.seen_at,
       round(epoch(m.seen_at - min(m.seen_at) over (partition by m.story_id)) / 60.0, 1)
           as minutes_behind_first,
       m.title
from members m join multi using (story_id) join feeds f using (feed_id)
order by m.story_id, rank;
