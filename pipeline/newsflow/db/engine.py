"""Connecting to the store: the one place that knows the storage engine.

The store is a DuckLake: a SQL catalog (an embedded SQLite file by default, Postgres to span
machines) that records snapshots of Parquet data files. Readers attach it read-only and read
the last committed snapshot: a writer never blocks them, nor they it. Nothing in DuckLake
enforces keys, and two writers on a SQLite catalog lose commits, so writing takes a lock of
its own (a file lock beside a SQLite catalog; an advisory lock in a Postgres catalog's
database, which writers on every machine share): one writer at a time, waiting with backoff
and jitter while another holds it, naming it when the wait is over.

Every connection of a process is a cursor on one in-memory DuckDB instance that has the
extensions loaded (from their PyPI wheels, never downloaded): loading them costs 0.2 s, once.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.config import ConfigError, LakeLocation
from newsflow.db.catalog import (
    ADVISORY_KEY,
    AdvisoryWriterLock,
    DiskFullError,
    StoreError,
    WriterLock,
    exists,
    writer_lock,
)
from newsflow.locks import lock_retry_delays
from newsflow.staging import is_disk_full_at

LOGGER = logging.getLogger(__name__)

__all__ = [
    "ADVISORY_KEY", "AdvisoryWriterLock", "DiskFullError", "StoreError", "WriterLock",
    "exists", "writer_lock",
]  # fmt: skip

_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
# The extensions newsflow loads, by PyPI package; "sqlite" and "postgres" load under the
# internal names of their scanners.
EXTENSIONS = {"ducklake": "ducklake", "sqlite": "sqlite_scanner", "postgres": "postgres_scanner"}


def sql_dir() -> Path:
    """The ``sql/`` folder: inside the package in a wheel, at the checkout's top otherwise."""
    package = Path(__file__).resolve().parents[1]  # pipeline/newsflow
    for candidate in (package / "sql", package.parents[1] / "sql"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise StoreError("cannot find newsflow's sql/migrations folder")


def migrations() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), m.group(2), path))
    return found


# -- the process's DuckDB instance -------------------------------------------------------------

_instance: duckdb.DuckDBPyConnection | None = None
_instance_pid = 0
_instance_lock = threading.Lock()
# A session's connection carries the store it reads in a DuckDB variable of its own (variables
# are per connection): nothing outlives the connection, however it is closed.
LAKE_VARIABLE = "newsflow_lake"
_alias_numbers = itertools.count(1)  # aliases in the process's instance: lake, lake_2, ...


def _alias(n: int) -> str:
    return "lake" if n == 1 else f"lake_{n}"


def extension_file(package: str) -> Path:
    """The extension file of the wheel ``duckdb-extension-<package>`` for this duckdb."""
    module = f"duckdb_extension_{package}"
    try:
        file = __import__(module).__file__
        if file is None:  # a namespace package: not the wheel
            raise ImportError(module)
        root = Path(file).parent / "extensions"
    except ImportError:
        raise StoreError(
            f"the store needs the package duckdb-extension-{package}=={duckdb.__version__} "
            f"(pip install duckdb-extension-{package}=={duckdb.__version__})"
        ) from None
    path = root / f"v{duckdb.__version__}" / f"{package}.duckdb_extension"
    if not path.exists():
        found = sorted(p.parent.name for p in root.glob(f"*/{package}.duckdb_extension"))
        raise StoreError(
            f"duckdb-extension-{package} has no build for duckdb {duckdb.__version__} "
            f"(found {found}); install the matching version"
        )
    return path


def _extension_directory() -> Path:
    return Path(tempfile.gettempdir()) / f"newsflow-duckdb-{duckdb.__version__}-{os.getuid()}"


def _new_instance() -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "extension_directory": str(_extension_directory()),
    }
    return duckdb.connect(":memory:", config=config)


