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

import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())

POLL_SCHEMA = pa.schema(
    [
        ("poll_id", pa.string()),
        ("run_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("polled_at", TS),
        ("http_status", pa.int32()),
        ("outcome", pa.string()),
        ("error", pa.string()),
        ("malformed", pa.bool_()),
        ("bytes", pa.int64()),
        ("items_seen", pa.int32()),
        ("items_new", pa.int32()),
        ("duration_ms", pa.float64()),
        ("etag", pa.string()),
        ("last_modified", pa.string()),
        ("retry_after", pa.float64()),
        ("feed_title", pa.string()),
        ("site_url", pa.string()),
        ("feed_language", pa.string()),
        ("poll_interval", pa.float64()),  # seconds to the next poll when healthy (adaptive)
        ("interval_reason", pa.string()),
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("guid", pa.string()),
        ("title", pa.string()),
        ("authors", STRINGS),
        ("categories", STRINGS),
        ("summary", pa.string()),
        ("content", pa.string()),
        ("published_at", TS),
        ("first_seen_at", TS),
        ("feed_language", pa.string()),
        # Set on items taken back from the fetch queue (a page still pending or to retry):
        # its state there and the attempts it has had. NULL and 0 for items new in this run.
        ("queue_state", pa.string()),
        ("fetch_attempts", pa.int32()),
    ]
)

ARTICLE_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("final_url", pa.string()),
        ("guid", pa.string()),
        ("title", pa.string()),
        ("authors", STRINGS),
        ("feed_categories", STRINGS),
        ("summary", pa.string()),
        ("published_at", TS),
        ("first_seen_at", TS),
        ("language", pa.string()),
        ("site_name", pa.string()),
        ("text", pa.string()),
        ("word_count", pa.int32()),
        ("extraction_status", pa.string()),
        ("extraction_error", pa.string()),
        ("http_status", pa.int32()),
        ("content_hash", pa.string()),
        # The page's place in the crawl frontier (newsflow/fetching/fetch.py): done, retry, final or
        # pending, the attempts so far, why the last one failed, when to try again.
        ("host", pa.string()),
        ("fetch_state", pa.string()),
        ("fetch_attempts", pa.int32()),
        ("fetch_error", pa.string()),
        ("next_attempt_at", TS),
        ("queued_s", pa.float64()),  # waited for its host's turn and a slot before it was sent
        ("requeued", pa.bool_()),  # the article is stored already: its row is upgraded in place
    ]
)


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
