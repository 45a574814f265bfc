"""One ingest cycle: the steps of newsflow/run/steps.py in order (register, plan, poll, fetch, tag,
load), each over every batch at once, in one process. The Airflow DAG calls the same steps as
separate tasks (newsflow/run/tasks.py); this module adds what one process running them all
needs: the ingest lock, the database released while the network and CPU steps run, resuming
what a crash left staged.

Crashes. Stages hand over staged files (newsflow/staging.py), and only ``Store.load_run`` writes
article data, in one transaction. A cycle killed at any point leaves either a run directory
that the next cycle completes and loads, or one it discards because polling never finished (no
feed state moved, so polling again loses nothing); a run loaded but not yet removed is removed.

Locks. DuckDB lets one process write a database file, or any number read it, never both. The
cycle holds the database only while it needs it: to register feeds, resume or discard staged
runs and pick the due feeds; to look up which polled items are already stored; and to load.
Polling, extraction and tagging, nearly all of a cycle's time, run with the database released,
so analysts can query meanwhile. Taking it back waits up to ``load_lock_wait`` for readers and
other writers; past that the cycle fails with the lock's holder in its message, and its staged
run waits for the next cycle. Two cycles never share staged runs: the ``ingest.lock`` file of
the runs folder (an flock, which the kernel drops when its process dies, however it dies)
makes the second wait for the first to finish, also up to ``load_lock_wait``.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb

from newsflow.config import Settings, fault_point
from newsflow.db.engine import DiskFullError, StoreError
from newsflow.db.store import Store
from newsflow.enrich.tag import TagCounts, TagPool
from newsflow.fetching.extract import ExtractorPool
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.fetch import FetchCounts
from newsflow.fetching.poll import PollCounts, Progress
from newsflow.locks import FileLock
from newsflow.results import Result, key
from newsflow.run import steps
from newsflow.staging import RunDir, is_disk_full, is_disk_full_at, pending_runs

LOGGER = logging.getLogger(__name__)


class IngestLock(FileLock):
    """An exclusive lock on a store's CLI runs for the length of one cycle (``flock`` on
    ``Settings.ingest_lock_path``, on this machine's disk even when runs stage in a bucket;
    it holds the holder's pid for the messages)."""

    def acquire(self, wait: float, before_waiting: Callable[[], None] | None = None) -> None:
        """Take the lock, waiting up to ``wait`` seconds; ``before_waiting`` runs first when
        the lock is taken (the caller releases the database, which the holder needs)."""
        if self.try_acquire():
            return
        if before_waiting:
            before_waiting()
        LOGGER.warning(
            "another newsflow ingest (%s) is running on these staged runs (lock %s); "
            "waiting up to %gs",
            self.holder(),
            self.path,
            wait,
        )
        if self.acquire_within(wait):
            return
        raise StoreError(
            f"another newsflow ingest ({self.holder()}) still holds the ingest lock {self.path} "
            f"after {wait:g}s (NEWSFLOW_LOAD_LOCK_WAIT); this one did nothing: run it again "
            "when that one has finished"
        )


@dataclass
class CycleSummary(Result):
    run_id: str
    feeds_registered: int = 0
    feeds_deactivated: list[str] = field(default_factory=list)  # not in the feed list any more
    feeds_due: int = 0
    polls: PollCounts = field(default_factory=PollCounts, metadata=key("feeds"))
    articles: FetchCounts = field(default_factory=FetchCounts)
    tagging: TagCounts = field(default_factory=TagCounts)
    articles_loaded: int = 0
    articles_upgraded: int = 0  # stored earlier from feed content; their page came this time
    pages_requeued: int = 0  # pages the fetch queue gave back to this cycle
    pages_waiting: list[dict] = field(default_factory=list)  # the queue per host after the load
    waiting_feeds: dict | None = None  # when nothing was polled: why (Store.waiting_feeds)
    resumed_runs: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list, metadata=key("failed_feeds"))
    timings: dict = field(default_factory=dict)  # step -> wall and CPU seconds (steps.Timings)
    elapsed_s: float = field(default=0.0, metadata={"digits": 2})


