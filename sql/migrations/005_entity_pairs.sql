-- Migration 005: entity pairs computed when the search index is rebuilt, not at query time
-- (entity_cooccurrence and the named query named_together took 17 s and 10 s at 1M articles).
-- The table is filled right after this migration (the @derived marker), then with each rebuild.
-- @derived
create table entity_pairs (
    entity_a varchar, label_a varchar, entity_b varchar, label_b varchar,
    articles bigint, articles_a bigint, articles_b bigint, lift double, pmi double
);
-- @views
