"""The store: every database access of newsflow goes through this module.

One DuckDB file by default. Schema changes are numbered ``sql/migrations/NNN_name.sql`` files,
each applied in its own transaction and recorded in ``schema_migrations``. ``load_run`` is the
only writer of article data: it loads one run's staged files in one transaction, so a run lands
whole or not at all, and loading it twice changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import random
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from newsflow.config import fault_point
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.urls import feed_id as make_feed_id
from newsflow.staging import RunDir

LOGGER = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
HEALTHY_OUTCOMES = ("ok", "not_modified")
HEALTHY_OUTCOMES_SQL = str(HEALTHY_OUTCOMES)  # ('ok', 'not_modified')
VIEWS_MARKER = "-- @views"
# A migration with this marker fills the derived tables (rebuild_derived) once it is applied.
DERIVED_MARKER = "-- @derived"
# Staged tag kinds and the tables they load into, with the columns staged files carry.
TAG_TABLES = {
    "entities": "article_entities",
    "topics": "article_topics",
    "categories": "article_categories",
    "tagging": "article_tagging",
}
TAG_COLUMNS = {
    "entities": [
        "article_id",
        "entity",
        "label",
        "mentions",
        "salience",
        "in_title",
        "first_offset",
        "tagger",
    ],
    "topics": ["article_id", "topic_code", "topic", "score", "evidence", "tagger"],
    "categories": ["article_id", "category", "topic_code", "topic"],
    "tagging": ["article_id", "kind", "tagger", "status", "reason", "items", "tagged_at"],
}


# Columns of staged files added after runs could already be staged (migration 006, the crawl
# frontier): a run staged by an older version is loaded with these defaults.
STAGED_SINCE_006 = {
    "polls": {"poll_interval": "double", "interval_reason": "varchar"},
    "articles": {
        "host": "varchar",
        "fetch_state": "varchar default 'done'",
        "fetch_attempts": "integer default 1",
        "fetch_error": "varchar",
        "next_attempt_at": "timestamptz",
        "queued_s": "double",
        "requeued": "boolean default false",
    },
}


def sql_dir() -> Path:
    """The ``sql/`` folder: inside the package in a wheel, at the checkout's top otherwise."""
    package = Path(__file__).resolve().parents[1]  # pipeline/newsflow
    for candidate in (package / "sql", package.parents[1] / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise StoreError("cannot find newsflow's sql/migrations folder")


class StoreError(RuntimeError):
    """The database cannot be used (missing, locked, too new, ...); the message says why."""


class DiskFullError(StoreError):
    """A write failed for want of space (no space left, file size limit, quota)."""


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DISK_FULL_TEXT = ("no space left on device", "file too large", "disk quota exceeded")


def lock_retry_delays(wait: float) -> Iterator[None]:
    """Wait for a lock another process holds, for up to ``wait`` seconds: each step sleeps,
    then yields for one more attempt. Exponential from 0.1 s to 2 s, with jitter so that
    waiting processes do not retry in step; exhausted once the time is up."""
    deadline = time.monotonic() + wait
    delay = 0.1
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(delay * random.uniform(0.5, 1.5), left))
        delay = min(delay * 2, 2.0)
        yield


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, a pyarrow or a DuckDB error) means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return any(text in str(exc).lower() for text in _DISK_FULL_TEXT)


@dataclass
class DueFeed:
    feed_id: str
    url: str
    etag: str | None
    last_modified: str | None
    language: str | None
    last_polled_at: datetime | None = None  # None: never polled
    poll_interval_s: float | None = (
        None  # the current adaptive interval (newsflow/fetching/rhythm.py)
    )

    def __post_init__(self) -> None:
        if isinstance(self.last_polled_at, str):  # from a plan's JSON
            self.last_polled_at = datetime.fromisoformat(self.last_polled_at)

    def as_json(self) -> dict:
        d = asdict(self)
        if self.last_polled_at is not None:
            d["last_polled_at"] = self.last_polled_at.isoformat()
        return d


@dataclass
class LoadResult:
    run_id: str
    already_loaded: bool
    polls: int = 0
    articles_loaded: int = 0
    by_status: dict | None = None
    tag_rows: dict | None = None  # rows inserted per tag kind
    stories_joined: int = 0  # articles of this load that share a story with another article
    articles_upgraded: int = 0  # stored articles whose page arrived at a later attempt


def migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path))
    return found