class _Stages:
    """The CPU pools of a cycle: extraction always, tagging on first use (models load once)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._extract: ExtractorPool | None = None
        self._tag: TagPool | None = None

    @property
    def extract(self) -> ExtractorPool:
        if self._extract is None:
            self._extract = ExtractorPool(
                self.settings.extract_workers, self.settings.extract_timeout
            )
        return self._extract

    def done_extracting(self) -> None:
        """Stop the extraction workers (about 160 MB each) before the tag workers start, so
        the two pools are never in memory together."""
        if self._extract is not None:
            self._extract.close()
            self._extract = None

    @property
    def tag(self) -> TagPool:
        if self._tag is None:
            self._tag = TagPool(self.settings)
        return self._tag

    def done_tagging(self) -> None:
        """Stop the tag workers (a spaCy model or two each, 300-500 MB) before the load, the
        stage whose memory grows with the store: idle, they were the larger part of an ingest's
        peak. A resumed run and the new run of one cycle each start them again (seconds)."""
        if self._tag is not None:
            self._tag.close()
            self._tag = None

    def close(self) -> None:
        self.done_extracting()
        self.done_tagging()

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reopen(store: Store, settings: Settings, run: RunDir | None = None) -> None:
    """Take the database back after a stage that released it."""
    try:
        store.reopen(settings.load_lock_wait)
    except StoreError as exc:
        if run is None:
            raise
        raise type(exc)(
            f"{exc}\nthe staged run {run.run_id} is kept in {run.path}; the next "
            "`newsflow ingest` loads it"
        ) from None


def _known_ids(store: Store, settings: Settings) -> Callable[[Iterable[str]], set]:
    """``Store.known_article_ids`` for the poll stage, which runs with the database released."""

    def known(ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        _reopen(store, settings)
        try:
            return store.known_article_ids(ids)
        finally:
            store.release()

    return known


def _complete_and_load(
    run: RunDir,
    settings: Settings,
    store: Store,
    stages: _Stages,
    progress: Progress | None,
    trigger: str,
    timings: steps.Timings,
) -> tuple[FetchCounts, TagCounts, steps.Loaded]:
    """The run's remaining steps: fetch and extract, then tag, whatever it still lacks (with
    the database released), then take the database back and load it in one transaction."""
    store.release()
    with timings.step("fetch"):
        fetched = steps.fetch(settings, run, pool=lambda: stages.extract, progress=progress)

    def tag_pool():
        stages.done_extracting()  # the two pools are never in memory together
        return stages.tag

    with timings.step("tag"):
        tagged = steps.tag(settings, run, pool=tag_pool, progress=progress)
    stages.done_tagging()
    _reopen(store, settings, run)
    with timings.step("load"):
        loaded = steps.load(settings, store, run, trigger)
    return fetched, tagged, loaded


def resume_pending(
    settings: Settings,
    store: Store,
    stages: _Stages,
    progress: Progress | None = None,
    timings: steps.Timings | None = None,
) -> list[str]:
    """Finish runs an interrupted cycle left staged; drop those that never finished polling."""
    resumed = []
    for run in pending_runs(settings.runs_dir):
        if store.is_run_loaded(run.run_id):
            run.remove()
            continue
        if not run.files("polls"):
            # Polling never completed, so no feed state moved: polling again loses nothing.
            LOGGER.info("discarding incomplete run %s (polling did not finish)", run.run_id)
            run.remove()
            continue
        LOGGER.info("resuming staged run %s", run.run_id)
        _complete_and_load(
            run,
            settings,
            store,
            stages,
            progress,
            run.info().get("trigger", "resume"),
            timings or steps.Timings(),
        )
        run.remove()
        resumed.append(run.run_id)
    return resumed


def run_cycle(
    settings: Settings,
    store: Store,
    *,
    feeds: list[FeedSpec] | None = None,
    trigger: str = "cli",
    include_not_due: bool = False,
    progress: Progress | None = None,
) -> CycleSummary:
    """Run one full cycle and return its summary. Per-feed and per-page failures are data.

    ``feeds`` (e.g. from ``load_feed_file``, which validates a whole file) are registered first.
    The cycle releases ``store``'s connection while it polls, extracts and tags, and opens it
    again to load (see the module's notes on locks); ``store`` is open when it returns.
    Raises ``StoreError`` when a lock is not had in time, ``DiskFullError`` when a write fails
    for want of space; staged runs are then kept for the next cycle.
    """
    started = time.monotonic()
    with IngestLock(settings.ingest_lock_path) as lock:
        lock.acquire(settings.load_lock_wait, before_waiting=store.release)
        try:
            summary = _cycle(settings, store, feeds, trigger, include_not_due, progress)
        except (OSError, duckdb.Error) as exc:
            if not is_disk_full_at(exc, settings.data_dir, settings.lake.search_path):
                raise
            reason = "" if is_disk_full(exc) else f" ({os.strerror(errno.ENOSPC)})"
            raise DiskFullError(
                f"out of disk space{reason}: {exc}\nnothing half-written is kept: free space"
                f" (the data "
                f"folder {settings.data_dir}, the database {settings.database}) and run "
                "`newsflow ingest` again; it resumes the staged runs"
            ) from None
    summary.elapsed_s = time.monotonic() - started
    return summary


def _cycle(
    settings: Settings,
    store: Store,
    feeds: list[FeedSpec] | None,
    trigger: str,
    include_not_due: bool,
    progress: Progress | None,
) -> CycleSummary:
    """The steps of newsflow/run/steps.py in order, every batch of a step at once."""
    timings = steps.Timings()
    _reopen(store, settings)  # released while waiting for another cycle
    # Registered before polling (not by the load, as in Airflow), so that a reader sees the
    # feeds while the cycle works.
    registered, deactivated = steps.register(store, feeds or [], settings.keep_unlisted_feeds)

    with _Stages(settings) as stages:
        resumed = resume_pending(settings, store, stages, progress, timings)
        run = RunDir.create(settings.runs_dir, trigger)
        summary = CycleSummary(
            run.run_id,
            feeds_registered=registered,
            feeds_deactivated=deactivated,
            resumed_runs=resumed,
        )
        with timings.step("plan"):
            planned = steps.plan(settings, run, store, include_not_due=include_not_due)
        summary.feeds_due = planned.feeds_due
        summary.pages_requeued = planned.pages_requeued
        if planned.poll_batches:
            store.release()
        with timings.step("poll"):
            summary.polls = steps.poll(
                settings, run, planned.poll_batches, _known_ids(store, settings), progress
            )
        fault_point("polled")
        summary.articles, summary.tagging, loaded = _complete_and_load(
            run, settings, store, stages, progress, trigger, timings
        )
        summary.articles_loaded = loaded.result.articles_loaded
        summary.articles_upgraded = loaded.result.articles_upgraded
    fault_point("cycle_done")
    run.remove()
    summary.failures = store.run_failures(run.run_id)
    summary.pages_waiting = store.pending_pages()
    if not summary.polls.feeds:
        summary.waiting_feeds = store.waiting_feeds()
    summary.timings = timings.as_dict()
    return summary
