-- Who appears with whom: the entities most often named in the same articles as an entity,
-- with lift (how much more often than chance) and pointwise mutual information.
-- Parameters: $entity (normalised name, case does not matter)
select case when lower(entity_a) = lower($entity) then entity_b else entity_a end as entity,
       case when lower(entity_a) = lower($entity) then label_b else label_a end as label,
       articles, lift, pmi
from entity_cooccurrence
where lower(entity_a) = lower($entity) or lower(entity_b) = lower($entity)
order by articles desc, lift desc
limit 30;
