-- The entity pairs of all articles (entity_pairs_between, sql/views/entity_cooccurrence.sql),
-- materialised: computing them at query time took 16.8 s at 1M articles (benchmarks/scale.py).
select * from entity_pairs_between(date '0001-01-01', date '9999-12-31')
