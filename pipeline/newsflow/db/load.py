"""The load: the only writer of article data. One run's staged files land in one transaction,
so a run lands whole or not at all, and loading it twice changes nothing.

``load_run`` names its steps, in order: the polls (feed state), the articles (new ones
inserted; requeued pages upgrading stored ones; the fetch queue's records), the tags, places
and identity, the stories, and the run's own row with the snapshot's commit message. Each step
reads the staged temp tables ``staged_polls`` and ``staged_articles`` and touches only what the
run touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from newsflow.config import fault_point
from newsflow.db import entities as entity_db
from newsflow.db import entity_counts
from newsflow.db import places as places_db
from newsflow.db import stories as story_db
from newsflow.db.engine import arrow, drop_temp, one, transaction
from newsflow.results import Result
from newsflow.rows import (
    STAGED_SINCE_006,
    STAGED_SINCE_010,
    STAGED_SINCE_011,
    STORED_ARTICLE_COLUMNS,
    TAG_SCHEMAS,
    TAG_TABLES,
    columns,
)
from newsflow.staging import RunDir

HEALTHY_OUTCOMES = ("ok", "not_modified")
HEALTHY_OUTCOMES_SQL = str(HEALTHY_OUTCOMES)  # ('ok', 'not_modified')
# The commit message of a load's snapshot: "newsflow load <run_id>" (``snapshot_of_run``).
LOAD_MESSAGE = "newsflow load "


@dataclass
class LoadResult(Result):
    run_id: str
    already_loaded: bool
    polls: int = 0
    articles_loaded: int = 0
    by_status: dict[str, int] | None = None
    tag_rows: dict[str, int] | None = None  # rows inserted per tag kind
    stories_joined: int = 0  # articles of this load that share a story with another article
    snapshot_id: int | None = None  # the lake snapshot the load committed
    upgraded_ids: list[str] = field(default_factory=list)  # new texts for the search index
    articles_upgraded: int = 0  # stored articles whose page arrived at a later attempt


def is_run_loaded(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    row = con.execute("select status from runs where run_id = ?", [run_id]).fetchone()
    return row is not None and row[0] == "loaded"


def load_run(
    con: duckdb.DuckDBPyConnection,
    alias: str,
    run: RunDir,
    *,
    poll_interval: float,
    max_backoff: float,
    trigger: str | None = None,
) -> LoadResult:
    """Load one run's staged polls and articles in a single transaction (idempotent).
    ``alias`` is the lake's name in the session (its snapshot takes the commit message)."""
    if is_run_loaded(con, run.run_id):
        return LoadResult(run.run_id, already_loaded=True)
    polls = [str(p) for p in run.files("polls")]
    articles = [str(p) for p in run.files("articles")]
    info = run.info()
    started = info.get("started_at") or datetime.now(UTC).isoformat()
    now = datetime.now(UTC)
    try:
        with transaction(con):
            fault_point("load_begin")
            poll_counts = load_polls(con, polls, poll_interval, max_backoff)
            if polls:
                fault_point("load_polls")
            inserted: list[tuple[str, str]] = []
            upgraded: list[str] = []
            if articles:
                inserted = insert_articles(con, articles, run.run_id, now)
                upgraded = apply_requeued(con)
                record_fetches(con, now)
            fault_point("load_articles")
            touched = [aid for aid, _ in inserted] + upgraded
            # None of them was first seen before the oldest staged row: what follows reads
            # the articles (and entity rows) of that time only, however large the store.
            since = first_seen(con, touched)
            tag_rows = load_tags(con, run, touched, since)
            places_db.locate(con, touched, since, replace=False)
            entity_db.assign(con, touched, since)
            places_db.link(con, touched)
            fault_point("load_tags")
            stories = story_db.assign(con, touched, since)
            by_status: dict[str, int] = {}
            for _, status in inserted:
                by_status[status] = by_status.get(status, 0) + 1
            record_run(
                con, run, started, now, trigger or info.get("trigger"), poll_counts, by_status,
                len(inserted), len(upgraded),
            )  # fmt: skip
            extra = json.dumps({"run_id": run.run_id, "articles_loaded": len(inserted)})
            con.execute(
                f"call {alias}.set_commit_message(?, ?, extra_info => ?)",
                ["newsflow", f"{LOAD_MESSAGE}{run.run_id}", extra],
            )
            fault_point("load_commit")
    finally:
        drop_temp(
            con,
            "staged_polls",
            "staged_articles",
            "new_articles",
            "removed_entity_rows",
            "located_places",
        )
    fault_point("load_committed")
    return LoadResult(
        run.run_id,
        False,
        snapshot_id=current_snapshot(con, alias),
        polls=poll_counts[0],
        articles_loaded=len(inserted),
        articles_upgraded=len(upgraded),
        upgraded_ids=upgraded,
        by_status=by_status,
        tag_rows=tag_rows,
        stories_joined=stories,
    )


