"""``newsflow migrate``: copy a database of the DuckDB-file store into the lake.

The source is opened read-only (it is never changed) and must be at the file store's last
schema (7, which any newsflow that wrote it since "one definition" has migrated it to). Every
table is copied in one transaction of the lake's writer, column by column where both have the
column, then the row counts of source and lake are compared table by table; a difference rolls
the copy back. The search index and the derived tables are then rebuilt from the lake.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import duckdb

from newsflow.db.engine import StoreError, one, sql_string, transaction

# The last schema version of the DuckDB-file store.
FILE_SCHEMA = 7
# Copied in this order; topic_taxonomy and settings are seeded by the lake's migrations and
# replaced by the source's rows. search_index_state is not copied: the index is rebuilt.
TABLES = (
    "topic_taxonomy",
    "settings",
    "feeds",
    "feed_polls",
    "runs",
    "articles",
    "article_entities",
    "article_topics",
    "article_categories",
    "article_tagging",
    "article_bands",
    "page_fetches",
    "entity_pairs",
)
SOURCE = "migrate_source"


def _columns(con: duckdb.DuckDBPyConnection, database: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select column_name from duckdb_columns() where database_name = ?"
            " and schema_name = 'main' and table_name = ? order by column_index",
            [database, table],
        ).fetchall()
    ]


def copy_file_store(con: duckdb.DuckDBPyConnection, source: Path) -> list[tuple[str, int, int]]:
    """Copy the DuckDB file ``source`` into the (empty) lake of the writing connection ``con``;
    returns (table, rows in the source, rows in the lake) per table."""
    if not source.is_file():
        raise StoreError(f"migrate: no DuckDB database at {source}")
    lake = one(con.execute("select current_database()"))[0]
    held = (
        one(con.execute("select count(*) from articles"))[0]
        + one(con.execute("select count(*) from feeds"))[0]
    )
    if held:
        raise StoreError(
            "migrate: the lake already holds feeds or articles; migrate into a new catalog"
            " (--catalog NEW.sqlite)"
        )
    try:
        con.execute(f"attach '{sql_string(str(source))}' as {SOURCE} (read_only)")
    except duckdb.Error as exc:
        raise StoreError(f"migrate: cannot open {source} as a DuckDB database: {exc}") from None
    try:
        tables = set(
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = ?", [SOURCE]
            ).fetchall()
        )
        version = (
            one(con.execute(f"select max(version) from {SOURCE}.schema_migrations"))[0]
            if "schema_migrations" in tables
            else None
        )
        if version != FILE_SCHEMA:
            raise StoreError(
                f"migrate: {source} is at schema version {version}, not {FILE_SCHEMA} (the last"
                " of the DuckDB-file store); open it once with newsflow 0.1 (`newsflow ingest`"
                " migrates it), then migrate"
            )
        counts = []
        with transaction(con):
            for table in TABLES:
                if table not in tables:
                    continue
                shared = [
                    c for c in _columns(con, SOURCE, table) if c in _columns(con, lake, table)
                ]
                cols = ", ".join(f'"{c}"' for c in shared)
                con.execute(f"delete from {table}")
                con.execute(
                    f"insert into {table} ({cols}) select {cols} from {SOURCE}.main.{table}"
                )
                have = one(con.execute(f"select count(*) from {SOURCE}.main.{table}"))[0]
                got = one(con.execute(f"select count(*) from {table}"))[0]
                counts.append((table, have, got))
            wrong = [c for c in counts if c[1] != c[2]]
            if wrong:
                raise StoreError(
                    "migrate: row counts differ, nothing was copied: "
                    + ", ".join(f"{t} {a} in the source, {b} in the lake" for t, a, b in wrong)
                )
        return counts
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {SOURCE}")
