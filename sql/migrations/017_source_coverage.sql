-- Migration 017: what each feed brings, over a period and over its whole history.
--   source_coverage_between(first_day, last_day)  the feeds' figures over those UTC days,
--                      reading only their articles (sql/views/source_coverage.sql).
--   source_coverage_all the whole history, materialised with the derived tables (after each
--                      load while the store is small, by the daily maintenance beyond): the
--                      view source_coverage reads it. Computed at query time it took 2.6 s at
--                      3M articles and grew with them (docs/performance.md).
-- @views
-- @derived source_coverage_all

create table source_coverage_all (
    feed_id                 varchar,
    feed                    varchar,
    url                     varchar,
    site                    varchar,
    articles                bigint,
    languages               varchar[],
    extraction_success_rate double,
    median_delay_minutes    double,
    first_article_at        timestamptz,
    last_article_at         timestamptz,
    as_of                   timestamptz
);
