-- What was said about an entity: the articles that name it, newest first, with the passage
-- around its first mention. Parameters: $entity (e.g. 'Nicolas Maduro', 'Maduro', or an
-- entity_id; case does not matter). The entity is found by its name, any of its aliases or
-- short forms ("Maduro", "NSC"), or its id (a merged entity's id leads to the survivor).
-- The 50 newest hits are found first from narrow columns; then only their texts are read,
-- from the articles first seen since the oldest of them (the store keeps articles in the order
-- they arrived, so a reader skips the older files and row groups).
with wanted as (
    select entity_id from entities
    where lower(name) = lower($entity) or entity_id = $entity
       or list_contains(list_transform(aliases, x -> lower(x)), lower($entity))
    union select to_entity_id from entity_redirects where entity_id = $entity
),
hits as (
    select e.article_id, e.mentions, e.salience, e.first_offset, a.first_seen_at,
           coalesce(a.published_at, a.first_seen_at) as published
    from article_entities e join articles a using (article_id)
    where e.entity_id in (select entity_id from wanted)
    order by published desc nulls last, e.salience desc
    limit 50
)
select h.published, f.title as feed, a.title,
       h.mentions, round(h.salience, 3) as salience,
       case when h.first_offset is null then a.title
            else trim(substr(a.text, greatest(1, h.first_offset - 119), 320)) end as passage,
       a.url
from hits h
join (select a.* from articles a, (select min(first_seen_at) as lo from hits) b
      where a.first_seen_at >= b.lo) a on a.article_id = h.article_id
join feeds f on f.feed_id = a.feed_id
order by h.published desc nulls last, h.salience desc;