def instance() -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance (a new one after a fork), extensions ready."""
    global _instance, _instance_pid
    with _instance_lock:
        if _instance is None or _instance_pid != os.getpid():
            _instance = _new_instance()
            _instance_pid = os.getpid()
            load_extensions(_instance, "ducklake", "sqlite")
        return _instance


def load_extensions(con: duckdb.DuckDBPyConnection, *packages: str) -> None:
    """Install (from the wheels' files) and load extensions into ``con``'s instance, those it
    has not loaded yet."""
    loaded = {
        r[0]
        for r in con.execute(
            "select extension_name from duckdb_extensions() where loaded"
        ).fetchall()
    }
    for package in packages:
        if EXTENSIONS.get(package, package) in loaded or package in loaded:
            continue
        try:
            con.execute(f"install '{sql_string(str(extension_file(package)))}'")
            con.execute(f"load {EXTENSIONS.get(package, package)}")
        except duckdb.Error as exc:
            raise StoreError(f"cannot load DuckDB's {package} extension: {exc}") from None


def sql_string(value: str) -> str:
    return value.replace("'", "''")


def load_for(con: duckdb.DuckDBPyConnection, package: str) -> None:
    """Load an extension into the instance of ``con`` (a session's connection)."""
    with _instance_lock:
        load_extensions(con, package)


# -- sessions ----------------------------------------------------------------------------------


class Session:
    """An open connection to the store: a cursor whose default catalog is the lake, attached
    under ``alias``; a writing one holds the writer lock until ``close``."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        alias: str,
        lock: WriterLock | AdvisoryWriterLock | None,
        private: bool = False,
    ):
        self.con, self.alias, self.lock, self.private = con, alias, lock, private

    def close(self) -> None:
        try:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("rollback")
            with contextlib.suppress(duckdb.Error):
                self.con.execute("use memory")
                self.con.execute(f"detach {self.alias}")
            with contextlib.suppress(duckdb.Error):
                self.con.close()
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None


def lake_of(con: duckdb.DuckDBPyConnection) -> LakeLocation:
    """The store a session's connection reads (recorded on the connection by ``connect``)."""
    try:
        found = one(con.execute(f"select getvariable('{LAKE_VARIABLE}')"))[0]
    except duckdb.Error:
        found = None
    if not found:
        alias = one(con.execute("select current_database()"))[0]
        raise StoreError(f"connection is not on a newsflow store (catalog {alias})")
    return _lake_from_json(found)


def _lake_json(lake: LakeLocation) -> str:
    return json.dumps([lake.catalog, lake.data_path, str(lake.search_path), lake.search_bucket])


@functools.lru_cache(maxsize=64)
def _lake_from_json(text: str) -> LakeLocation:
    catalog, data_path, search_path, search_bucket = json.loads(text)
    return LakeLocation(catalog, data_path, Path(search_path), search_bucket)


_DATA_PATH_MISMATCH = re.compile(
    r'DATA_PATH parameter "(?P<ours>[^"]*)" does not match existing data path in the catalog'
    r' "(?P<theirs>[^"]*)"'
)


def _moved(lake: LakeLocation, exc: duckdb.Error) -> bool:
    """Whether the attach failed because the store was moved: the catalog records a data path
    that no longer exists, and the files are where the settings say (then it is attached with
    DuckLake's OVERRIDE_DATA_PATH; the files' paths are relative to the data path)."""
    m = _DATA_PATH_MISMATCH.search(str(exc))
    if not m or "://" in m["theirs"] or "://" in lake.data_path:
        return False
    theirs = Path(m["theirs"])  # a relative one depended on the cwd of its creator
    return (not theirs.is_absolute() or not theirs.exists()) and Path(lake.data_path).is_dir()


def _data_path_error(lake: LakeLocation, exc: duckdb.Error) -> StoreError | None:
    m = _DATA_PATH_MISMATCH.search(str(exc))
    if not m:
        return None
    return StoreError(
        f"the catalog {lake.shown} keeps its data files in {m['theirs']}, not in"
        f" {m['ours']}: set NEWSFLOW_DATA_PATH={m['theirs']} (or, if you moved the files, move"
        " them all and point NEWSFLOW_DATA_PATH at the new folder)"
    )


def _attach_sql(
    lake: LakeLocation,
    alias: str,
    read_only: bool,
    snapshot: int | None = None,
    override: bool = False,
) -> str:
    kind = (
        "postgres:" + lake.catalog[len("postgres:") :]
        if lake.is_postgres
        else (f"sqlite:{lake.catalog}")
    )
    options = [f"DATA_PATH '{sql_string(lake.data_path.rstrip('/') + '/')}'"]
    if read_only:
        options.append("READ_ONLY")
    if snapshot is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
    if override:
        options.append("OVERRIDE_DATA_PATH true")
    return f"attach 'ducklake:{sql_string(kind)}' as {alias} ({', '.join(options)})"


def _s3_secret_sql(lake: LakeLocation) -> str:
    """DuckDB's S3 secret for the bucket of ``lake``'s data path, from the variables every S3
    client reads: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN), AWS_REGION
    (or AWS_DEFAULT_REGION) and, for an S3-compatible service, AWS_ENDPOINT_URL_S3 (or
    AWS_ENDPOINT_URL), e.g. http://minio:9000 (then addressed by path, not by host name)."""
    env = os.environ
    missing = [v for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(v)]
    if missing:
        raise ConfigError(
            f"the store's data files are on object storage ({lake.data_path}): set "
            f"{' and '.join(missing)} (and AWS_ENDPOINT_URL for an S3-compatible service)"
        )
    bucket = lake.data_path[len("s3://") :].split("/", 1)[0]
    options: dict[str, str | bool] = {
        "key_id": env["AWS_ACCESS_KEY_ID"],
        "secret": env["AWS_SECRET_ACCESS_KEY"],
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "scope": f"s3://{bucket}",
    }
    if env.get("AWS_SESSION_TOKEN"):
        options["session_token"] = env["AWS_SESSION_TOKEN"]
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        m = re.fullmatch(r"(https?)://([^/\s]+)/?", endpoint.strip())
        if not m:
            raise ConfigError(
                f"AWS_ENDPOINT_URL {endpoint[:200]!r} is not http(s)://HOST[:PORT] (the"
                " S3-compatible service that holds the store's data files)"
            )
        options.update(endpoint=m[2], url_style="path", use_ssl=m[1] == "https")
    body = ", ".join(
        f"{k} " + (str(v).lower() if isinstance(v, bool) else f"'{sql_string(v)}'")
        for k, v in options.items()
    )
    name = "newsflow_s3_" + hashlib.sha1(bucket.encode()).hexdigest()[:12]
    return f"create or replace secret {name} (type s3, {body})"


def _prepare_catalog(lake: LakeLocation) -> None:
    """Before a writer's first attach: folders, and a SQLite catalog in WAL mode (otherwise a
    reader's open transaction makes the writer's commit fail with "database is locked")."""
    path = lake.catalog_path
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if "://" not in lake.data_path:
        Path(lake.data_path).mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            if db.execute("pragma journal_mode").fetchone()[0] != "wal":
                db.execute("pragma journal_mode=wal")
    except sqlite3.Error as exc:
        if is_disk_full_at(exc, path):
            raise DiskFullError(
                f"out of disk space ({os.strerror(errno.ENOSPC)}): cannot open catalog {path}:"
                f" {exc}"
            ) from None
        raise StoreError(f"cannot open catalog {path}: {exc}") from None


def _repair_wal_index(lake: LakeLocation, exc: duckdb.Error) -> bool:
    """A write that failed on a full disk can leave the SQLite catalog's shared-memory index
    (``-shm``) a few bytes long; a read-only connection cannot rebuild it ("unable to open
    database file"), a writing one does, without changing the database. True when it did."""
    path = lake.catalog_path
    if path is None:
        return False
    shm = Path(f"{path}-shm")
    if "unable to open database file" not in str(exc) or not shm.exists():
        return False
    if shm.stat().st_size >= 32768:
        return False
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            db.execute("pragma schema_version").fetchone()
    except sqlite3.Error:
        return False
    LOGGER.info("rebuilt the shared-memory index of catalog %s (left short by a full disk)", path)
    return True


def connect(
    lake: LakeLocation,
    *,
    read_only: bool,
    lock_wait: float,
    snapshot: int | None = None,
    private: bool = False,
) -> Session:
    """A session on the store ``lake``. A writing one first takes the writer lock, waiting up
    to ``lock_wait`` seconds while another process holds it; a reading one never waits, and
    reads the snapshot ``snapshot`` (time travel) when given, else the newest. ``private``:
    on a DuckDB instance of its own (0.2 s more), which closing the connection ends: what an
    analyst's ``newsflow.connect()`` gets, so that nothing outlives it."""
    if read_only and not exists(lake):
        raise StoreError(f"no database at {lake.shown}; run `newsflow ingest` to create it")
    # Credentials first: nothing is created for a store that cannot be reached.
    secret = _s3_secret_sql(lake) if lake.on_object_storage else None
    lock = None
    if not read_only:
        lock = writer_lock(lake)
        retries = lock_retry_delays(lock_wait)
        waiting = False
        while not lock.try_acquire():
            if not waiting and lock_wait >= 1:
                LOGGER.warning(
                    "database %s is locked by another process (a writer); waiting up to %gs",
                    lake.shown,
                    lock_wait,
                )
                waiting = True
            if next(retries, StopIteration) is StopIteration:
                raise StoreError(
                    f"database {lake.shown} is locked by another process, a writer (still "
                    f"after {lock_wait:g}s; {lock.shown})"
                )
    try:
        if not read_only:
            _prepare_catalog(lake)
        extra = (["postgres"] if lake.is_postgres else []) + (
            ["httpfs"] if lake.on_object_storage else []
        )
        if private:
            con = _new_instance()
            load_extensions(con, "ducklake", "sqlite", *extra)
            if secret:
                con.execute(secret)
            alias = "lake"
        else:
            root = instance()
            with _instance_lock:
                load_extensions(root, *extra)
                if secret:
                    root.execute(secret)
                attached = {
                    r[0]
                    for r in root.execute("select database_name from duckdb_databases()").fetchall()
                }
                # Never an alias another thread has picked and not attached yet.
                while (alias := _alias(next(_alias_numbers))) in attached:
                    pass
            con = root.cursor()
        try:
            probe = f"select id from ducklake_current_snapshot('{alias}')"
            try:
                try:
                    con.execute(_attach_sql(lake, alias, read_only, snapshot))
                except duckdb.Error as exc:
                    if not _moved(lake, exc):
                        raise
                    LOGGER.info("the store was moved: its data files are in %s", lake.data_path)
                    con.execute(_attach_sql(lake, alias, read_only, snapshot, override=True))
                con.execute(probe).fetchone()
            except duckdb.Error as exc:
                if not (read_only and _repair_wal_index(lake, exc)):
                    raise
                with contextlib.suppress(duckdb.Error):
                    con.execute(f"detach database if exists {alias}")
                con.execute(_attach_sql(lake, alias, read_only, snapshot))
                con.execute(probe).fetchone()
            con.execute(f"use {alias}")
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"set variable {LAKE_VARIABLE} = '{sql_string(_lake_json(lake))}'")
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"detach database if exists {alias}")
            con.close()
            raise
        return Session(con, alias, lock, private)
    except duckdb.Error as exc:
        if lock is not None:
            lock.release()
        if (mismatch := _data_path_error(lake, exc)) is not None:
            raise mismatch from None
        where = [p for p in (lake.catalog_path, lake.search_path) if p is not None]
        if is_disk_full_at(exc, *where):
            raise DiskFullError(
                f"out of disk space ({os.strerror(errno.ENOSPC)}): cannot open database"
                f" {lake.shown}: {exc}"
            ) from None
        raise StoreError(f"cannot open database {lake.shown}: {exc}") from None
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def one(cursor: Any) -> tuple[Any, ...]:
    """The row of a query that always returns one (a count, an aggregate, a variable)."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("a query that returns one row returned none")
    return tuple(row)


@contextlib.contextmanager
def arrow(con: duckdb.DuckDBPyConnection, name: str, **columns):
    """Columns (Python lists, or (list, pyarrow type)) as a registered Arrow table ``name``
    for the statement(s) in the block. A Python list bound as a parameter costs DuckDB's
    binding time per element (it tries to import pandas for each one), an Arrow table next to
    nothing (docs/performance.md, "Why the code reads as it does")."""
    arrays = {
        k: pa.array(v[0], type=v[1]) if isinstance(v, tuple) else pa.array(v, type=pa.string())
        for k, v in columns.items()
    }
    con.register(name, pa.table(arrays))
    try:
        yield name
    finally:
        con.unregister(name)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The block as one transaction on ``con``: committed when it ends, rolled back when it
    raises anything (an interrupt too), the error raised as it was. Every transaction of the
    database layer is one of these."""
    con.execute("begin")
    try:
        yield con
        con.execute("commit")
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back after a failed statement. A failed COMMIT (e.g. on a full disk) has already
    ended the transaction and a fatal error invalidates the connection: either way ROLLBACK
    fails too, and that error must not hide the one that caused it."""
    try:
        con.execute("rollback")
    except duckdb.Error as exc:
        LOGGER.debug("rollback: %s", exc)


def has_temp(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether this connection holds the temp table ``table`` (left by an earlier step)."""
    sql = "select count(*) from duckdb_tables() where temporary and table_name = ?"
    return bool(one(con.execute(sql, [table]))[0])


def drop_temp(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Drop these temp tables; on an invalidated connection the error is raised already."""
    for table in tables:
        try:
            con.execute(f"drop table if exists {table}")
        except duckdb.Error as exc:
            LOGGER.debug("drop %s: %s", table, exc)
