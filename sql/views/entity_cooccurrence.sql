-- Pairs of entities named in the same article (each article's 12 most salient entities), seen
-- together in at least 2 articles, with lift and PMI: see sql/derived/entity_pairs.sql. The
-- pairs are computed with the search index, so they are as of its last rebuild.
create or replace view entity_cooccurrence as
select entity_a, label_a, entity_b, label_b, articles, articles_a, articles_b, lift, pmi
from entity_pairs;
