-- Migration 015: each key's counts kept by the loads, so that a load's identity work reads what
-- it touched, not the corpus (a 50-article load into 1M articles spent seconds recounting the
-- keys it touched and refreshing their entities over 21M entity rows).
--   entity_key_counts  one row per key, spelling and label: in how many articles, how many
--                      mentions, first and last day (article_entities.day). A load adds its
--                      own rows' counts and takes away those of the rows it replaced (a
--                      requeued page's, a retag's); the daily maintenance recounts it whole.
--                      name_key (place keys only) is the spelling as an entity key, how a
--                      name finds the places articles gave it.
-- entities.articles and .mentions are kept the same way (first_seen_at and last_seen_at only
-- widen between two maintenances: a retag that takes an entity out of its first article leaves
-- the old bound until maintenance recounts).
-- article_bands.day, its article's day (as article_entities.day): a load looks for the
-- stories its articles join among the articles of STORY_WINDOW_DAYS before them
-- (newsflow/enrich/stories.py), and bands stored in day order are read for those days only
-- (the whole band index, 16 rows per article, was read by every load). The existing rows get
-- their days and are rewritten in that order once (@band-days).
-- @entity-counts
-- @band-days

create table entity_key_counts (
    entity_key varchar not null,
    entity     varchar not null,
    label      varchar not null,
    name_key   varchar,
    articles   bigint not null,
    mentions   bigint not null,
    first_day  date,
    last_day   date
);

alter table article_bands add column day date;
