"""Staged files: the Parquet hand-off between stages, under one directory per run.

    <data_dir>/runs/<database name>/<run_id>/
        run.json                 who started the run and when
        polls/<batch>.parquet    one row per feed poll, with the feed's new polling state
        items/<batch>.parquet    items that were new when their feed was polled
        articles/<batch>.parquet fetched and extracted articles, ready to load
        entities/, topics/, categories/, tagging/<batch>.parquet
                                 the tag rows of an articles batch; tagging/ is written last,
                                 so its presence marks the batch as tagged

Every file is written to a temporary name and renamed, so a reader sees a whole file or none
(a write that fails, e.g. on a full disk, removes its temporary file). Only ``store.load_run``
turns these files into database rows. A run directory without ``polls/`` files never finished
polling and is discarded by the next cycle; one with them is completed and loaded.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class RunDir:
    """The staged files of one run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, runs_dir: Path, trigger: str, run_id: str | None = None) -> RunDir:
        now = datetime.now(UTC)
        run = cls(Path(runs_dir) / (run_id or new_run_id(now)))
        for sub in ("polls", "items", "articles"):
            (run.path / sub).mkdir(parents=True, exist_ok=True)
        if not (run.path / "run.json").exists():
            _write_bytes(
                run.path / "run.json",
                json.dumps({"started_at": now.isoformat(), "trigger": trigger}).encode(),
            )
        return run

    def info(self) -> dict:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError):
            return {}

    def files(self, kind: str) -> list[Path]:
        return sorted((self.path / kind).glob("*.parquet"))

    def write(self, kind: str, batch: str, rows: list[dict], schema: pa.Schema) -> Path:
        target = self.path / kind / f"{batch}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(rows, schema=schema)
        _write_whole(target, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
        return target

    def read(self, kind: str, schema: pa.Schema) -> list[dict]:
        rows: list[dict] = []
        for path in self.files(kind):
            rows.extend(pq.read_table(path, schema=schema).to_pylist())
        return rows

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def pending_runs(runs_dir: Path) -> list[RunDir]:
    """Run directories left behind by an earlier, interrupted cycle (oldest first)."""
    if not Path(runs_dir).is_dir():
        return []
    return [RunDir(p) for p in sorted(Path(runs_dir).iterdir()) if p.is_dir()]


def _write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` to a temporary name, then rename to ``path``: a reader sees the whole file or
    none. A write that fails (e.g. a full disk) removes its partial temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_bytes(path: Path, data: bytes) -> None:
    _write_whole(path, lambda tmp: tmp.write_bytes(data))


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DISK_FULL_TEXT = (
    "no space left on device",
    "file too large",
    "disk quota exceeded",
    "database or disk is full",  # SQLite's SQLITE_FULL (the lake's catalog)
)
# SQLite reports some writes that fail for want of space (its -shm and -wal files) only as an
# I/O error: with this little space left where it writes, that is what it means.
_NEARLY_FULL_BYTES = 1 << 20


def is_disk_full_at(exc: BaseException, *paths: Path) -> bool:
    """``is_disk_full``, or an I/O error while one of ``paths``' file systems has (almost) no
    space left."""
    if is_disk_full(exc):
        return True
    if "i/o error" not in str(exc).lower():
        return False
    for path in paths:
        folder = Path(path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            stat = os.statvfs(folder)
        except OSError:
            continue
        if stat.f_bavail * stat.f_frsize < _NEARLY_FULL_BYTES:
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, a pyarrow or a DuckDB error) means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return any(text in str(exc).lower() for text in _DISK_FULL_TEXT)
