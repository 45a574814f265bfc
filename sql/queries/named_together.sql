-- Who appears with whom: the entities most often named in the same articles as an entity,
-- with lift (how much more often than chance) and pointwise mutual information.
-- Parameters: $entity (its name, an alias or its entity_id; case does not matter)
with wanted as (
    select entity_id from entities
    where lower(name) = lower($entity) or entity_id = $entity
       or list_contains(list_transform(aliases, x -> lower(x)), lower($entity))
    union select to_entity_id from entity_redirects where entity_id = $entity
)
select case when entity_id_a in (select entity_id from wanted) then entity_b
            else entity_a end as entity,
       case when entity_id_a in (select entity_id from wanted) then label_b
            else label_a end as label,
       articles, lift, pmi
from entity_cooccurrence
where entity_id_a in (select entity_id from wanted) or entity_id_b in (select entity_id from wanted)
order by articles desc, lift desc, entity
limit 30;
