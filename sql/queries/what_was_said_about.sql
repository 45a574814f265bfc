-- What was said about an entity: the articles that name it, newest first, with the passage
-- around its first mention.
-- Parameters: $entity (the normalised name, e.g. 'Nicolas Maduro'; case does not matter)
select coalesce(a.published_at, a.first_seen_at) as published, f.title as feed, a.title,
       e.mentions, round(e.salience, 3) as salience,
       case when e.first_offset is null then a.title
            else trim(substr(a.text, greatest(1, e.first_offset - 119), 320)) end as passage,
       a.url
from article_entities e
join articles a using (article_id)
join feeds f using (feed_id)
where lower(e.entity) = lower($entity)
order by published desc nulls last, e.salience desc
limit 50;
