-- Migration 011: entities you can count across articles (newsflow/enrich/identity.py,
-- newsflow/db/entities.py).
--   article_entities  gains entity_key (the name across articles: no case, diacritics,
--                     punctuation, possessive), aliases (the article's other names for it:
--                     the short forms and acronyms it merged in) and entity_id (the entity
--                     it is, resolved across articles).
--   entities          one row per entity: its name, its one label (a vote of all its mentions),
--                     its aliases, when first and last named, in how many articles.
--   entity_keys       every key and the entity it resolves to, and how it was joined.
--   entity_redirects  an entity merged into another: its id keeps leading to the survivor.
-- Existing rows get their keys and entity ids right after this migration (@entities); then
-- each load resolves its own rows and maintenance re-resolves the corpus.
-- @entities
-- @views
-- @derived

alter table article_entities add column entity_key varchar;
alter table article_entities add column aliases varchar[];
alter table article_entities add column entity_id varchar;

create table entities (
    entity_id     varchar not null,  -- 'e' + 16 hex digits, from the key it was created for
    name          varchar not null,  -- the commonest spelling of its representative key
    label         varchar not null,  -- the vote of all its mentions in the corpus
    aliases       varchar[],         -- its other spellings, short forms and acronyms
    first_seen_at timestamptz,       -- first and last UTC day it was named (article_days)
    last_seen_at  timestamptz,
    articles      bigint not null,   -- articles naming it
    mentions      bigint not null    -- mentions, all articles
);

create table entity_keys (
    entity_key  varchar not null,
    entity_id   varchar not null,
    resolved_by varchar not null     -- name, initials, short-form, paired
);

create table entity_redirects (
    entity_id    varchar not null,   -- an entity that was merged into another
    to_entity_id varchar not null,
    merged_at    timestamptz not null
);

-- Entity pairs by entity id (their names and labels are the entities' own).
drop table if exists entity_pairs;
create table entity_pairs (
    entity_id_a varchar, entity_a varchar, label_a varchar,
    entity_id_b varchar, entity_b varchar, label_b varchar,
    articles bigint, articles_a bigint, articles_b bigint, lift double, pmi double
);
