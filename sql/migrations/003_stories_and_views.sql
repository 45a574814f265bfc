-- Story clusters and the analyst views.
--   articles.story_id     articles whose texts are near-identical share one (the earliest
--                         member's article_id); NULL until assigned
--   articles.fingerprint  MinHash signature of the text (pipeline/newsflow/enrich/stories.py)
--   article_bands         LSH band keys of each fingerprint, to find candidates at load time
-- The views are the files of sql/views/, created after this migration (the @views marker).
-- @views

alter table articles add column story_id varchar;
alter table articles add column fingerprint blob;

create table article_bands (
    band_key   bigint not null,
    article_id varchar not null
);
