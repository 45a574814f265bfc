"""The store: the one door to the database layer.

A DuckLake (db/engine.py): readers see the last committed snapshot, one writer at a time.
``Store`` opens a session (migrating the schema when it writes) and offers the database layer's
jobs as its methods, each the function of the module that does that job, given the session's
connection:

- db/schema.py: migrations and views;
- db/feeds.py: the feed registry, health and which feeds are due;
- db/load.py: the load, the only writer of article data, one run in one transaction;
- db/pages.py: the fetch queue;
- db/reads.py: queries, articles, totals, recent runs;
- db/lake.py: the lake's housekeeping and snapshots;
- db/search.py, db/entities.py, db/retag.py: full-text search, identity, re-tagging.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import duckdb

from newsflow.config import LakeLocation, load_settings
from newsflow.db import entities as entity_db
from newsflow.db import feeds as feed_db
from newsflow.db import lake, load, pages, reads, retag, schema
from newsflow.db import search as search_db
from newsflow.db.engine import DiskFullError, Session, StoreError, sql_string
from newsflow.db.engine import connect as open_session
from newsflow.db.engine import exists as engine_exists
from newsflow.db.load import HEALTHY_OUTCOMES, LOAD_MESSAGE, LoadResult
from newsflow.db.reads import ReadOnlyQuery, check_read_only
from newsflow.staging import RunDir, is_disk_full

__all__ = [
    "HEALTHY_OUTCOMES",
    "LOAD_MESSAGE",
    "LoadResult",
    "ReadOnlyQuery",
    "Store",
    "StoreError",
    "WritingConnection",
    "check_read_only",
    "connect",
    "store_exists",
]

P = ParamSpec("P")
R = TypeVar("R")


def _door(
    job: Callable[Concatenate[duckdb.DuckDBPyConnection, P], R],
) -> Callable[Concatenate[Store, P], R]:
    """A Store method that runs ``job`` (a database layer function) on the store's session."""

    def method(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        return job(self.con, *args, **kwargs)

    method.__name__, method.__doc__ = job.__name__, job.__doc__
    return method


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

    def __getattr__(self, name: str) -> Any:
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
        with contextlib.suppress(Exception):  # at interpreter exit, modules may be gone
            self.close()


def store_exists(location: LakeLocation | Path | str) -> bool:
    """Whether the store at ``location`` has been created."""
    lake = location if isinstance(location, LakeLocation) else LakeLocation.of(location)
    return engine_exists(lake)


class Store:
    """A session on the newsflow store. Use as a context manager.

    ``location`` is a ``LakeLocation`` or the path of a SQLite catalog (its data files beside
    it). A reading Store sees the snapshot committed last when it opened (or at each statement
    outside a transaction); a writing one holds the store's writer lock: ``release`` closes the
    connection (dropping the lock) while a long stage needs no database, ``reopen`` takes it
    again, waiting up to ``lock_wait``."""

    con: duckdb.DuckDBPyConnection

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
        self._released = True
        self._open(lock_wait)

    def _open(self, lock_wait: float) -> None:
        session = open_session(
            self.lake,
            read_only=self.read_only,
            lock_wait=lock_wait,
            snapshot=self.snapshot,
            private=self.private,
        )
        self._session = session
        self.con = session.con
        try:
            if self.read_only:
                schema.check_schema(self.con)
            else:
                schema.migrate(self.con)
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

    @property
    def alias(self) -> str:
        """The lake's name in this session (its snapshots' functions are under it)."""
        assert self._session is not None
        return self._session.alias

    def release(self) -> None:
        """Close the connection, so another process can write, until ``reopen``."""
        if not self._released and self._session is not None:
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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema (db/schema.py) ----------------------------------------------------------------

    schema_version = _door(schema.schema_version)
    migrate = _door(schema.migrate)
    create_views = _door(schema.create_views)

    # -- feed registry (db/feeds.py) ------------------------------------------------------------

    upsert_feeds = _door(feed_db.upsert_feeds)
    deactivate_unlisted = _door(feed_db.deactivate_unlisted)
    remove_feed = _door(feed_db.remove_feed)
    feeds = _door(feed_db.listed)
    active_feed_count = _door(feed_db.active_feed_count)
    feed_ids = _door(feed_db.feed_ids)
    feed_check = _door(feed_db.feed_check)
    feed_status = _door(feed_db.feed_status)
    due_feeds = _door(feed_db.due_feeds)
    waiting_feeds = _door(feed_db.waiting_feeds)
    record_settings = _door(feed_db.record_settings)

    # -- the load (db/load.py) and the fetch queue (db/pages.py) -------------------------------

    is_run_loaded = _door(load.is_run_loaded)

    def load_run(
        self, run: RunDir, *, poll_interval: float, max_backoff: float, trigger: str | None = None
    ) -> LoadResult:
        """Load one run's staged polls and articles in a single transaction (idempotent); a
        run staged in a bucket is read from a local copy."""
        with run.on_local_disk() as local:
            return load.load_run(
                self.con,
                self.alias,
                local,
                poll_interval=poll_interval,
                max_backoff=max_backoff,
                trigger=trigger,
            )

    due_pages = _door(pages.due_pages)
    pending_pages = _door(pages.pending_pages)
    known_article_ids = _door(pages.known_article_ids)

    # -- tags, identity, search (db/retag.py, db/entities.py, db/search.py) ---------------------

    replace_tags = _door(retag.replace_tags)
    count_taggable = _door(retag.count_taggable)
    taggable_articles = _door(retag.taggable_articles)

    def resolve_entities(self) -> dict[str, int]:
        """Re-resolve every entity over the whole corpus (db/entities.py), in steps that each
        commit, so that a pass stopped midway is continued by the next: short forms and
        acronyms join the full names the evidence now points to, merged ids redirect.
        Counts: keys, entities, merged, changed."""
        return entity_db.resolve_in_steps(self.con)

    def limit_memory(self, limit: str) -> None:
        """Bound DuckDB's memory (a size, "1GB"): past it, it spills to a temp folder of this
        process's (not the working directory's ``.tmp``; DuckDB removes it when it ends). Only
        on a store opened ``private=True``: the limit is its DuckDB instance's, which ends with
        it (the shared instance serves the process's other stores)."""
        if not self.private:
            raise StoreError("a memory limit needs a store on a DuckDB instance of its own")
        spill = Path(tempfile.gettempdir()) / f"newsflow-duckdb-spill-{os.getpid()}"
        self.con.execute(f"set temp_directory = '{sql_string(str(spill))}'")
        self.con.execute(f"set memory_limit = '{sql_string(limit)}'")

    refresh_search_index = _door(search_db.refresh)
    refresh_search_after_load = _door(search_db.refresh_after_load)
    compact_search_index = _door(search_db.compact)
    search_files = _door(search_db.files_opened)
    search = _door(search_db.search)
    search_index_stale = _door(search_db.stale)
    rebuild_derived = _door(search_db.rebuild_derived)

    # -- the lake (db/lake.py) ------------------------------------------------------------------

    flush_inlined = _door(lake.flush_inlined)
    maintain_lake = _door(lake.maintain)
    migrate_from_file = _door(lake.migrate_from_file)
    size = _door(lake.size)

    def current_snapshot(self) -> int:
        """The id of the lake snapshot this connection reads."""
        return load.current_snapshot(self.con, self.alias)

    def snapshot_of_run(self, run_id: str) -> int:
        """The snapshot the load of ``run_id`` committed (its data as it was after that run)."""
        return lake.snapshot_of_run(self.con, self.alias, run_id)

    # -- reading (db/reads.py) ------------------------------------------------------------------

    query = _door(reads.query)
    read_query = _door(reads.read_query)
    rows = _door(reads.rows)
    named = _door(reads.named)
    article = _door(reads.article)
    article_tags = _door(reads.article_tags)
    newest_article_time = _door(reads.newest_article_time)
    totals = _door(reads.totals)
    recent_runs = _door(reads.recent_runs)
    articles_by_status = _door(reads.articles_by_status)
    run_failures = _door(reads.run_failures)
