"""The lake's housekeeping and history: flushing inlined rows, merging files, expiring
snapshots, removing orphans; the snapshot a run committed; the store's size; copying a
DuckDB-file store in."""

from __future__ import annotations

from pathlib import Path

import duckdb

from newsflow.db import entities as entity_db
from newsflow.db import migrate as file_migration
from newsflow.db import places as places_db
from newsflow.db import search
from newsflow.db import stories as story_db
from newsflow.db.engine import StoreError, lake_of, one, transaction
from newsflow.db.load import LOAD_MESSAGE


def flush_inlined(con: duckdb.DuckDBPyConnection) -> None:
    """Flush the rows DuckLake keeps inlined in the catalog into Parquet files."""
    con.execute("call ducklake_flush_inlined_data(current_database())")


# Files this small are merged (the loads' files: a few hundred KB each); larger ones are left
# as they are. Without a bound DuckLake merges every file under its target size (512 MB) with
# its neighbours, so each day's few new files rewrote a table's last large file: at 1M
# articles a 211 MB file of texts, more than the maintenance's memory limit holds.
MERGE_BELOW_BYTES = 64 * 1024 * 1024


def maintain(con: duckdb.DuckDBPyConnection, retention_days: float) -> dict[str, int]:
    """The lake's housekeeping, in order: flush the rows inlined in the catalog into Parquet
    files, merge small adjacent files (``MERGE_BELOW_BYTES``), expire the snapshots older than
    ``retention_days`` (time travel reaches back that far), delete the files no snapshot needs
    any more, and delete orphaned files (written by a process killed before its commit).
    Counts of each.

    Orphans: ``con`` holds the writer lock, so with a SQLite catalog no other writer
    can be mid-commit and every unreferenced file is an orphan; a Postgres catalog may have
    writers on other machines, so only files older than an hour are taken."""
    db = "current_database()"

    def count(sql: str, *params) -> int:
        return len(con.execute(sql, list(params)).fetchall())

    flushed = sum(r[2] for r in con.execute(f"call ducklake_flush_inlined_data({db})").fetchall())
    merged = sum(
        r[2]
        for r in con.execute(
            f"call ducklake_merge_adjacent_files({db}, max_file_size => {MERGE_BELOW_BYTES})"
        ).fetchall()
    )
    expired = count(
        f"call ducklake_expire_snapshots({db}, older_than => now() - to_seconds(?))",
        retention_days * 86400.0,
    )
    removed = count(f"call ducklake_cleanup_old_files({db}, cleanup_all => true)")
    grace = 3600.0 if lake_of(con).is_postgres else 0.0
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


def migrate_from_file(con: duckdb.DuckDBPyConnection, source: Path) -> list[tuple[str, int, int]]:
    """Copy a DuckDB-file store into this (empty) lake, verify the row counts, and rebuild
    the search index (db/migrate.py). (table, source rows, lake rows) per table."""
    counts = file_migration.copy_file_store(con, Path(source))
    with transaction(con):
        entity_db.order_by_day(con)  # the copied rows' days (migration 013)
        story_db.order_bands_by_day(con)  # (migration 015)
        places_db.locate_all(con)  # places and entity ids for the copied rows
        entity_db.resolve_all(con)
    search.refresh(con)
    return counts


def snapshot_of_run(con: duckdb.DuckDBPyConnection, alias: str, run_id: str) -> int:
    """The snapshot the load of ``run_id`` committed (its data as it was after that run)."""
    row = con.execute(
        f"select snapshot_id from {alias}.snapshots()"
        " where commit_message = ? order by snapshot_id limit 1",
        [f"{LOAD_MESSAGE}{run_id}"],
    ).fetchone()
    if row is None:
        known = con.execute("select count(*) from runs where run_id = ?", [run_id])
        why = (
            "its load recorded no snapshot (it was loaded before newsflow kept them, or"
            " migrated), or maintenance expired it"
            if one(known)[0]
            else "no run has that id (see `newsflow status`)"
        )
        raise StoreError(f"run {run_id}: {why}")
    return row[0]


def size(con: duckdb.DuckDBPyConnection) -> dict:
    """Bytes of the catalog (a SQLite one) and of the data files, and their number."""
    files = data_files(con)
    catalog = lake_of(con).catalog_path
    return {
        "bytes": (catalog.stat().st_size if catalog and catalog.exists() else 0) + files[1],
        "catalog_bytes": catalog.stat().st_size if catalog and catalog.exists() else None,
        "data_files": files[0],
        "data_bytes": files[1],
    }


def data_files(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Data and delete files of the current snapshot, and their bytes."""
    files, size = one(
        con.execute(
            "select coalesce(sum(file_count + delete_file_count), 0),"
            " coalesce(sum(file_size_bytes + delete_file_size_bytes), 0)"
            " from ducklake_table_info(current_database())"
        )
    )
    return files, size
