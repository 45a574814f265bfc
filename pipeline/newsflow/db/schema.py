"""The store's schema: numbered ``sql/migrations/NNN_name.sql`` files, all pending ones applied
in one transaction and recorded in ``schema_migrations``; the analyst views of ``sql/views/``.

A migration's text may carry markers that ask for work only Python does once it is applied."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import duckdb

from newsflow.db import entities as entity_db
from newsflow.db import entity_counts, search
from newsflow.db import places as places_db
from newsflow.db import stories as story_db
from newsflow.db.engine import StoreError, lake_of, migrations, one, sql_dir, transaction

LOGGER = logging.getLogger(__name__)

VIEWS_MARKER = "-- @views"
# A migration with this marker fills the derived tables (rebuild_derived) once it is applied:
# all of them, or those it names ("-- @derived source_coverage_all").
DERIVED_MARKER = re.compile(r"^-- @derived(?: +(\w+(?: +\w+)*))? *$", re.M)
# A migration that asks for every stored entity row to be resolved afresh (db/entities.py).
ENTITIES_MARKER = "-- @entities"
# ... and for every stored article's places to be located afresh (db/places.py).
PLACES_MARKER = "-- @places"
# ... and for every stored entity row to get its article's day, in day order (migration 013).
ENTITY_DAYS_MARKER = "-- @entity-days"
# ... and for every key's counts to be counted afresh (migration 015).
ENTITY_COUNTS_MARKER = "-- @entity-counts"
# ... and for every story band row to get its article's day, in day order (migration 015).
BAND_DAYS_MARKER = "-- @band-days"


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    # The lake's own table list: duckdb_tables() would visit every attached database.
    exists = one(
        con.execute(
            "select count(*) from ducklake_table_info(current_database())"
            " where table_name = 'schema_migrations'"
        )
    )[0]
    if not exists:
        return 0
    return one(con.execute("select coalesce(max(version), 0) from schema_migrations"))[0]


def check_schema(con: duckdb.DuckDBPyConnection) -> None:
    have, want = schema_version(con), max(v for v, _, _ in migrations())
    if have < want:
        raise StoreError(
            f"database {lake_of(con).catalog} is at schema version {have}, this newsflow"
            f" needs {want}; run a writing command such as `newsflow ingest` to migrate it"
        )


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations this store has not seen, all in one transaction: a process
    killed meanwhile leaves the store as it was (a new one: empty), never half-migrated.
    (Creating the lake takes about a second, long enough for a kill to land inside it.)"""
    with transaction(con):
        con.execute(
            "create table if not exists schema_migrations (version integer not null,"
            " name varchar not null, applied_at timestamptz not null)"
        )
        applied = apply_pending(con)
    for name in applied:
        LOGGER.info("applied migration %s", name)
    return applied


def apply_pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    have = schema_version(con)
    applied = []
    pending = [(v, n, p.read_text(encoding="utf-8")) for v, n, p in migrations() if v > have]
    # The views are those of sql/views/ now, which may read tables of later migrations: they
    # are created with the last pending migration that asks for them.
    views_at = max((v for v, _, text in pending if VIEWS_MARKER in text), default=None)
    # The derived tables are computed by the views' macros: a migration that asks for them
    # before the views are (re)created leaves them to the migration that creates the views.
    derive: set[str] | None = set()  # the derived tables to fill; None: all
    for version, name, text in pending:
        con.execute(text)
        if ENTITY_DAYS_MARKER in text:
            entity_db.order_by_day(con)
        if PLACES_MARKER in text:
            places_db.locate_all(con)
        if ENTITIES_MARKER in text:
            entity_db.resolve_all(con)
        if ENTITY_COUNTS_MARKER in text:
            entity_counts.count_keys(con)
        if BAND_DAYS_MARKER in text:
            story_db.order_bands_by_day(con)
        for marker in DERIVED_MARKER.finditer(text):
            names = marker.group(1)
            derive = None if derive is None or not names else derive | set(names.split())
        if version == views_at:
            create_views(con)
        if (derive is None or derive) and (views_at is None or version >= views_at):
            search.rebuild_derived(con, only=derive)
            derive = set()
        con.execute(
            "insert into schema_migrations values (?, ?, ?)",
            [version, name, datetime.now(UTC)],
        )
        applied.append(f"{version:03d}_{name}")
    return applied


def create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create the analyst views of ``sql/views/``; a migration with the ``@views``
    marker calls this, so a change to the views ships as a new migration."""
    names = []
    for path in sorted((sql_dir() / "views").glob("*.sql")):
        con.execute(path.read_text(encoding="utf-8"))
        names.append(path.stem)
    return names
