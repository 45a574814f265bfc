"""The catalog's side of a store: whether it holds a lake, and the one-writer lock.

A SQLite catalog is a file: the lake exists once DuckLake's tables are in it, and its writers
take a file lock beside it. A Postgres catalog is a database that writers on many machines
share: the lake exists once DuckLake's tables are in it, and its writers take an advisory lock
in it. Errors of the store are defined here, below every module that raises them.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from typing import Any

from newsflow.config import POSTGRES_PREFIX, LakeLocation
from newsflow.locks import FileLock


class StoreError(RuntimeError):
    """The store cannot be used (missing, locked, too new, ...); the message says why."""


class DiskFullError(StoreError):
    """A write failed for want of space (no space left, file size limit, quota)."""


def exists(lake: LakeLocation) -> bool:
    """Whether the store has been created: its catalog holds DuckLake's tables."""
    path = lake.catalog_path
    if path is None:
        return _postgres_catalog_exists(lake)
    if not path.is_file() or not path.stat().st_size:
        return False
    try:  # a writer killed before its first commit leaves a catalog file with no lake in it
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            return bool(
                db.execute(
                    "select count(*) from sqlite_master where name = 'ducklake_metadata'"
                ).fetchone()[0]
            )
    except sqlite3.Error:
        return True  # not a SQLite file: opening it says what it is


def _postgres_catalog_exists(lake: LakeLocation) -> bool:
    """Whether the Postgres catalog's database holds a lake (a new database does not, until
    the first writer creates it); True when the database cannot be asked, so that opening the
    store says what is wrong."""
    import psycopg

    try:
        with psycopg.connect(lake.catalog[len(POSTGRES_PREFIX) :], connect_timeout=10) as con:
            row = con.execute(
                "select count(*) from information_schema.tables"
                " where table_name = 'ducklake_metadata'"
            ).fetchone()
    except psycopg.Error:
        return True
    return bool(row and row[0])


class WriterLock(FileLock):
    """The one-writer lock of a store on a SQLite catalog: ``flock`` on a file beside the
    catalog, dropped by the kernel however its holder dies."""

    def __init__(self, lake: LakeLocation):
        base = lake.catalog_path or lake.search_path
        super().__init__(base.parent / f"{base.name}.lock")
        self.shown = f"its lock file is {self.path}"


# The key of the writer's advisory lock in a Postgres catalog's database (the lake is the
# database, so one constant serves every store): the first 8 bytes of sha256("newsflow.writer").
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"newsflow.writer").digest()[:8], "big", signed=True)


class AdvisoryWriterLock:
    """The one-writer lock of a store on a Postgres catalog, for writers on any number of
    machines: a session-level advisory lock in the catalog's database, held by a connection of
    its own. The server drops it when that connection ends, however the holder dies (TCP
    keepalives find a machine that vanished within about a minute)."""

    def __init__(self, lake: LakeLocation):
        self.conninfo = lake.catalog[len(POSTGRES_PREFIX) :]
        self.shown = f"it holds advisory lock {ADVISORY_KEY} in the catalog's database"
        self._con: Any = None  # a psycopg connection while the lock is held

    def try_acquire(self) -> bool:
        import psycopg

        try:
            con = psycopg.connect(
                self.conninfo, autocommit=True, connect_timeout=10, keepalives=1,
                keepalives_idle=20, keepalives_interval=10, keepalives_count=3,
                application_name="newsflow writer",
            )  # fmt: skip
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot reach the Postgres catalog to take the writer lock: {exc}"
            ) from None
        try:
            row = con.execute("select pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()
            got = bool(row and row[0])
        except BaseException:
            con.close()
            raise
        if not got:
            con.close()
            return False
        self._con = con
        return True

    def release(self) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):
                self._con.close()  # the server drops the session's advisory locks
            self._con = None


def writer_lock(lake: LakeLocation) -> WriterLock | AdvisoryWriterLock:
    return AdvisoryWriterLock(lake) if lake.is_postgres else WriterLock(lake)
