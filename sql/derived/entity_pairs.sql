-- The entity pairs of all articles (entity_pairs_of, sql/views/entity_cooccurrence.sql),
-- materialised: computing them at query time took 16.8 s at 1M articles (benchmarks/scale.py).
-- Their parts are counted a month of days at a time into entity_pair_parts_all first
-- (db/search_index.py rebuild_derived): in one statement they took 5.3 GB at 1M articles.
select * from entity_pairs_of('entity_pair_parts_all')
