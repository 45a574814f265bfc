-- Migration 007: one definition per metric.
--   settings   the thresholds the analyst views share with the rest of newsflow, written by
--              every run (the load) and by maintenance from the NEWSFLOW_* settings, so the
--              feed_health view, the report, `newsflow maintain` and the DAG judge alike.
--   views      article_days, the one definition of an article's UTC day, read by every view;
--              trending and entity pairs as table macros the report reads too; feed_health
--              with its thresholds from settings. The entity pairs are recomputed by name (an
--              entity's label is its most common one), as the report counted them.
--   search_index_state  now a table of the schema like every other.
-- @views
-- @derived

create table settings (
    name       varchar not null,
    value      double not null,
    updated_at timestamptz not null
);
insert into settings values
    ('feed_failing_after', 3, now()),
    ('feed_silence_hours', 48, now());

-- When the full-text index was last built and over how many articles (db/search.py), which
-- the search index rebuild used to create for itself.
create table if not exists search_index_state (built_at timestamptz, articles bigint);

-- runs.error was never written: a run row is written by its load only (status 'loaded'); a run
-- that fails leaves its staged files, which the next cycle resumes, not a row.
alter table runs drop column error;
