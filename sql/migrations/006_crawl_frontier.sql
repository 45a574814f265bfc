-- Migration 006: the crawl frontier's memory, and adaptive polling.
--   page_fetches   one row per article page that did not arrive at its first attempt: pending
--                  (the cycle's fetch budget ran out before its host's turn), retrying (failed
--                  transiently; next_attempt_at says when), done (arrived later: the article
--                  was upgraded in place) or final (failed for good). Written by the load only.
--   feeds.poll_interval_s / poll_interval_reason
--                  each feed's current interval between healthy polls, following its
--                  publishing rhythm (pipeline/newsflow/fetching/rhythm.py), and why it is what it is.

create table page_fetches (
    article_id      varchar not null,
    feed_id         varchar not null,
    url             varchar not null,
    host            varchar not null,
    state           varchar not null,      -- pending, retrying, done, final
    attempts        integer not null,      -- requests made so far (a pending page has had none)
    last_error      varchar,               -- why the last attempt failed, or why it is pending
    first_queued_at timestamptz not null,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,           -- not before; NULL: at the next cycle
    done_at         timestamptz            -- when it became done or final
);

alter table feeds add column poll_interval_s double;
alter table feeds add column poll_interval_reason varchar;

-- articles stored earlier whose page arrived in this run (upgraded in place)
alter table runs add column articles_upgraded integer default 0;
