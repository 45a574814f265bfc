-- What was said about an entity: the articles that name it, newest first, with the passage
-- around its first mention. Parameters: $entity (e.g. 'Nicolas Maduro', 'Maduro', or an
-- entity_id; case does not matter). The entity is found by its name, any of its aliases or
-- short forms ("Maduro", "NSC"), or its id (a merged entity's id leads to the survivor).
with wanted as (
    select entity_id from entities
    where lower(name) = lower($entity) or entity_id = $entity
       or list_contains(list_transform(aliases, x -> lower(x)), lower($entity))
    union select to_entity_id from entity_redirects where entity_id = $entity
)
select coalesce(a.published_at, a.first_seen_at) as published, f.title as feed, a.title,
       e.mentions, round(e.salience, 3) as salience,
       case when e.first_offset is null then a.title
            else trim(substr(a.text, greatest(1, e.first_offset - 119), 320)) end as passage,
       a.url
from article_entities e
join articles a using (article_id)
join feeds f using (feed_id)
where e.entity_id in (select entity_id from wanted)
order by published desc nulls last, e.salience desc
limit 50;
