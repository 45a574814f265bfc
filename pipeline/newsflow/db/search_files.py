"""Where the full-text index's files are: a folder (beside the catalog, or one every machine
mounts), or a bucket with a cache on each machine.

In a bucket (``NEWSFLOW_SEARCH_PATH=s3://BUCKET/FOLDER``, for machines that share no folder)
every file is stored under a name that says which build it is, e.g.
``shard-v5-00003.1765135999123456.duckdb`` (the microseconds of ``search_index_state.built_at``
for that file), so an object is never rewritten. The process that builds index files uploads
them before the lake names them (db/search_index.py's ``_install``), keeping its own copy in its
cache; a search on any machine reads the lake's state, copies into this machine's cache
(``LakeLocation.search_path``) the files it does not have yet, and attaches the local copies.
So a sealed shard or segment is downloaded once per machine, and the last shard, rebuilt by
each load, once per load that changed it. Figures: docs/performance.md, "Search on a cluster".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsflow.config import LakeLocation
from newsflow.db.catalog import StoreError
from newsflow.staging import StagedPath

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SearchUnavailable(StoreError):
    """The fts extension cannot be loaded or there is no index; the message says how to fix it."""


def stored_name(lake: LakeLocation, name: str, built_at: datetime | None) -> str:
    """The name a file of the index (``name``, as ``search_index_state.file`` has it) is
    stored under: itself in a folder; with its build's time in a bucket."""
    if not lake.search_bucket or built_at is None:
        return name
    if built_at.tzinfo is None:
        built_at = built_at.replace(tzinfo=UTC)
    micros = (built_at - _EPOCH) // timedelta(microseconds=1)
    return f"{name.removesuffix('.duckdb')}.{micros}.duckdb"


def _bucket(lake: LakeLocation) -> StagedPath:
    return StagedPath(lake.search_bucket)


def present(lake: LakeLocation) -> set[str]:
    """The stored names of the index files there are: in the bucket, or in the folder."""
    if lake.search_bucket:
        return {p.name for p in _bucket(lake).glob("*.duckdb")}
    return {p.name for p in lake.search_path.glob("*.duckdb") if not p.name.startswith(".")}


def install(lake: LakeLocation, built: Mapping[str, Path], built_at: datetime) -> None:
    """Put freshly built files (``name`` → their temporary path beside the folder) where
    searches find them: renamed into the folder (a search holding an old file keeps reading
    it); in a bucket, uploaded first, then kept in this machine's cache."""
    folder = lake.search_path
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in built.items():
        stored = stored_name(lake, name, built_at)
        if lake.search_bucket:
            (_bucket(lake) / stored).upload(path)
        os.replace(path, folder / stored)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)


def remove_others(lake: LakeLocation, keep: set[str]) -> None:
    """Delete the index files whose stored name is not in ``keep`` (replaced, merged, of an
    older version, or left by a build killed before the lake named it)."""
    _remove_local(lake.search_path, keep)
    if lake.search_bucket:
        for stale in _bucket(lake).glob("*.duckdb"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)


def local_files(lake: LakeLocation, files: Mapping[str, datetime | None]) -> dict[str, Path]:
    """The local copy of each index file a search reads (``name`` → its build time, from the
    lake's state): the folder's files; in a bucket, this machine's cache, with what it lacks
    copied in first. A file gone from the bucket (replaced since the state was read) is left
    out; a bucket that cannot be read is a SearchUnavailable naming it."""
    folder = lake.search_path
    if not lake.search_bucket:
        return {n: folder / n for n in files if (folder / n).exists()}
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    wanted = {name: stored_name(lake, name, built) for name, built in files.items()}
    copied = False
    for name, stored in wanted.items():
        local = folder / stored
        if not local.exists():
            source = _bucket(lake) / stored
            try:
                source.download(local)
            except OSError as exc:
                try:
                    gone = not source.exists()
                except OSError:
                    gone = False
                if gone:
                    continue
                raise SearchUnavailable(
                    f"the search index's file {source} cannot be read: {exc}"
                ) from None
            copied = True
        found[name] = local
    if copied:  # the cache keeps the files of the state it last read, not every build
        _remove_local(folder, set(wanted.values()))
    return found


def _remove_local(folder: Path, keep: set[str]) -> None:
    """Delete the index files in ``folder`` not named in ``keep`` (not the temporary files of
    builds and copies in progress, whose names start with a dot)."""
    for old in folder.glob("*.duckdb"):
        if old.name not in keep and not old.name.startswith("."):
            old.unlink(missing_ok=True)