def first_seen(con: duckdb.DuckDBPyConnection, article_ids: list[str]) -> datetime | None:
    """The oldest first sighting of these staged articles. A requeued page's staged row
    carries its stored article's ``first_seen_at`` (``pages.due_pages``), and an inserted
    article's is the staged one: no stored article of these was first seen earlier."""
    if not article_ids:
        return None
    with arrow(con, "touched_ids", article_id=article_ids):
        return one(
            con.execute(
                "select min(first_seen_at) from staged_articles"
                " where article_id in (select article_id from touched_ids)"
            )
        )[0]


def current_snapshot(con: duckdb.DuckDBPyConnection, alias: str) -> int:
    """The id of the lake snapshot this connection reads."""
    return one(con.execute(f"select id from ducklake_current_snapshot('{alias}')"))[0]


def load_polls(
    con: duckdb.DuckDBPyConnection, files: list[str], poll_interval: float, max_backoff: float
) -> tuple[int, int, int]:
    """Inside the load: the staged polls (table ``staged_polls``) recorded and the feeds'
    state moved. (polls, healthy polls, new items)."""
    if not files:
        return 0, 0, 0
    con.execute(
        "create or replace temp table staged_polls as"
        " select * from read_parquet(?, union_by_name = true)",
        [files],
    )
    add_missing_columns(con, "staged_polls", STAGED_SINCE_006["polls"])
    apply_polls(con, poll_interval, max_backoff)
    polled, healthy, new = one(
        con.execute(
            f"select count(*), count(*) filter (outcome in {HEALTHY_OUTCOMES_SQL}),"
            " coalesce(sum(items_new), 0) from staged_polls"
        )
    )
    return polled, healthy, new


def insert_articles(
    con: duckdb.DuckDBPyConnection, files: list[str], run_id: str, now: datetime
) -> list[tuple[str, str]]:
    """Inside the load: the staged articles (table ``staged_articles``, one row per id) that
    are not stored yet, inserted. Their (article_id, extraction_status)."""
    con.execute(
        "create or replace temp table staged_articles as"
        " select * from read_parquet(?, union_by_name = true)"
        " qualify row_number() over"
        " (partition by article_id order by first_seen_at) = 1",
        [files],
    )
    add_missing_columns(con, "staged_articles", STAGED_SINCE_006["articles"])
    add_missing_columns(con, "staged_articles", STAGED_SINCE_010["articles"])
    stored = ", ".join(STORED_ARTICLE_COLUMNS)
    # The key, kept by this one writer: staged articles not stored yet. The stored ones are
    # looked up from the few staged ids (a semi join that streams the store's ids), not by an
    # anti join, whose hash table held all of them.
    con.execute(
        "create or replace temp table new_articles as"
        " select s.article_id, s.extraction_status from staged_articles s"
        " where s.article_id not in (select a.article_id from articles a"
        " where a.article_id in (select article_id from staged_articles))"
    )
    inserted = con.execute("select * from new_articles").fetchall()
    con.execute(
        f"insert into articles (run_id, loaded_at, {stored})"
        f" select ?, ?, {stored} from staged_articles"
        " where article_id in (select article_id from new_articles)",
        [run_id, now],
    )
    return inserted