@contextlib.contextmanager
def _arrow(con: duckdb.DuckDBPyConnection, name: str, **columns):
    """Columns (Python lists, or (list, pyarrow type)) as a registered Arrow table ``name``
    for the statement(s) in the block. A Python list bound as a parameter costs DuckDB's
    binding about 60 µs per element (it tries to import pandas for each one), an Arrow table
    next to nothing: 20,000 ids, 1.2 s against 0.07 s."""
    arrays = {
        k: pa.array(v[0], type=v[1]) if isinstance(v, tuple) else pa.array(v, type=pa.string())
        for k, v in columns.items()
    }
    con.register(name, pa.table(arrays))
    try:
        yield name
    finally:
        con.unregister(name)


class Store:
    """A connection to the newsflow database. Use as a context manager.

    DuckDB lets one process write a database file, or any number read it, never both: an open
    Store holds the file's lock. ``release`` closes the connection (dropping the lock) while a
    long stage needs no database, ``reopen`` takes it again, waiting up to ``lock_wait``."""

    def __init__(self, path: Path | str, *, read_only: bool = False, lock_wait: float = 30.0):
        self.path = Path(path)
        self.read_only = read_only
        self.lock_wait = lock_wait
        self.con = self._open(lock_wait)

    def _open(self, lock_wait: float) -> duckdb.DuckDBPyConnection:
        con = self._connect(lock_wait)
        self.con = con
        try:
            con.execute("set TimeZone = 'UTC'")
            if self.read_only:
                self._check_schema()
            else:
                self.migrate()
        except duckdb.Error as exc:
            con.close()
            if is_disk_full(exc):
                raise DiskFullError(
                    f"out of disk space while opening database {self.path}: {exc}"
                ) from None
            raise
        except BaseException:
            con.close()
            raise
        self._released = False
        return con

    def release(self) -> None:
        """Close the connection, so other processes can use the database, until ``reopen``."""
        if not self._released:
            self.con.close()
            self._released = True

    def reopen(self, lock_wait: float | None = None) -> None:
        """Open the connection again after ``release`` (a no-op when it is open), waiting up to
        ``lock_wait`` seconds (default: the Store's) for another process's lock."""
        if self._released:
            self._open(self.lock_wait if lock_wait is None else lock_wait)

    def _connect(self, lock_wait: float) -> duckdb.DuckDBPyConnection:
        if self.read_only and not self.path.exists():
            raise StoreError(f"no database at {self.path}; run `newsflow ingest` to create it")
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        config = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
        retries = lock_retry_delays(lock_wait)
        waiting = False
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only, config=config)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    if is_disk_full(exc):
                        raise DiskFullError(f"cannot open database {self.path}: {exc}") from None
                    raise StoreError(f"cannot open database {self.path}: {exc}") from None
                if not waiting and lock_wait >= 1:
                    LOGGER.warning(
                        "database %s is locked by another process; waiting up to %gs",
                        self.path,
                        lock_wait,
                    )
                    waiting = True
                if next(retries, StopIteration) is StopIteration:
                    raise StoreError(
                        f"database {self.path} is locked by another process (still after "
                        f"{lock_wait:g}s): {exc}"
                    ) from None
            except duckdb.Error as exc:
                raise StoreError(f"cannot open database {self.path}: {exc}") from None

    def close(self) -> None:
        self.con.close()
        self._released = True

    def _rollback(self) -> None:
        """Roll back after a failed statement. A failed COMMIT (e.g. on a full disk) has already
        ended the transaction and a fatal error invalidates the connection: either way ROLLBACK
        fails too, and that error must not hide the one that caused it."""
        try:
            self.con.execute("rollback")
        except duckdb.Error as exc:
            LOGGER.debug("rollback: %s", exc)

    def _drop_temp(self, *tables: str) -> None:
        for table in tables:
            try:
                self.con.execute(f"drop table if exists {table}")
            except duckdb.Error as exc:  # an invalidated connection: the error is raised already
                LOGGER.debug("drop %s: %s", table, exc)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        exists = self.con.execute(
            "select count(*) from information_schema.tables where table_name = 'schema_migrations'"
        ).fetchone()[0]
        if not exists:
            return 0
        return self.con.execute(
            "select coalesce(max(version), 0) from schema_migrations"
        ).fetchone()[0]

    def _check_schema(self) -> None:
        have, want = self.schema_version(), max(v for v, _, _ in migrations())
        if have < want:
            raise StoreError(
                f"database {self.path} is at schema version {have}, this newsflow needs {want}; "
                "run a writing command such as `newsflow ingest` to migrate it"
            )

    def migrate(self) -> list[str]:
        """Apply the migrations this database has not seen, each in its own transaction."""
        self.con.execute(
            "create table if not exists schema_migrations ("
            " version integer primary key, name varchar not null, applied_at timestamptz not null)"
        )
        have = self.schema_version()
        applied = []
        pending = [(v, n, p.read_text(encoding="utf-8")) for v, n, p in migrations() if v > have]
        # The views are those of sql/views/ now, which may read tables of later migrations: they
        # are created with the last pending migration that asks for them.
        views_at = max((v for v, _, text in pending if VIEWS_MARKER in text), default=None)
        for version, name, text in pending:
            self.con.execute("begin")
            try:
                self.con.execute(text)
                if version == views_at:
                    self.create_views()
                if DERIVED_MARKER in text:
                    self.rebuild_derived()
                self.con.execute(
                    "insert into schema_migrations values (?, ?, ?)",
                    [version, name, datetime.now(UTC)],
                )
                self.con.execute("commit")
            except Exception:
                self._rollback()
                raise
            LOGGER.info("applied migration %03d_%s", version, name)
            applied.append(f"{version:03d}_{name}")
        return applied

    def refresh_search_index(self, max_articles: int | None = None) -> float | None:
        """Rebuild the full-text index (newsflow/db/search.py); seconds taken, or None when the
        database holds more than ``max_articles`` (rebuilding is then left to maintenance)."""
        from newsflow.db.search import rebuild_index

        if max_articles is not None:
            count = self.con.execute("select count(*) from articles").fetchone()[0]
            if count > max_articles:
                return None
        # One transaction: a process killed mid-rebuild leaves the old index, not half a new one.
        self.con.execute("begin")
        try:
            seconds = rebuild_index(self.con)
            started = time.perf_counter()
            self.rebuild_derived()
            seconds += time.perf_counter() - started
            self.con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        return seconds

    def refresh_search_after_load(
        self, articles_loaded: int, max_articles: int | None = None
    ) -> float | None:
        """After a load: rebuild the search index (``refresh_search_index``) when the load
        added articles, or when the index misses some (a process killed after its load
        committed, before it rebuilt the index; its retry loads nothing). Seconds, or None."""
        if not articles_loaded and not self.search_index_stale():
            return None
        return self.refresh_search_index(max_articles)

    def search_index_stale(self) -> bool:
        """Whether articles are missing from the search index (or there is none): e.g. a run
        loaded by a process that was killed before it rebuilt the index."""
        from newsflow.db.search import index_exists, unindexed_articles

        if not self.con.execute("select count(*) from articles").fetchone()[0]:
            return False
        return not index_exists(self.con) or unindexed_articles(self.con) > 0

    def rebuild_derived(self) -> None:
        """Recompute the tables derived from all articles that are too costly to compute at
        query time (``sql/derived/``: the entity pairs). Runs with the search index rebuild."""
        for path in sorted((sql_dir() / "derived").glob("*.sql")):
            self.con.execute(
                f"create or replace table {path.stem} as {path.read_text(encoding='utf-8')}"
            )

    def create_views(self) -> list[str]:
        """(Re)create the analyst views of ``sql/views/``; a migration with the ``@views``
        marker calls this, so a change to the views ships as a new migration."""
        names = []
        for path in sorted((sql_dir() / "views").glob("*.sql")):
            self.con.execute(path.read_text(encoding="utf-8"))
            names.append(path.stem)
        return names

    # -- feed registry -----------------------------------------------------------------------

    def upsert_feeds(self, specs: Sequence[FeedSpec]) -> tuple[int, int]:
        """Add feeds or update their name, tags and language; one transaction. (added, updated)"""
        now = datetime.now(UTC)
        added = updated = 0
        self.con.execute("begin")
        try:
            for spec in specs:
                fid = make_feed_id(spec.url)
                row = self.con.execute(
                    "select title, tags, language, active from feeds where feed_id = ?", [fid]
                ).fetchone()
                if row is None:
                    self.con.execute(
                        "insert into feeds (feed_id, url, title, tags, language, added_at)"
                        " values (?, ?, ?, ?, ?, ?)",
                        [fid, spec.url, spec.name, list(spec.tags), spec.language, now],
                    )
                    added += 1
                    continue
                title = spec.name or row[0]
                tags = list(spec.tags) if spec.tags else row[1]
                language = spec.language or row[2]
                if (title, tags, language, row[3]) != (row[0], row[1], row[2], True):
                    self.con.execute(
                        "update feeds set title = ?, tags = ?, language = ?, active = true,"
                        " removed_at = null where feed_id = ?",
                        [title, tags, language, fid],
                    )
                    updated += 1
            self.con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        return added, updated

    def remove_feed(self, url: str) -> bool:
        """Deactivate a feed (its polls and articles stay). False when no active feed has it."""
        fid = make_feed_id(url)
        changed = self.con.execute(
            "update feeds set active = false, removed_at = ? where feed_id = ? and active"
            " returning feed_id",
            [datetime.now(UTC), fid],
        ).fetchall()
        return bool(changed)

    def feeds(self, include_removed: bool = False) -> list[dict]:
        where = "" if include_removed else "where active"
        return self.rows(
            f"select feed_id, url, title, tags, language, active, last_polled_at, last_outcome,"
            f" last_error, consecutive_failures, next_poll_at, items_total"
            f" from feeds {where} order by title nulls last, url"
        )

    def active_feed_count(self) -> int:
        return self.con.execute("select count(*) from feeds where active").fetchone()[0]

    def silent_feeds(self, cutoff: datetime) -> list[dict]:
        """Active feeds that used to bring items but have brought nothing new since ``cutoff``
        (failing ones first)."""
        return self.rows(
            """
            select coalesce(title, url) as feed, url, last_outcome, last_error,
                   consecutive_failures, last_success_at, last_new_item_at, items_total
            from feeds
            where active and items_total > 0
              and coalesce(last_new_item_at, added_at) < ?
            order by consecutive_failures desc, last_new_item_at nulls first, url
            """,
            [cutoff],
        )

    def feed_status(self) -> tuple[list[str], list[tuple]]:
        """``newsflow status``'s feed table: each active feed's last poll, outcome, failures in a
        row, next poll, adaptive interval (minutes) and why, items, last error."""
        return self.query(
            "select coalesce(title, url) as feed, last_polled_at, last_outcome,"
            " consecutive_failures as failures, next_poll_at,"
            " round(poll_interval_s / 60, 1) as every_min, poll_interval_reason as why,"
            " items_total as items, last_error"
            " from feeds where active order by consecutive_failures desc, title"
        )

    def articles_by_status(self) -> dict[str, int]:
        """Articles in all, and per extraction status."""
        rows = self.con.execute(
            "select extraction_status, count(*) from articles group by 1"
        ).fetchall()
        counts = {status: n for status, n in rows}
        return {"all": sum(counts.values()), **counts}

    def checkpoint(self) -> None:
        """Write the WAL into the database file (DuckDB ``CHECKPOINT``)."""
        self.con.execute("checkpoint")

    def feed_ids(self) -> set[str]:
        """Every registered feed, active or removed."""
        return {r[0] for r in self.con.execute("select feed_id from feeds").fetchall()}

    def run_failures(self, run_id: str) -> list[dict]:
        """The feeds whose poll in ``run_id`` failed: url, outcome, http_status, error."""
        return self.rows(
            "select f.url, p.outcome, p.http_status, p.error from feed_polls p"
            " join feeds f using (feed_id)"
            " where p.run_id = ? and p.outcome not in ('ok', 'not_modified') order by f.url",
            [run_id],
        )

    def due_feeds(self, now: datetime, include_not_due: bool = False) -> list[DueFeed]:
        cond = "" if include_not_due else "and (next_poll_at is null or next_poll_at <= ?)"
        params = [] if include_not_due else [now]
        rows = self.con.execute(
            f"select feed_id, url, etag, last_modified, language, last_polled_at,"
            f" poll_interval_s from feeds"
            f" where active {cond} order by next_poll_at nulls first, feed_id",
            params,
        ).fetchall()
        return [DueFeed(*r) for r in rows]

    def due_pages(self, now: datetime) -> list[dict]:
        """The pages the fetch queue gives back to a cycle, as staged items (ITEM_SCHEMA):
        pending ones first, oldest first, then the retries that are due."""
        return self.rows(
            """
            select a.article_id, a.feed_id, a.url, a.canonical_url, a.guid, a.title, a.authors,
                a.feed_categories as categories, a.summary,
                case when a.extraction_status = 'feed_content' then a.text end as content,
                a.published_at, a.first_seen_at, a.language as feed_language,
                q.state as queue_state, q.attempts as fetch_attempts
            from page_fetches q join articles a using (article_id)
            where q.state in ('pending', 'retrying')
              and (q.next_attempt_at is null or q.next_attempt_at <= ?)
            order by q.state = 'retrying', q.first_queued_at, q.article_id
            """,
            [now],
        )

    def pending_pages(self) -> list[dict]:
        """Pages waiting in the fetch queue, per host: pending, retrying, the next attempt."""
        return self.rows(
            """
            select host, count(*) filter (state = 'pending') as pending,
                count(*) filter (state = 'retrying') as retrying,
                min(next_attempt_at) filter (state = 'retrying') as next_retry_at,
                arg_max(last_error, coalesce(last_attempt_at, first_queued_at)) as last_error
            from page_fetches where state in ('pending', 'retrying')
            group by host order by count(*) desc, host
            """
        )

    def known_article_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(set(ids))
        if not ids:
            return set()
        with _arrow(self.con, "candidate_ids", article_id=ids):
            rows = self.con.execute(
                "select article_id from articles"
                " where article_id in (select article_id from candidate_ids)"
            ).fetchall()
        return {r[0] for r in rows}

    # -- loading -----------------------------------------------------------------------------

    def is_run_loaded(self, run_id: str) -> bool:
        row = self.con.execute("select status from runs where run_id = ?", [run_id]).fetchone()
        return row is not None and row[0] == "loaded"

    def load_run(
        self, run: RunDir, *, poll_interval: float, max_backoff: float, trigger: str | None = None
    ) -> LoadResult:
        """Load one run's staged polls and articles in a single transaction (idempotent)."""
        if self.is_run_loaded(run.run_id):
            return LoadResult(run.run_id, already_loaded=True)
        polls = [str(p) for p in run.files("polls")]
        articles = [str(p) for p in run.files("articles")]
        info = run.info()
        started = info.get("started_at") or datetime.now(UTC).isoformat()
        now = datetime.now(UTC)
        con = self.con
        con.execute("begin")
        try:
            fault_point("load_begin")
            if polls:
                con.execute(
                    "create or replace temp table staged_polls as"
                    " select * from read_parquet(?, union_by_name = true)",
                    [polls],
                )
                self._add_missing_columns("staged_polls", STAGED_SINCE_006["polls"])
                self._apply_polls(poll_interval, max_backoff)
                fault_point("load_polls")
            if articles:
                con.execute(
                    "create or replace temp table staged_articles as"
                    " select * from read_parquet(?, union_by_name = true)"
                    " qualify row_number() over"
                    " (partition by article_id order by first_seen_at) = 1",
                    [articles],
                )
                self._add_missing_columns("staged_articles", STAGED_SINCE_006["articles"])
                inserted = con.execute(
                    """
                    insert into articles (
                        article_id, feed_id, run_id, url, canonical_url, final_url, guid, title,
                        authors, feed_categories, summary, published_at, first_seen_at, loaded_at,
                        language, site_name, text, word_count, extraction_status,
                        extraction_error, http_status, content_hash)
                    select article_id, feed_id, ?, url, canonical_url, final_url, guid, title,
                        authors, feed_categories, summary, published_at, first_seen_at, ?,
                        language, site_name, text, word_count, extraction_status,
                        extraction_error, http_status, content_hash
                    from staged_articles
                    on conflict do nothing
                    returning article_id, extraction_status
                    """,
                    [run.run_id, now],
                ).fetchall()
                upgraded = self._apply_requeued()
                self._record_fetches(now)
            else:
                inserted, upgraded = [], []
            fault_point("load_articles")
            new_ids = [aid for aid, _ in inserted]
            tag_rows = self._load_tags(run, new_ids + upgraded)
            fault_point("load_tags")
            stories = self._assign_stories(new_ids + upgraded)
            by_status: dict[str, int] = {}
            for _, status in inserted:
                by_status[status] = by_status.get(status, 0) + 1
            poll_counts = (
                con.execute(
                    f"select count(*), count(*) filter (outcome in {HEALTHY_OUTCOMES_SQL}),"
                    " coalesce(sum(items_new), 0) from staged_polls"
                ).fetchone()
                if polls
                else (0, 0, 0)
            )
            con.execute(
                """
                insert or replace into runs (run_id, started_at, finished_at, status, trigger,
                    feeds_polled, feeds_ok, feeds_failed, items_new, articles_loaded,
                    articles_ok, articles_feed_content, articles_failed, error, articles_upgraded)
                values (?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?, null, ?)
                """,
                [
                    run.run_id,
                    started,
                    now,
                    trigger or info.get("trigger"),
                    poll_counts[0],
                    poll_counts[1],
                    poll_counts[0] - poll_counts[1],
                    poll_counts[2],
                    len(inserted),
                    by_status.get("ok", 0),
                    by_status.get("feed_content", 0),
                    by_status.get("failed", 0),
                    len(upgraded),
                ],
            )
            fault_point("load_commit")
            con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._drop_temp("staged_polls", "staged_articles")
        fault_point("load_committed")
        return LoadResult(
            run.run_id,
            False,
            polls=poll_counts[0],
            articles_loaded=len(inserted),
            articles_upgraded=len(upgraded),
            by_status=by_status,
            tag_rows=tag_rows,
            stories_joined=stories,
        )

    def _add_missing_columns(self, table: str, columns: dict[str, str]) -> None:
        """A run staged by an older newsflow (a crash, then an upgrade) lacks the columns
        added since: they load as NULL (or their default) instead of failing the load."""
        for name, definition in columns.items():
            self.con.execute(f"alter table {table} add column if not exists {name} {definition}")

    def _apply_requeued(self) -> list[str]:
        """Inside the load: the staged rows of articles that are stored already (their pages
        came back from the fetch queue). A page that arrived upgrades its article in place,
        same ``article_id``, and loses its old tags and story bands (the load then writes the
        new ones); one that did not only updates the reason, and ``pending`` becomes ``failed``
        when it is final. Returns the upgraded ids."""
        con = self.con
        upgraded = [
            r[0]
            for r in con.execute(
                """
                update articles set
                    final_url = s.final_url, http_status = s.http_status,
                    title = coalesce(articles.title, s.title),
                    authors = case when len(articles.authors) > 0 then articles.authors
                                   else s.authors end,
                    published_at = coalesce(articles.published_at, s.published_at),
                    language = s.language, site_name = s.site_name, text = s.text,
                    word_count = s.word_count, extraction_status = s.extraction_status,
                    extraction_error = null, content_hash = s.content_hash,
                    story_id = null, fingerprint = null
                from staged_articles s
                where articles.article_id = s.article_id and s.requeued
                  and s.extraction_status = 'ok' and articles.extraction_status <> 'ok'
                returning articles.article_id
                """
            ).fetchall()
        ]
        con.execute(
            """
            update articles set
                extraction_status = s.extraction_status, extraction_error = s.extraction_error,
                http_status = coalesce(s.http_status, articles.http_status)
            from staged_articles s
            where articles.article_id = s.article_id and s.requeued
              and s.extraction_status <> 'ok' and articles.extraction_status <> 'ok'
            """
        )
        if upgraded:
            with _arrow(con, "upgraded_ids", article_id=upgraded):
                for table in (*TAG_TABLES.values(), "article_bands"):
                    con.execute(
                        f"delete from {table}"
                        " where article_id in (select article_id from upgraded_ids)"
                    )
        return upgraded

    def _record_fetches(self, now: datetime) -> None:
        """Inside the load: the frontier state of every page that did not arrive at its first
        attempt, and of every page that came back from the queue (``page_fetches``)."""
        self.con.execute(
            """
            insert or replace into page_fetches (article_id, feed_id, url, host, state,
                attempts, last_error, first_queued_at, last_attempt_at, next_attempt_at, done_at)
            select s.article_id, a.feed_id, s.url, s.host,
                case when a.extraction_status = 'ok' then 'done'
                     when s.fetch_state = 'retry' then 'retrying'
                     else s.fetch_state end,
                s.fetch_attempts,
                case when a.extraction_status = 'ok' then null else s.fetch_error end,
                coalesce(old.first_queued_at, ?),
                case when s.fetch_state = 'pending' then old.last_attempt_at else ? end,
                case when s.fetch_state in ('retry', 'pending') then s.next_attempt_at end,
                case when s.fetch_state in ('done', 'final') then ? end
            from staged_articles s
            join articles a using (article_id)
            left join page_fetches old using (article_id)
            where s.requeued or s.fetch_state <> 'done'
            """,
            [now, now, now],
        )

    def _assign_stories(self, article_ids: list[str]) -> int:
        """Fingerprint the articles this load inserted and give each a story_id (inside the
        load's transaction): near-identical texts share the story of the earliest one, already
        stored stories only grow. Returns how many joined a story with other articles."""
        from newsflow.enrich import stories

        if not article_ids:
            return 0
        with _arrow(self.con, "story_ids", article_id=article_ids):
            rows = self.con.execute(
                "select article_id, text, coalesce(published_at, first_seen_at)"
                " from staged_articles where article_id in (select article_id from story_ids)"
            ).fetchall()
        new = [
            {"article_id": aid, "signature": stories.signature(text), "seen_at": seen}
            for aid, text, seen in rows
        ]

        def lookup(keys: list[int]) -> list[dict]:
            if not keys:
                return []
            # Two steps: the band lookup names the few candidates, then only their rows are
            # read. (Joined in one statement, DuckDB hashed every article's 512-byte
            # fingerprint: a load into a 1M-article store took 1.1 GB more memory.)
            with _arrow(self.con, "wanted_bands", band_key=(keys, pa.int64())):
                candidates = [
                    r[0]
                    for r in self.con.execute(
                        "select distinct article_id from article_bands"
                        " where band_key in (select band_key from wanted_bands)"
                    ).fetchall()
                ]
            if not candidates:
                return []
            with _arrow(self.con, "candidate_stories", article_id=candidates):
                found = self.con.execute(
                    "select article_id, story_id, fingerprint,"
                    " coalesce(published_at, first_seen_at) from articles"
                    " where article_id in (select article_id from candidate_stories)"
                    " and story_id is not null"
                ).fetchall()
            return [
                {"article_id": r[0], "story_id": r[1], "signature": r[2], "seen_at": r[3]}
                for r in found
            ]

        assigned = stories.assign_stories(new, lookup)
        with _arrow(
            self.con,
            "story_updates",
            article_id=[item["article_id"] for item in new],
            story_id=[assigned[item["article_id"]] for item in new],
            fingerprint=([item["signature"] for item in new], pa.binary()),
        ):
            self.con.execute(
                "update articles set story_id = u.story_id, fingerprint = u.fingerprint"
                " from story_updates u where articles.article_id = u.article_id"
            )
        keys, owners = [], []
        for item in new:
            if item["signature"] is not None:
                for key in stories.band_keys(item["signature"]):
                    keys.append(key)
                    owners.append(item["article_id"])
        if keys:
            with _arrow(self.con, "new_bands", band_key=(keys, pa.int64()), article_id=owners):
                self.con.execute(
                    "insert into article_bands select band_key, article_id from new_bands"
                )
        return sum(1 for aid, story in assigned.items() if story != aid)

    def _load_tags(self, run: RunDir, article_ids: list[str]) -> dict[str, int]:
        """Insert the staged tag rows of the articles this load inserted (inside its transaction).

        Articles that were already stored keep the tags they have; re-tag them with retag."""
        counts = {}
        if not article_ids:
            return counts
        with _arrow(self.con, "inserted_ids", article_id=article_ids):
            self.con.execute(
                "create or replace temp table loaded_ids as select article_id from inserted_ids"
            )
        try:
            for kind, table in TAG_TABLES.items():
                files = [str(p) for p in run.files(kind)]
                if not files:
                    continue
                columns = ", ".join(TAG_COLUMNS[kind])
                inserted_rows = self.con.execute(
                    f"insert into {table} ({columns}) select {columns}"
                    f" from read_parquet(?, union_by_name = true)"
                    f" where article_id in (select article_id from loaded_ids)"
                    f" returning 1",
                    [files],
                ).fetchall()
                counts[kind] = len(inserted_rows)
        finally:
            self._drop_temp("loaded_ids")
        return counts

    # -- tags ----------------------------------------------------------------------------------

    def replace_tags(
        self, article_ids: Sequence[str], rows: dict[str, list[dict]], kinds: Sequence[str]
    ) -> dict[str, int]:
        """Replace the tag rows of ``kinds`` ('entities', 'topics') for these articles, in one
        transaction: only the rows of the taggers that produced ``rows`` are removed (by tagger
        name, any version), plus the status rows of those kinds. Returns rows removed per kind."""
        from newsflow.enrich.tag import SCHEMAS, tagger_name

        con = self.con
        ids = list(article_ids)
        removed: dict[str, int] = {}
        con.execute("begin")
        try:
            with _arrow(con, "retag_batch", article_id=ids):
                con.execute(
                    "create or replace temp table retag_ids as select article_id from retag_batch"
                )
            in_batch = "article_id in (select article_id from retag_ids)"
            for kind in kinds:
                names = sorted(
                    {
                        tagger_name(r["tagger"])
                        for r in rows.get("tagging", [])
                        if r["kind"] == kind and r["tagger"]
                    }
                )
                table = TAG_TABLES[kind]
                removed[kind] = len(
                    con.execute(
                        f"delete from {table} where {in_batch}"
                        f" and split_part(tagger, '/', 1) in (select unnest(?::varchar[]))"
                        f" returning 1",
                        [names],
                    ).fetchall()
                )
                con.execute(f"delete from article_tagging where {in_batch} and kind = ?", [kind])
            if "topics" in kinds:
                con.execute(f"delete from article_categories where {in_batch}")
            write = list(kinds) + ["tagging"] + (["categories"] if "topics" in kinds else [])
            for kind in write:
                kind_rows = rows.get(kind, [])
                if kind == "tagging":
                    kind_rows = [r for r in kind_rows if r["kind"] in kinds]
                if not kind_rows:
                    continue
                arrow = pa.Table.from_pylist(kind_rows, schema=SCHEMAS[kind])
                con.register("new_tag_rows", arrow)
                try:
                    columns = ", ".join(TAG_COLUMNS[kind])
                    con.execute(
                        f"insert into {TAG_TABLES[kind]} ({columns})"
                        f" select {columns} from new_tag_rows"
                    )
                finally:
                    con.unregister("new_tag_rows")
            con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._drop_temp("retag_ids")
        return removed

    def _taggable_where(
        self, since: datetime | None, untagged: Sequence[str] | None
    ) -> tuple[str, list]:
        conds, params = [], []
        if since is not None:
            conds.append("coalesce(a.published_at, a.first_seen_at) >= ?")
            params.append(since)
        if untagged:
            conds.append(
                "(select count(distinct t.kind) from article_tagging t"
                " where t.article_id = a.article_id and t.kind in (select unnest(?::varchar[])))"
                " < ?"
            )
            params += [list(untagged), len(untagged)]
        return (" and ".join(conds) or "true"), params

    def count_taggable(
        self, since: datetime | None = None, untagged: Sequence[str] | None = None
    ) -> int:
        where, params = self._taggable_where(since, untagged)
        sql = f"select count(*) from articles a where {where}"
        return self.con.execute(sql, params).fetchone()[0]

    def taggable_articles(
        self,
        since: datetime | None,
        after: str,
        limit: int,
        untagged: Sequence[str] | None = None,
    ) -> list[dict]:
        """The next ``limit`` articles (by article_id, after ``after``) to tag."""
        where, params = self._taggable_where(since, untagged)
        return self.rows(
            f"select a.article_id, a.title, a.text, a.language, a.feed_categories"
            f" from articles a where a.article_id > ? and {where}"
            f" order by a.article_id limit ?",
            [after, *params, limit],
        )

    def _apply_polls(self, poll_interval: float, max_backoff: float) -> None:
        con = self.con
        con.execute(
            """
            insert into feed_polls (poll_id, run_id, feed_id, url, polled_at, http_status, outcome,
                error, malformed, bytes, items_seen, items_new, duration_ms)
            select poll_id, run_id, feed_id, url, polled_at, http_status, outcome, error,
                malformed, bytes, items_seen, items_new, duration_ms
            from staged_polls
            on conflict do nothing
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

    # -- reading -----------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence | dict | None = None
    ) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql, params) if params else self.con.execute(sql)
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def rows(self, sql: str, params: Sequence | None = None) -> list[dict]:
        cols, rows = self.query(sql, params)
        return [dict(zip(cols, r)) for r in rows]

    def totals(self) -> dict[str, int]:
        """Rows in the store: articles, entity rows, topic rows."""
        row = self.con.execute(
            "select (select count(*) from articles), (select count(*) from article_entities),"
            " (select count(*) from article_topics)"
        ).fetchone()
        return {"articles": row[0], "entities": row[1], "topics": row[2]}

    def recent_runs(self, limit: int = 5) -> list[dict]:
        return self.rows(
            "select run_id, started_at, finished_at, status, feeds_polled, feeds_failed,"
            " items_new, articles_loaded, coalesce(articles_upgraded, 0) as articles_upgraded"
            " from runs order by started_at desc limit ?",
            [limit],
        )
