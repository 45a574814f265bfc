"""The store: every database access of newsflow goes through this module.

A DuckLake (db/engine.py): readers see the last committed snapshot, one writer at a time.
Schema changes are numbered ``sql/migrations/NNN_name.sql`` files,
each applied in its own transaction and recorded in ``schema_migrations``. ``load_run`` is the
only writer of article data: it loads one run's staged files in one transaction, so a run lands
whole or not at all, and loading it twice changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from newsflow.config import LakeLocation, fault_point, load_settings
from newsflow.db import entities as entity_db
from newsflow.db import migrate as file_migration
from newsflow.db import places as places_db
from newsflow.db import queries, retag, search
from newsflow.db import stories as story_db
from newsflow.db.engine import (
    DiskFullError,
    Session,
    StoreError,
    arrow,
    drop_temp,
    migrations,
    rollback,
    sql_dir,
)
from newsflow.db.engine import (
    connect as open_session,
)
from newsflow.db.engine import (
    exists as engine_exists,
)
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.urls import feed_id as make_feed_id
from newsflow.rows import (
    STAGED_SINCE_006,
    STAGED_SINCE_010,
    STAGED_SINCE_011,
    STORED_ARTICLE_COLUMNS,
    TAG_SCHEMAS,
    TAG_TABLES,
    DueFeed,
    columns,
)
from newsflow.staging import RunDir, is_disk_full

LOGGER = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
HEALTHY_OUTCOMES = ("ok", "not_modified")
# The commit message of a load's snapshot: "newsflow load <run_id>" (``snapshot_of_run``).
LOAD_MESSAGE = "newsflow load "
HEALTHY_OUTCOMES_SQL = str(HEALTHY_OUTCOMES)  # ('ok', 'not_modified')
VIEWS_MARKER = "-- @views"
# A migration with this marker fills the derived tables (rebuild_derived) once it is applied.
DERIVED_MARKER = "-- @derived"
# A migration that asks for every stored entity row to be resolved afresh (db/entities.py).
ENTITIES_MARKER = "-- @entities"
# ... and for every stored article's places to be located afresh (db/places.py).
PLACES_MARKER = "-- @places"
# ... and for every stored entity row to get its article's day, in day order (migration 013).
ENTITY_DAYS_MARKER = "-- @entity-days"


@dataclass
class LoadResult:
    run_id: str
    already_loaded: bool
    polls: int = 0
    articles_loaded: int = 0
    by_status: dict | None = None
    tag_rows: dict | None = None  # rows inserted per tag kind
    stories_joined: int = 0  # articles of this load that share a story with another article
    snapshot_id: int | None = None  # the lake snapshot the load committed
    upgraded_ids: list[str] = field(default_factory=list)  # new texts for the search index
    articles_upgraded: int = 0  # stored articles whose page arrived at a later attempt


def connect(
    location: LakeLocation | Path | str | None = None, *, read_only: bool = True
) -> duckdb.DuckDBPyConnection | WritingConnection:
    """A DuckDB connection to the store, ready for analysis: the lake is its default catalog
    (``select * from articles`` reads it), the views and macros are there, time zone UTC.
    ``location`` defaults to the settings (``NEWSFLOW_CATALOG``, ``NEWSFLOW_DATA_PATH``,
    ``NEWSFLOW_DATA_DIR``), as the CLI's. Read-only by default: it never delays a load, and
    each statement (outside an explicit transaction) reads the snapshot committed last."""
    if location is None:
        location = load_settings().lake
    # On a DuckDB instance of its own: closing the connection ends it, attachment and all.
    store = Store(location, read_only=read_only, private=True)
    return store.con if read_only else WritingConnection(store)


class WritingConnection:
    """What ``connect(read_only=False)`` returns: the store's DuckDB connection (every method
    and attribute of it), holding the store's writer lock until ``close`` (or the end of a
    ``with`` block, or when nothing refers to it any more), when the lock goes with it."""

    def __init__(self, store: Store) -> None:
        self._store: Store | None = store

    def __getattr__(self, name: str):
        if self._store is None:
            raise duckdb.ConnectionException("Connection already closed!")
        return getattr(self._store.con, name)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> WritingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def store_exists(location: LakeLocation | Path | str) -> bool:
    """Whether the store at ``location`` has been created."""
    lake = location if isinstance(location, LakeLocation) else LakeLocation.of(location)
    return engine_exists(lake)


# What `newsflow sql` runs: queries (SELECT, WITH, FROM, VALUES, SHOW, DESCRIBE, SUMMARIZE,
# PRAGMA of a setting's value are all SELECT to DuckDB's parser), EXPLAIN of one, and CALL of a
# table function (e.g. ducklake_snapshots; against the read-only lake nothing can write).
_READING = {"SELECT", "EXPLAIN", "CALL"}


class ReadOnlyQuery(StoreError):
    """A statement given to ``newsflow sql`` would write or change something."""


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyQuery unless every statement of ``sql`` only reads; a syntax error is
    left to the run, which names its position."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.ParserException:
        return  # the run names the syntax error and its position
    except duckdb.Error as exc:  # a PRAGMA expands when parsed: what it would run is unknown
        first = " ".join(sql.split())[:60]
        raise ReadOnlyQuery(
            f"read-only: cannot tell whether {first!r} only reads ({type(exc).__name__}:"
            f" {str(exc)[:200]}); only queries run here"
        ) from None
    for statement in statements:
        kind = statement.type.name
        text = statement.query.strip()
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs what it explains
            inner = re.sub(r"(?is)^\s*explain\s+(analy[sz]e\s+)?", "", text)
            with contextlib.suppress(duckdb.Error):
                if any(s.type.name not in _READING - {"EXPLAIN"}
                       for s in duckdb.extract_statements(inner)):  # fmt: skip
                    kind = "EXPLAIN of " + duckdb.extract_statements(inner)[0].type.name
        if kind not in _READING:
            first = " ".join(text.split())[:60]
            raise ReadOnlyQuery(
                f"read-only: {first!r} is a {kind} statement, and only queries run here (no"
                " INSERT, DELETE, COPY ... TO, EXPORT, INSTALL, LOAD, ATTACH, SET, CREATE); to"
                " save a result, use --format csv|json > FILE or `newsflow export`"
            )


class Store:
    """A connection to the newsflow store. Use as a context manager.

    ``location`` is a ``LakeLocation`` or the path of a SQLite catalog (its data files beside
    it). A reading Store sees the snapshot committed last when it opened (or at each statement
    outside a transaction); a writing one holds the store's writer lock: ``release`` closes the
    connection (dropping the lock) while a long stage needs no database, ``reopen`` takes it
    again, waiting up to ``lock_wait``."""

    def __init__(
        self,
        location: LakeLocation | Path | str,
        *,
        read_only: bool = False,
        lock_wait: float = 30.0,
        snapshot: int | None = None,
        private: bool = False,
    ):
        self.lake = location if isinstance(location, LakeLocation) else LakeLocation.of(location)
        self.snapshot = snapshot
        self.private = private
        self.path = self.lake.catalog
        self.read_only = read_only
        self.lock_wait = lock_wait
        self._session: Session | None = None
        self.con = self._open(lock_wait)

    def _open(self, lock_wait: float) -> duckdb.DuckDBPyConnection:
        session = open_session(
            self.lake,
            read_only=self.read_only,
            lock_wait=lock_wait,
            snapshot=self.snapshot,
            private=self.private,
        )
        self._session = session
        con = self.con = session.con
        try:
            if self.read_only:
                self._check_schema()
            else:
                self.migrate()
        except duckdb.Error as exc:
            session.close()
            if is_disk_full(exc):
                raise DiskFullError(
                    f"out of disk space while opening database {self.path}: {exc}"
                ) from None
            raise
        except BaseException:
            session.close()
            raise
        self._released = False
        return con

    def release(self) -> None:
        """Close the connection, so another process can write, until ``reopen``."""
        if not self._released:
            self._session.close()
            self._released = True

    def reopen(self, lock_wait: float | None = None) -> None:
        """Open the connection again after ``release`` (a no-op when it is open), waiting up to
        ``lock_wait`` seconds (default: the Store's) for another process's lock."""
        if self._released:
            self._open(self.lock_wait if lock_wait is None else lock_wait)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._released = True

    def _rollback(self) -> None:
        rollback(self.con)

    def _drop_temp(self, *tables: str) -> None:
        drop_temp(self.con, *tables)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------------

    def schema_version(self) -> int:
        # The lake's own table list: duckdb_tables() would visit every attached database.
        exists = self.con.execute(
            "select count(*) from ducklake_table_info(current_database())"
            " where table_name = 'schema_migrations'"
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
        """Apply the migrations this store has not seen, all in one transaction: a process
        killed meanwhile leaves the store as it was (a new one: empty), never half-migrated.
        (Creating the lake takes about a second, long enough for a kill to land inside it.)"""
        self.con.execute("begin")
        try:
            self.con.execute(
                "create table if not exists schema_migrations (version integer not null,"
                " name varchar not null, applied_at timestamptz not null)"
            )
            applied = self._apply_pending()
            self.con.execute("commit")
        except Exception:
            self._rollback()
            raise
        for name in applied:
            LOGGER.info("applied migration %s", name)
        return applied

    def _apply_pending(self) -> list[str]:
        have = self.schema_version()
        applied = []
        pending = [(v, n, p.read_text(encoding="utf-8")) for v, n, p in migrations() if v > have]
        # The views are those of sql/views/ now, which may read tables of later migrations: they
        # are created with the last pending migration that asks for them.
        views_at = max((v for v, _, text in pending if VIEWS_MARKER in text), default=None)
        # The derived tables are computed by the views' macros: a migration that asks for them
        # before the views are (re)created leaves them to the migration that creates the views.
        derive = False
        for version, name, text in pending:
            self.con.execute(text)
            if ENTITY_DAYS_MARKER in text:
                entity_db.order_by_day(self.con)
            if PLACES_MARKER in text:
                places_db.locate_all(self.con)
            if ENTITIES_MARKER in text:
                entity_db.resolve_all(self.con)
            derive = derive or DERIVED_MARKER in text
            if version == views_at:
                self.create_views()
            if derive and (views_at is None or version >= views_at):
                self.rebuild_derived()
                derive = False
            self.con.execute(
                "insert into schema_migrations values (?, ?, ?)",
                [version, name, datetime.now(UTC)],
            )
            applied.append(f"{version:03d}_{name}")
        return applied

    def refresh_search_index(self, max_articles: int | None = None) -> float | None:
        """Rebuild the stale search shards and the derived tables (db/search.py); seconds
        taken, or None when the stale shards hold more than ``max_articles``."""
        return search.refresh(self.con, max_articles)

    def refresh_search_after_load(
        self, articles_loaded: int, max_articles: int | None = None, changed: Sequence[str] = ()
    ) -> float | None:
        """After a load: rebuild the search shards it touched (new articles, or the ``changed``
        texts of upgraded ones), or that miss articles (db/search.py). Seconds, or None."""
        return search.refresh_after_load(self.con, articles_loaded, max_articles, changed)

    def compact_search_index(self) -> list[str]:
        """Merge sealed search shards into segments (db/search.py); the files built."""
        return search.compact(self.con)

    def search_files(self) -> int:
        """How many files a search opens."""
        return self.con.execute(
            "select count(distinct coalesce(file, shard::varchar)) from search_index_state"
        ).fetchone()[0]

    def search(self, query: str, **filters) -> list[search.Hit]:
        """Articles ranked by BM25 for ``query`` (db/search.py; since=, entity=, limit=)."""
        return search.search(self.con, query, **filters)

    def search_index_stale(self) -> bool:
        return search.stale(self.con)

    def resolve_entities(self) -> dict[str, int]:
        """Re-resolve every entity over the whole corpus in one transaction (db/entities.py):
        short forms and acronyms join the full names the evidence now points to, merged ids
        redirect. Counts: keys, entities, merged, changed."""
        self.con.execute("begin")
        try:
            done = entity_db.resolve_all(self.con)
            self.con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        return done

    def rebuild_derived(self) -> None:
        search.rebuild_derived(self.con)

    def record_settings(self, settings) -> None:
        """Write the thresholds the views share with the rest of newsflow (table ``settings``:
        feed health's failures in a row and silence window) from ``settings``."""
        values = {
            "feed_failing_after": settings.feed_failing_after,
            "feed_silence_hours": settings.feed_silence_hours,
        }
        with arrow(
            self.con,
            "new_settings",
            setting=list(values),
            value=([float(v) for v in values.values()], pa.float64()),
        ):
            self.con.execute(
                "merge into settings using new_settings n on settings.name = n.setting"
                " when matched then update set value = n.value, updated_at = now()"
                " when not matched then insert values (n.setting, n.value, now())"
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

    def deactivate_unlisted(self, specs: Sequence[FeedSpec]) -> list[str]:
        """Deactivate the active feeds that the feed list ``specs`` does not name (their polls
        and articles stay); their URLs."""
        listed = [make_feed_id(s.url) for s in specs]
        now = datetime.now(UTC)
        self.con.execute("begin")
        try:
            urls = [
                r[0]
                for r in self.con.execute(
                    "select url from feeds where active and feed_id not in"
                    " (select unnest(?::varchar[])) order by url",
                    [listed],
                ).fetchall()
            ]
            if urls:
                self.con.execute(
                    "update feeds set active = false, removed_at = ?"
                    " where active and feed_id not in (select unnest(?::varchar[]))",
                    [now, listed],
                )
            self.con.execute("commit")
        except BaseException:
            rollback(self.con)
            raise
        return urls

    def remove_feed(self, url: str) -> bool:
        """Deactivate a feed (its polls and articles stay). False when no active feed has it."""
        fid = make_feed_id(url)
        changed = self.con.execute(
            "update feeds set active = false, removed_at = ? where feed_id = ? and active",
            [datetime.now(UTC), fid],
        ).fetchone()[0]
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

    def feed_check(self, now: datetime, failing_after: int, silence_hours: float) -> list[dict]:
        """Every active feed with its health at ``now`` (status, needs_attention, last outcome
        and error, polls, items), those that need attention first: the one definition of feed
        health (``sql/views/feed_health.sql``) with these thresholds."""
        return queries.dicts(
            self.con,
            "ops/feed_check",
            {"as_of": now, "failing_after": failing_after, "silence_hours": silence_hours},
        )

    def feed_status(self) -> tuple[list[str], list[tuple]]:
        """``newsflow status``'s feed table: each active feed's last poll, outcome, failures in a
        row, next poll, adaptive interval (minutes) and why, items, last error; then its pages
        of the last 7 days that could not be extracted (stored from the feed's text, or
        failed) and the commonest reason (e.g. robots.txt unreachable): a feed polls ``ok``
        while every one of its pages fails."""
        return self.query(
            """
            with pages as (
                select feed_id, count(*) as pages_failed, mode(extraction_error) as page_error
                from articles
                where extraction_status in ('feed_content', 'failed')
                  and first_seen_at >= now() - interval 7 day
                group by feed_id
            )
            select coalesce(f.title, f.url) as feed, f.last_polled_at, f.last_outcome,
                f.consecutive_failures as failures, f.next_poll_at,
                round(f.poll_interval_s / 60, 1) as every_min, f.poll_interval_reason as why,
                f.items_total as items, f.last_error,
                coalesce(p.pages_failed, 0) as pages_failed_7d, p.page_error
            from feeds f left join pages p using (feed_id)
            where f.active
            order by f.consecutive_failures desc, coalesce(p.pages_failed, 0) desc, f.title
            """
        )

    def articles_by_status(self) -> dict[str, int]:
        """Articles in all, and per extraction status."""
        rows = self.con.execute(
            "select extraction_status, count(*) from articles group by 1"
        ).fetchall()
        counts = {status: n for status, n in rows}
        return {"all": sum(counts.values()), **counts}

    def checkpoint(self) -> None:
        """Flush the rows DuckLake keeps inlined in the catalog into Parquet files."""
        self.con.execute("call ducklake_flush_inlined_data(current_database())")

    def maintain_lake(self, retention_days: float) -> dict[str, int]:
        """The lake's housekeeping, in order: flush the rows inlined in the catalog into Parquet
        files, merge small adjacent files, expire the snapshots older than ``retention_days``
        (time travel reaches back that far), delete the files no snapshot needs any more, and
        delete orphaned files (written by a process killed before its commit). Counts of each.

        Orphans: this Store holds the writer lock, so with a SQLite catalog no other writer
        can be mid-commit and every unreferenced file is an orphan; a Postgres catalog may have
        writers on other machines, so only files older than an hour are taken."""
        db = "current_database()"

        def count(sql: str, *params) -> int:
            return len(self.con.execute(sql, list(params)).fetchall())

        flushed = sum(
            r[2] for r in self.con.execute(f"call ducklake_flush_inlined_data({db})").fetchall()
        )
        merged = sum(
            r[2] for r in self.con.execute(f"call ducklake_merge_adjacent_files({db})").fetchall()
        )
        expired = count(
            f"call ducklake_expire_snapshots({db}, older_than => now() - to_seconds(?))",
            retention_days * 86400.0,
        )
        removed = count(f"call ducklake_cleanup_old_files({db}, cleanup_all => true)")
        grace = 3600.0 if self.lake.is_postgres else 0.0
        orphans = count(
            f"call ducklake_delete_orphaned_files({db}, older_than => now() - to_seconds(?))",
            grace,
        )
        return {
            "rows_flushed": flushed,
            "files_merged": merged,
            "snapshots_expired": expired,
            "files_removed": removed,
            "orphans_removed": orphans,
        }

    def migrate_from_file(self, source: Path) -> list[tuple[str, int, int]]:
        """Copy a DuckDB-file store into this (empty) lake, verify the row counts, and rebuild
        the search index (db/migrate.py). (table, source rows, lake rows) per table."""
        counts = file_migration.copy_file_store(self.con, Path(source))
        self.con.execute("begin")
        try:
            entity_db.order_by_day(self.con)  # the copied rows' days (migration 013)
            places_db.locate_all(self.con)  # places and entity ids for the copied rows
            entity_db.resolve_all(self.con)
            self.con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        search.refresh(self.con)
        return counts

    def current_snapshot(self) -> int:
        """The id of the lake snapshot this connection reads."""
        return self.con.execute(
            f"select id from ducklake_current_snapshot('{self._session.alias}')"
        ).fetchone()[0]

    def snapshot_of_run(self, run_id: str) -> int:
        """The snapshot the load of ``run_id`` committed (its data as it was after that run)."""
        row = self.con.execute(
            f"select snapshot_id from {self._session.alias}.snapshots()"
            " where commit_message = ? order by snapshot_id limit 1",
            [f"{LOAD_MESSAGE}{run_id}"],
        ).fetchone()
        if row is None:
            known = self.con.execute("select count(*) from runs where run_id = ?", [run_id])
            why = (
                "its load recorded no snapshot (it was loaded before newsflow kept them, or"
                " migrated), or maintenance expired it"
                if known.fetchone()[0]
                else "no run has that id (see `newsflow status`)"
            )
            raise StoreError(f"run {run_id}: {why}")
        return row[0]

    def size(self) -> dict:
        """Bytes of the catalog (a SQLite one) and of the data files, and their number."""
        files = self._data_files()
        catalog = self.lake.catalog_path
        return {
            "bytes": (catalog.stat().st_size if catalog and catalog.exists() else 0) + files[1],
            "catalog_bytes": catalog.stat().st_size if catalog and catalog.exists() else None,
            "data_files": files[0],
            "data_bytes": files[1],
        }

    def _data_files(self) -> tuple[int, int]:
        """Data and delete files of the current snapshot, and their bytes."""
        return self.con.execute(
            "select coalesce(sum(file_count + delete_file_count), 0),"
            " coalesce(sum(file_size_bytes + delete_file_size_bytes), 0)"
            " from ducklake_table_info(current_database())"
        ).fetchone()

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

    def waiting_feeds(self) -> dict:
        """Why active feeds were not polled: those simply not due yet, and those in backoff
        after failed polls (the last error of the one failing longest), each with the earliest
        time one is due again."""
        row = self.con.execute(
            """
            select count(*),
                count(*) filter (consecutive_failures = 0),
                min(next_poll_at) filter (consecutive_failures = 0),
                count(*) filter (consecutive_failures > 0),
                min(next_poll_at) filter (consecutive_failures > 0),
                arg_max(last_outcome || coalesce(': ' || last_error, ''), consecutive_failures)
                    filter (consecutive_failures > 0)
            from feeds where active
            """
        ).fetchone()
        keys = ("active", "not_due", "next_due_at", "backoff", "backoff_until", "backoff_error")
        return dict(zip(keys, row))

    def known_article_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(set(ids))
        if not ids:
            return set()
        with arrow(self.con, "candidate_ids", article_id=ids):
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
                self._add_missing_columns("staged_articles", STAGED_SINCE_010["articles"])
                stored = ", ".join(STORED_ARTICLE_COLUMNS)
                # The key, kept by this one writer: staged articles not stored yet.
                # The stored ones are looked up from the few staged ids (a semi join that
                # streams the store's ids), not by an anti join, whose hash table held all of
                # them (1M articles: 340 MB of a load's memory).
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
                    [run.run_id, now],
                )
                upgraded, unlinked = self._apply_requeued()
                self._record_fetches(now)
            else:
                inserted, upgraded, unlinked = [], [], set()
            fault_point("load_articles")
            new_ids = [aid for aid, _ in inserted]
            tag_rows = self._load_tags(run, new_ids + upgraded)
            places_db.locate(con, new_ids + upgraded)
            entity_db.assign(con, new_ids + upgraded, also=unlinked)
            places_db.link(con, new_ids + upgraded)
            fault_point("load_tags")
            stories = story_db.assign(self.con, new_ids + upgraded)
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
            con.execute("delete from runs where run_id = ?", [run.run_id])
            con.execute(
                """
                insert into runs (run_id, started_at, finished_at, status, trigger,
                    feeds_polled, feeds_ok, feeds_failed, items_new, articles_loaded,
                    articles_ok, articles_feed_content, articles_failed, articles_upgraded)
                values (?, ?, ?, 'loaded', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            extra = json.dumps({"run_id": run.run_id, "articles_loaded": len(inserted)})
            con.execute(
                f"call {self._session.alias}.set_commit_message(?, ?, extra_info => ?)",
                ["newsflow", f"{LOAD_MESSAGE}{run.run_id}", extra],
            )
            fault_point("load_commit")
            con.execute("commit")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._drop_temp("staged_polls", "staged_articles", "new_articles")
        fault_point("load_committed")
        return LoadResult(
            run.run_id,
            False,
            snapshot_id=self.current_snapshot(),
            polls=poll_counts[0],
            articles_loaded=len(inserted),
            articles_upgraded=len(upgraded),
            upgraded_ids=upgraded,
            by_status=by_status,
            tag_rows=tag_rows,
            stories_joined=stories,
        )

    def _add_missing_columns(self, table: str, columns: dict[str, str]) -> None:
        """A run staged by an older newsflow (a crash, then an upgrade) lacks the columns
        added since: they load as NULL (or their default) instead of failing the load."""
        for name, definition in columns.items():
            self.con.execute(f"alter table {table} add column if not exists {name} {definition}")

    def _apply_requeued(self) -> tuple[list[str], set[str]]:
        """Inside the load: the staged rows of articles that are stored already (their pages
        came back from the fetch queue). A page that arrived upgrades its article in place,
        same ``article_id``, and loses its old tags and story bands (the load then writes the
        new ones); one that did not only updates the reason, and ``pending`` becomes ``failed``
        when it is final. Returns the upgraded ids, and the entities their old rows named."""
        con = self.con
        # The updates below read every column of the rows they scan (an UPDATE on the lake
        # rewrites them): only rows first seen since the oldest requeued article are scanned,
        # and none when no staged row is requeued (at 1M articles, reading all texts cost
        # 340 MB of a load's memory).
        since = con.execute(
            "select min(a.first_seen_at) from staged_articles s join articles a using (article_id)"
            " where s.requeued"
        ).fetchone()[0]
        if since is None:
            return [], set()
        upgraded = [
            r[0]
            for r in con.execute(
                """
                select s.article_id from staged_articles s join articles using (article_id)
                where s.requeued and s.extraction_status = 'ok'
                  and articles.extraction_status <> 'ok'
                """
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
        unlinked: set[str] = set()
        if upgraded:
            with arrow(con, "upgraded_ids", article_id=upgraded):
                unlinked = {
                    r[0]
                    for r in con.execute(
                        "select distinct entity_id from article_entities where entity_id"
                        " is not null and article_id in (select article_id from upgraded_ids)"
                    ).fetchall()
                }
                for table in (*TAG_TABLES.values(), "article_bands"):
                    con.execute(
                        f"delete from {table}"
                        " where article_id in (select article_id from upgraded_ids)"
                    )
        return upgraded, unlinked

    def _record_fetches(self, now: datetime) -> None:
        """Inside the load: the frontier state of every page that did not arrive at its first
        attempt, and of every page that came back from the queue (``page_fetches``)."""
        self.con.execute(
            """
            create or replace temp table fetch_states as
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
        try:
            self.con.execute(
                "delete from page_fetches where article_id in (select article_id from fetch_states)"
            )
            self.con.execute(
                "insert into page_fetches (article_id, feed_id, url, host, state, attempts,"
                " last_error, first_queued_at, last_attempt_at, next_attempt_at, done_at)"
                " select * from fetch_states"
            )
        finally:
            self._drop_temp("fetch_states")

    def _load_tags(self, run: RunDir, article_ids: list[str]) -> dict[str, int]:
        """Insert the staged tag rows of the articles this load inserted (inside its transaction).

        Articles that were already stored keep the tags they have; re-tag them with retag."""
        counts = {}
        if not article_ids:
            return counts
        with arrow(self.con, "inserted_ids", article_id=article_ids):
            self.con.execute(
                "create or replace temp table loaded_ids as select article_id from inserted_ids"
            )
        try:
            for kind, table in TAG_TABLES.items():
                files = [str(p) for p in run.files(kind)]
                if not files:
                    continue
                cols = columns(TAG_SCHEMAS[kind])
                self.con.execute(
                    "create or replace temp table staged_tags as select *"
                    " from read_parquet(?, union_by_name = true)"
                    " where article_id in (select article_id from loaded_ids)",
                    [files],
                )
                self._add_missing_columns("staged_tags", STAGED_SINCE_011.get(kind, {}))
                if kind == "entities":  # with the article's day (migration 013)
                    names = list(TAG_SCHEMAS[kind].names)
                    counts[kind] = entity_db.insert_rows(self.con, "staged_tags", names)
                    continue
                counts[kind] = self.con.execute(
                    f"insert into {table} ({cols}) select {cols} from staged_tags"
                ).fetchone()[0]
        finally:
            self._drop_temp("loaded_ids", "staged_tags")
        return counts

    # -- tags ----------------------------------------------------------------------------------

    def replace_tags(
        self, article_ids: Sequence[str], rows: dict[str, list[dict]], kinds: Sequence[str]
    ) -> dict[str, int]:
        """Replace these articles' rows of ``kinds`` in one transaction (db/retag.py)."""
        return retag.replace_tags(self.con, article_ids, rows, kinds)

    def count_taggable(
        self, since: datetime | None = None, untagged: Sequence[str] | None = None
    ) -> int:
        return retag.count_taggable(self.con, since, untagged)

    def taggable_articles(
        self,
        since: datetime | None,
        after: str,
        limit: int,
        untagged: Sequence[str] | None = None,
    ) -> list[dict]:
        """The next ``limit`` articles (by article_id, after ``after``) to tag."""
        return retag.taggable_articles(self.con, since, after, limit, untagged)

    def _apply_polls(self, poll_interval: float, max_backoff: float) -> None:
        con = self.con
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

    # -- reading -----------------------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence | dict | None = None
    ) -> tuple[list[str], list[tuple]]:
        cur = self.con.execute(sql, params) if params else self.con.execute(sql)
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def read_query(
        self, sql: str, params: Sequence | dict | None = None
    ) -> tuple[list[str], list[tuple]]:
        """``query`` for SQL a person wrote (``newsflow sql``): only statements that read.
        The lake is attached read-only already; this also refuses what would write elsewhere
        or change the session (``COPY ... TO``, ``EXPORT``, ``INSTALL``/``LOAD``, ``ATTACH``,
        ``SET``, ``CREATE`` even of a temp table), with ReadOnlyQuery naming the statement."""
        check_read_only(sql)
        return self.query(sql, params)

    def rows(self, sql: str, params: Sequence | None = None) -> list[dict]:
        cols, rows = self.query(sql, params)
        return [dict(zip(cols, r)) for r in rows]

    def named(
        self, name: str, params: Sequence | dict | None = None
    ) -> tuple[list[str], list[tuple]]:
        """Columns and rows of the query ``sql/<name>.sql`` (db.queries)."""
        return self.query(queries.text(name), params)

    def article(self, article_id: str) -> dict | None:
        """The stored article (id, title, text, language, feed_categories, url), or None."""
        cols, rows = self.named("article/article", [article_id])
        return dict(zip(cols, rows[0])) if rows else None

    def article_tags(self, article_id: str) -> dict[str, tuple[list[str], list[tuple]]]:
        """An article's tags as stored: columns and rows of its entities, topics, publisher
        categories and tagging outcomes."""
        return {
            kind: self.named(f"article/{kind}", [article_id])
            for kind in ("entities", "topics", "categories", "tagging")
        }

    def newest_article_time(self) -> datetime | None:
        """When the newest article not dated in the future was published (else first seen)."""
        return self.named("article/newest")[1][0][0]

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
