-- The ingestion core: feed registry and polling state, polls, articles, runs.
-- All timestamps are UTC instants (TIMESTAMPTZ); the store sets the session time zone to UTC.
-- The tables live in a DuckLake, which enforces no key: each table's key (feed_id, poll_id,
-- article_id, run_id, ...) is kept unique by its one writer, db/store.py (anti-joins and MERGE
-- inside the load's transaction, behind the store's writer lock); tests/test_lake.py checks it.

create table feeds (
    feed_id              varchar not null,   -- hash of the feed URL
    url                  varchar not null,
    title                varchar,                -- name from the feed list, else the feed's own title
    site_url             varchar,                -- the feed's <link>
    tags                 varchar[],
    language             varchar,                -- declared in the feed list or by the feed
    active               boolean not null default true,
    added_at             timestamptz not null,
    removed_at           timestamptz,
    -- polling state, written only by the load of a run
    etag                 varchar,
    last_modified        varchar,
    last_polled_at       timestamptz,
    last_status          integer,
    last_outcome         varchar,
    last_error           varchar,
    consecutive_failures integer not null default 0,
    next_poll_at         timestamptz,
    last_success_at      timestamptz,
    last_new_item_at     timestamptz,
    items_total          bigint not null default 0
);

create table feed_polls (
    poll_id      varchar not null,   -- run id + feed id
    run_id       varchar not null,
    feed_id      varchar not null,
    url          varchar not null,
    polled_at    timestamptz not null,
    http_status  integer,
    outcome      varchar not null,       -- ok, not_modified, http_error, timeout, blocked, ...
    error        varchar,
    malformed    boolean not null default false,  -- parsed with warnings (feedparser bozo)
    bytes        bigint not null default 0,
    items_seen   integer not null default 0,
    items_new    integer not null default 0,
    duration_ms  double
);

create table articles (
    article_id        varchar not null,  -- hash of canonical_url
    feed_id           varchar not null,
    run_id            varchar not null,
    url               varchar not null,      -- the item's link, resolved against the feed
    canonical_url     varchar not null,
    final_url         varchar,               -- after redirects, when the page was fetched
    guid              varchar,
    title             varchar,
    authors           varchar[],
    feed_categories   varchar[],
    summary           varchar,               -- the feed's own summary, as plain text
    published_at      timestamptz,           -- from the feed, else the page; NULL when unknown
    first_seen_at     timestamptz not null,
    loaded_at         timestamptz not null,
    language          varchar,
    site_name         varchar,
    text              varchar,
    word_count        integer not null default 0,
    extraction_status varchar not null,      -- ok, feed_content, failed
    extraction_error  varchar,
    http_status       integer,
    content_hash      varchar                -- sha256 of the stored text (NULL when no text)
);

create table runs (
    run_id              varchar not null,
    started_at          timestamptz not null,
    finished_at         timestamptz,
    status              varchar not null,   -- loaded, failed
    trigger             varchar,            -- cli, demo, airflow
    feeds_polled        integer not null default 0,
    feeds_ok            integer not null default 0,
    feeds_failed        integer not null default 0,
    items_new           integer not null default 0,
    articles_loaded     integer not null default 0,
    articles_ok         integer not null default 0,
    articles_feed_content integer not null default 0,
    articles_failed     integer not null default 0,
    error               varchar
);