def record_run(
    con: duckdb.DuckDBPyConnection,
    run: RunDir,
    started: str,
    now: datetime,
    trigger: str | None,
    poll_counts: tuple[int, int, int],
    by_status: dict[str, int],
    loaded: int,
    upgraded: int,
) -> None:
    """Inside the load: the run's row in ``runs``, status ``loaded``."""
    con.execute("delete from runs where run_id = ?", [run.run_id])
    con.execute(
        """
        insert into runs (run_id, started_at, finished_at, status, trigger,
            feeds_polled, feeds_ok, feeds_failed, items_new, articles_loaded,
            articles_ok, articles_feed_content, articles_failed, articles_upgraded)
        values (?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [
            run.run_id, started, now, trigger,
            poll_counts[0], poll_counts[1], poll_counts[0] - poll_counts[1], poll_counts[2],
            loaded, by_status.get("ok", 0), by_status.get("feed_content", 0),
            by_status.get("failed", 0), upgraded,
        ],
    )  # fmt: skip


def apply_polls(con: duckdb.DuckDBPyConnection, poll_interval: float, max_backoff: float) -> None:
    con.execute(
        """
        insert into feed_polls (poll_id, run_id, feed_id, url, polled_at, http_status, outcome,
            error, malformed, bytes, items_seen, items_new, duration_ms)
        select poll_id, run_id, feed_id, url, polled_at, http_status, outcome, error,
            malformed, bytes, items_seen, items_new, duration_ms
        from staged_polls s
        where not exists (select 1 from feed_polls p where p.poll_id = s.poll_id)
        """
    )
    # The newest poll of each feed sets its state. A healthy feed's next poll follows its
    # adaptive interval (staged by the poll, fetching/rhythm.py); failing feeds back off
    # exponentially (interval * 2^failures, capped); a Retry-After pushes it further out.
    con.execute(
        f"""
        update feeds set
            last_polled_at = p.polled_at,
            last_status = p.http_status,
            last_outcome = p.outcome,
            last_error = p.error,
            etag = case when p.outcome = 'ok' then p.etag
                        else coalesce(p.etag, feeds.etag) end,
            last_modified = case when p.outcome = 'ok' then p.last_modified
                                 else coalesce(p.last_modified, feeds.last_modified) end,
            consecutive_failures = case when p.outcome in {HEALTHY_OUTCOMES_SQL} then 0
                                        else feeds.consecutive_failures + 1 end,
            next_poll_at = p.polled_at + to_seconds(greatest(
                case when p.outcome in {HEALTHY_OUTCOMES_SQL} then coalesce(p.poll_interval, ?)
                     else least(?, ? * pow(2, least(feeds.consecutive_failures + 1, 30)))
                end,
                least(coalesce(p.retry_after, 0), ?))),
            poll_interval_s = coalesce(p.poll_interval, feeds.poll_interval_s),
            poll_interval_reason = case
                when p.outcome in {HEALTHY_OUTCOMES_SQL} then p.interval_reason
                else 'backing off after ' || (feeds.consecutive_failures + 1)
                     || ' failed poll(s)' end,
            last_success_at = case when p.outcome in {HEALTHY_OUTCOMES_SQL} then p.polled_at
                                   else feeds.last_success_at end,
            last_new_item_at = case when p.items_new > 0 then p.polled_at
                                    else feeds.last_new_item_at end,
            items_total = feeds.items_total + p.items_new,
            title = coalesce(feeds.title, p.feed_title),
            site_url = coalesce(p.site_url, feeds.site_url),
            language = coalesce(feeds.language, p.feed_language)
        from (select * from staged_polls
              qualify row_number() over (partition by feed_id order by polled_at desc) = 1) p
        where feeds.feed_id = p.feed_id
        """,
        [poll_interval, max_backoff, poll_interval, max_backoff],
    )


def add_missing_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]
) -> None:
    """A run staged by an older newsflow (a crash, then an upgrade) lacks the columns
    added since: they load as NULL (or their default) instead of failing the load."""
    for name, definition in columns.items():
        con.execute(f"alter table {table} add column if not exists {name} {definition}")


def apply_requeued(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Inside the load: the staged rows of articles that are stored already (their pages
    came back from the fetch queue). A page that arrived upgrades its article in place,
    same ``article_id``, and loses its old tags and story bands (the load then writes the
    new ones); one that did not only updates the reason, and ``pending`` becomes ``failed``
    when it is final. Returns the upgraded ids (their old entity rows noted as removed, for
    ``entity_db.assign`` to take their counts away)."""
    # The updates below read every column of the rows they scan (an UPDATE on the lake
    # rewrites them): only rows first seen since the oldest requeued article are scanned,
    # and none when no staged row is requeued (reading all texts was most of a load's memory
    # in a large store). A requeued row carries its stored article's first_seen_at
    # (pages.due_pages), so the staged rows give the bound without reading the articles.
    since = one(con.execute("select min(first_seen_at) from staged_articles where requeued"))[0]
    if since is None:
        return []
    upgraded = [
        r[0]
        for r in con.execute(
            """
            select s.article_id from staged_articles s join articles using (article_id)
            where s.requeued and s.extraction_status = 'ok'
              and articles.extraction_status <> 'ok' and articles.first_seen_at >= ?
            """,
            [since],
        ).fetchall()
    ]
    con.execute(
        """
            update articles set
                final_url = s.final_url, http_status = s.http_status,
                title = coalesce(articles.title, s.title),
                authors = case when len(articles.authors) > 0 then articles.authors
                               else s.authors end,
                published_at = coalesce(articles.published_at, s.published_at),
                language = s.language, site_name = s.site_name, text = s.text,
                description = s.description, top_image = s.top_image,
                keywords = s.keywords,
                word_count = s.word_count, extraction_status = s.extraction_status,
                extraction_error = null, content_hash = s.content_hash,
                story_id = null, fingerprint = null
            from staged_articles s
            where articles.article_id = s.article_id and s.requeued
              and s.extraction_status = 'ok' and articles.extraction_status <> 'ok'
              and articles.first_seen_at >= ?
            """,
        [since],
    )
    con.execute(
        """
        update articles set
            extraction_status = s.extraction_status, extraction_error = s.extraction_error,
            http_status = coalesce(s.http_status, articles.http_status)
        from staged_articles s
        where articles.article_id = s.article_id and s.requeued
          and s.extraction_status <> 'ok' and articles.extraction_status <> 'ok'
          and articles.first_seen_at >= ?
        """,
        [since],
    )
    if upgraded:
        with arrow(con, "upgraded_ids", article_id=upgraded):
            in_upgraded = "article_id in (select article_id from upgraded_ids)"
            entity_rows = in_upgraded + entity_db.since_day(con, "upgraded_ids", since)
            entity_counts.note_removed(con, entity_rows)
            for table in (*TAG_TABLES.values(), "article_bands", *places_db.TABLES):
                where = entity_rows if table == "article_entities" else in_upgraded
                con.execute(f"delete from {table} where {where}")
    return upgraded


def record_fetches(con: duckdb.DuckDBPyConnection, now: datetime) -> None:
    """Inside the load: the frontier state of every page that did not arrive at its first
    attempt, and of every page that came back from the queue (``page_fetches``)."""
    con.execute(
        """
        create or replace temp table fetch_states as
        select s.article_id, a.feed_id, s.url, s.host,
            case when a.extraction_status = 'ok' then 'done'
                 when s.fetch_state = 'retry' then 'retrying'
                 else s.fetch_state end,
            s.fetch_attempts,
            case when a.extraction_status = 'ok' then null else s.fetch_error end,
            coalesce(old.first_queued_at, ?),
            case when s.fetch_state = 'pending' then old.last_attempt_at
                 else coalesce(s.attempted_at, ?) end,
            case when s.fetch_state in ('retry', 'pending') then s.next_attempt_at end,
            case when s.fetch_state in ('done', 'final') then ? end
        from staged_articles s
        join articles a using (article_id)
        left join page_fetches old using (article_id)
        where s.requeued or s.fetch_state <> 'done'
        """,
        [now, now, now],
    )
    try:
        con.execute(
            "delete from page_fetches where article_id in (select article_id from fetch_states)"
        )
        con.execute(
            "insert into page_fetches (article_id, feed_id, url, host, state, attempts,"
            " last_error, first_queued_at, last_attempt_at, next_attempt_at, done_at)"
            " select * from fetch_states"
        )
    finally:
        drop_temp(con, "fetch_states")


def load_tags(
    con: duckdb.DuckDBPyConnection,
    run: RunDir,
    article_ids: list[str],
    since: datetime | None = None,
) -> dict[str, int]:
    """Insert the staged tag rows of the articles this load inserted (inside its transaction).

    Articles that were already stored keep the tags they have; re-tag them with retag."""
    counts: dict[str, int] = {}
    if not article_ids:
        return counts
    with arrow(con, "inserted_ids", article_id=article_ids):
        con.execute(
            "create or replace temp table loaded_ids as select article_id from inserted_ids"
        )
    try:
        for kind, table in TAG_TABLES.items():
            files = [str(p) for p in run.files(kind)]
            if not files:
                continue
            cols = columns(TAG_SCHEMAS[kind])
            con.execute(
                "create or replace temp table staged_tags as select *"
                " from read_parquet(?, union_by_name = true)"
                " where article_id in (select article_id from loaded_ids)",
                [files],
            )
            add_missing_columns(con, "staged_tags", STAGED_SINCE_011.get(kind, {}))
            if kind == "entities":  # with the article's day (migration 013)
                names = list(TAG_SCHEMAS[kind].names)
                counts[kind] = entity_db.insert_rows(con, "staged_tags", names, since)
                continue
            counts[kind] = one(
                con.execute(f"insert into {table} ({cols}) select {cols} from staged_tags")
            )[0]
    finally:
        drop_temp(con, "loaded_ids", "staged_tags")
    return counts
