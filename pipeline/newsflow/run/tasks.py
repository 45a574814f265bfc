"""The ingest cycle cut into tasks, for a scheduler that runs each in its own process.

Airflow's DAGs (``dags/``) call these functions and nothing else; this module never imports
Airflow. Tasks share one run directory (``<data_dir>/airflow-runs/<db>/<run>/``) and pass only
its path, batch names and counts. Every task is safe to retry: a stage whose staged file already
exists is not done again, and ``load`` skips a run that is already loaded.

    plan ──► poll[batch] ──► plan_articles ──► fetch_extract[batch] ──► tag[batch] ──► load
    (reads)  (reads)         (reads files)      (writes files)           (files)      (the one
                                                                                       writer)

Each task is one step of pipeline/newsflow/run/steps.py, the same steps the CLI cycle runs.

``load`` is the only task that writes the database: new feeds from the feed list are
registered there too (``plan`` records them in the run directory).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

import duckdb

from newsflow.config import ConfigError, Settings, env_var, load_settings
from newsflow.db.engine import StoreError
from newsflow.db.store import Store, store_exists
from newsflow.enrich.tag import TagCounts
from newsflow.fetching.feedlist import load_feed_file
from newsflow.fetching.fetch import FetchCounts
from newsflow.fetching.poll import PollCounts
from newsflow.results import Counters, Result
from newsflow.run import steps

if TYPE_CHECKING:
    from newsflow.run.retag import RetagSummary
from newsflow.staging import RunDir, StagedPath, pending_runs

LOGGER = logging.getLogger(__name__)


class InjectedFault(RuntimeError):
    """Raised once by a task when ``fault_inject`` names it (tests of retries)."""


def settings_from(overrides: dict | None = None) -> Settings:
    """Settings from ``NEWSFLOW_*`` variables, then ``overrides`` (e.g. an Airflow Variable
    holding a JSON object of ``NEWSFLOW_*`` names and values)."""
    import os

    env = dict(os.environ)
    for key, value in (overrides or {}).items():
        key = str(key).upper()
        if not key.startswith("NEWSFLOW_"):
            raise ConfigError(f"setting override {key!r} must be a NEWSFLOW_* variable name")
        env[key] = str(value)
    return load_settings(env)


def _run_name(scheduler_run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", scheduler_run_id).strip("_")[:120] or "run"


def staged_path(settings: Settings, scheduler_run_id: str) -> StagedPath:
    """Where the staged files of one scheduler run live, for the tasks after ``plan``: not
    created (``plan`` does that), so a later task finds them missing if they were lost,
    instead of starting an empty run."""
    return settings.airflow_runs_dir / _run_name(scheduler_run_id)


def create_run_dir(settings: Settings, scheduler_run_id: str) -> RunDir:
    """The staged-files directory of one scheduler run, created if needed (by ``plan``)."""
    return RunDir.create(settings.airflow_runs_dir, "airflow", run_id=_run_name(scheduler_run_id))


def _maybe_fail(settings: Settings, run: RunDir, task: str, batch: str) -> None:
    """Fail the first try of ``task`` (batch ``batch``) when the fault_inject setting says so:
    ``NEWSFLOW_FAULT_INJECT=fetch_extract:0000``. For tests of retry and resume only."""
    if not settings.fault_inject:
        return
    wanted_task, _, wanted_batch = settings.fault_inject.partition(":")
    if wanted_task != task or (wanted_batch and wanted_batch != batch):
        return
    marker = run.path / f".fault-{task}-{batch}"
    if marker.exists():
        return
    marker.write_text("injected once\n")
    raise InjectedFault(f"injected fault in {task} batch {batch} (NEWSFLOW_FAULT_INJECT)")


# -- what the tasks return ------------------------------------------------------------------
# Each task's result is a dataclass: its ``as_dict()`` is the task's XCom, its ``summary()`` the
# closing line of the task's log, and ``label()`` (for mapped tasks) the grid's label of the
# batch, None when the batch was staged by an earlier try.


C = TypeVar("C", bound=Counters)


@dataclass
class Batch(Result, Generic[C]):
    """What a mapped task did with one batch: its counts, or that an earlier try staged it."""

    batch: str
    counts: C
    resumed: bool = False  # staged by an earlier try

    def as_dict(self) -> dict:
        return {"batch": self.batch, **self.counts.as_dict(), **self._resumed()}

    def _resumed(self) -> dict:
        return {"resumed": True} if self.resumed else {}


@dataclass
class PolledBatch(Batch[PollCounts]):
    def summary(self) -> str:
        c = self.counts
        return (
            f"{c.feeds} feeds: {c.ok} ok, {c.not_modified} not modified, {c.failed} failed"
            f" (recorded, not raised); {c.items_new} new items"
            + (" [resumed]" if self.resumed else "")
        )

    def label(self) -> str | None:
        c = self.counts
        return None if self.resumed else f"{c.feeds} polled · {c.failed} failed · {c.items_new} new"


@dataclass
class FetchedBatch(Batch[FetchCounts]):
    def summary(self) -> str:
        c = self.counts
        return (
            f"{c.articles} articles: {c.ok} extracted, {c.feed_content} from feed content,"
            f" {c.failed} failed (recorded); pages: {c.pages_pending} left pending by the fetch"
            f" budget {c.as_dict()['pending_by_host'] or ''}, {c.pages_retry} to retry;"
            f" longest queue wait {round(c.max_queued_s, 1)}s"
            + (" [resumed]" if self.resumed else "")
        )

    def label(self) -> str | None:
        c = self.counts
        if self.resumed:
            return None
        return f"{c.articles} articles · {c.ok} extracted · {c.failed} failed"


@dataclass
class TaggedBatch(Batch[TagCounts]):
    counts: TagCounts = field(default_factory=TagCounts)
    skipped: str | None = None  # why nothing was tagged (tagging is off)

    def as_dict(self) -> dict:
        if self.skipped:
            return {"batch": self.batch, "skipped": self.skipped}
        if self.resumed:
            return {"batch": self.batch, "resumed": True}
        return {"batch": self.batch, **self.counts.as_dict()}

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        if self.resumed:
            return "already tagged [resumed]"
        c = self.counts
        return (
            f"{c.articles} articles: {c.entities:,} entities, {c.topics:,} topics;"
            f" {c.skipped} skipped, {c.failed} failed"
        )

    def label(self) -> str | None:
        if self.skipped or self.resumed:
            return None
        return f"{self.counts.articles} articles · {self.counts.entities:,} entities"


@dataclass
class LoadedRun(Result):
    """What ``load`` did, and what the store holds after it."""

    run_id: str
    already_loaded: bool = False
    feeds_failed: int = 0
    failed_feeds: list[str] = field(default_factory=list)  # their URLs (20 at most)
    pages_failed: int = 0
    pages_pending: int = 0
    snapshot_id: int | None = None  # the lake snapshot the load committed
    feeds_registered: int = 0
    feeds_deactivated: list[str] = field(default_factory=list)
    polls: int = 0
    articles_loaded: int = 0
    articles_upgraded: int = 0
    pages_waiting: dict[str, dict[str, int]] = field(default_factory=dict)  # per host
    by_status: dict[str, int] = field(default_factory=dict)
    tag_rows: dict[str, int] = field(default_factory=dict)
    search_index_s: float | None = field(default=None, metadata={"digits": 2})
    articles_total: int = 0
    entities_total: int = 0
    topics_total: int = 0

    def summary(self) -> str:
        return (
            f"{self.articles_loaded} articles loaded {self.by_status}, {self.articles_upgraded}"
            f" upgraded in place, tag rows {self.tag_rows}; {self.feeds_failed} feeds failed"
            f" {self.failed_feeds or ''}, {self.pages_failed} pages failed, {self.pages_pending}"
            f" pages waiting; the database holds {self.articles_total} articles"
            + (" [run was already loaded]" if self.already_loaded else "")
        )

    def asset_extra(self, airflow_run_id: str) -> dict:
        """The extra of the ``newsflow_articles`` asset event this load emits."""
        return {
            "run_id": self.run_id,
            "airflow_run_id": airflow_run_id,
            "snapshot_id": self.snapshot_id,  # read it: ATTACH ... (SNAPSHOT_VERSION n)
            "articles_loaded": self.articles_loaded,
            "feeds_failed": self.feeds_failed,
            "pages_failed": self.pages_failed,
            "pages_pending": self.pages_pending,
            "articles_total": self.articles_total,
            "entities_total": self.entities_total,
            "topics_total": self.topics_total,
        }


# -- the steps of a run, one per task ---------------------------------------------------------


def plan(settings: Settings, scheduler_run_id: str) -> steps.Plan:
    """``steps.plan`` with the feed list of ``NEWSFLOW_FEEDS`` and a read-only store (none
    before the first load). A retried plan returns what the first try planned."""
    run = create_run_dir(settings, scheduler_run_id)
    specs = load_feed_file(settings.feeds_file) if settings.feeds_file else []
    if not store_exists(settings.lake):
        return steps.plan(settings, run, None, specs)
    with Store(settings.lake, read_only=True) as store:
        return steps.plan(settings, run, store, specs)


def poll(settings: Settings, run_path: str, batch: str) -> PolledBatch:
    """``steps.poll`` for one planned batch; writes ``polls/`` and ``items/`` (skipped if done)."""
    run = RunDir(run_path)
    resumed = run.has("polls", batch)

    def known(ids) -> set[str]:
        # Opened for the lookup only: a connection held through the poll's network waits
        # would keep writers (the load of another run, maintenance, the CLI) out.
        ids = list(ids)
        if not ids or not store_exists(settings.lake):
            return set()
        with Store(settings.lake, read_only=True) as store:
            return store.known_article_ids(ids)

    counts = steps.poll(settings, run, [batch], known)
    _maybe_fail(settings, run, "poll", batch)
    return PolledBatch(batch, counts, resumed)


def plan_articles(settings: Settings, run_path: str) -> list[str]:
    """The run's article batches (new items and the queue's pages, cut by host)."""
    return steps.plan_articles(settings, RunDir(run_path))


def fetch_extract(settings: Settings, run_path: str, batch: str) -> FetchedBatch:
    """``steps.fetch`` for one article batch; writes ``articles/<batch>`` (skipped if done)."""
    run = RunDir(run_path)
    resumed = run.has("articles", batch)
    counts = steps.fetch(settings, run, [batch])
    _maybe_fail(settings, run, "fetch_extract", batch)
    return FetchedBatch(batch, counts, resumed)


def tag(settings: Settings, run_path: str, batch: str) -> TaggedBatch:
    """``steps.tag`` for one extracted batch; writes the tag files (skipped if done or off)."""
    run = RunDir(run_path)
    if not settings.tagging:
        return TaggedBatch(batch, skipped="tagging is off (NEWSFLOW_TAGGING=0)")
    if run.has("tagging", batch):
        return TaggedBatch(batch, resumed=True)
    counts = steps.tag(settings, run, [batch])
    _maybe_fail(settings, run, "tag", batch)
    return TaggedBatch(batch, counts)


def load(settings: Settings, run_path: str, trigger: str = "airflow") -> LoadedRun:
    """``steps.load``: register the plan's new feeds and load the run, one transaction each;
    then remove its staged files. Idempotent: a run that is already loaded (a retry after the
    commit) changes nothing."""
    run = RunDir(run_path)
    run_id = run.run_id
    if not run.path.exists():
        with Store(settings.lake, lock_wait=settings.load_lock_wait) as store:
            if store.is_run_loaded(run_id):
                return LoadedRun(run_id, already_loaded=True)
        raise StoreError(f"staged files of run {run_id} are missing ({run.path})")
    _maybe_fail(settings, run, "load", "")
    with Store(settings.lake, lock_wait=settings.load_lock_wait) as store:
        loaded = steps.load(settings, store, run, trigger)
        waiting = {
            w["host"]: {"pending": w["pending"], "retrying": w["retrying"]}
            for w in store.pending_pages()[:20]
        }
        totals = store.totals()
        failures = store.run_failures(run_id)
    run.remove()
    result = loaded.result
    for f in failures:
        status = f" {f['http_status']}" if f["http_status"] else ""
        LOGGER.warning("feed %s failed: %s%s: %s", f["url"], f["outcome"], status, f["error"])
    return LoadedRun(
        run_id,
        already_loaded=result.already_loaded,
        feeds_failed=len(failures),
        failed_feeds=[f["url"] for f in failures[:20]],
        pages_failed=(result.by_status or {}).get("failed", 0),
        pages_pending=sum(w["pending"] + w["retrying"] for w in waiting.values()),
        snapshot_id=result.snapshot_id,
        feeds_registered=loaded.feeds_registered,
        feeds_deactivated=loaded.feeds_deactivated,
        polls=result.polls,
        articles_loaded=result.articles_loaded,
        articles_upgraded=result.articles_upgraded,
        pages_waiting=waiting,
        by_status=result.by_status or {},
        tag_rows=result.tag_rows or {},
        search_index_s=loaded.search_index_s,
        articles_total=totals["articles"],
        entities_total=totals["entities"],
        topics_total=totals["topics"],
    )


# -- maintenance ------------------------------------------------------------------------------
# Each maintenance step returns a dataclass too: ``as_dict()`` is the task's XCom and the
# CLI's --json, ``summary()`` the line ``newsflow maintain`` prints and the task logs.


@dataclass
class StaleRunsRemoved(Result):
    removed: int = 0
    kept: int = 0  # older than the retention, with polls still to load
    removed_runs: list[str] = field(default_factory=list)  # their ids (20 at most)

    def summary(self) -> str:
        return f"removed {self.removed} staged run folder(s), kept {self.kept} still to load"


@dataclass
class EntitiesResolved(Result):
    keys: int = 0  # names (entity keys) resolved
    entities: int = 0
    merged: int = 0  # entities that became part of another (their ids redirect)
    changed: int = 0  # keys whose entity changed

    def summary(self) -> str:
        return (
            f"{self.keys:,} name(s) resolved into {self.entities:,} entities; {self.merged:,}"
            f" merged into another (their ids redirect), {self.changed:,} name(s) changed entity"
        )


@dataclass
class SearchRebuilt(Result):
    articles: int = 0
    seconds: float = field(default=0.0, metadata={"digits": 2})
    segments_built: list[str] = field(default_factory=list)
    search_files: int = 0  # files a search opens
    skipped: str | None = None  # why nothing was done (the index is turned off)

    def summary(self) -> str:
        if self.skipped:
            return self.skipped
        merged = self.segments_built
        return f"{self.articles} articles indexed in {self.search_files} file(s)" + (
            f"; {len(merged)} segment(s) merged: {', '.join(merged)}" if merged else ""
        )


@dataclass
class LakeTidied(Result):
    """What the lake's housekeeping did, and the lake's size after it."""

    database: str
    rows_flushed: int = 0
    files_merged: int = 0
    snapshots_expired: int = 0
    files_removed: int = 0
    orphans_removed: int = 0
    data_files_before: int = 0
    data_files: int = 0
    data_bytes: int = 0
    catalog_bytes: int | None = None  # a SQLite catalog's file
    bytes: int = 0  # catalog and data files

    def summary(self) -> str:
        return (
            f"{self.database}: {self.rows_flushed:,} inlined row(s) flushed,"
            f" {self.files_merged:,} file(s) merged, {self.snapshots_expired:,} snapshot(s)"
            f" expired, {self.files_removed + self.orphans_removed:,} file(s) deleted"
            f" ({self.orphans_removed:,} orphaned); {self.data_files_before:,} ->"
            f" {self.data_files:,} data files, {self.bytes:,} bytes"
        )


def remove_stale_runs(settings: Settings, older_than: timedelta | None = None) -> StaleRunsRemoved:
    """Retention of staged files: remove run directories older than the retention period
    whose run is loaded, or that were abandoned (never got as far as a poll). Runs with
    unloaded polls are kept: the next cycle or a retry still loads them."""
    older_than = older_than or timedelta(days=settings.staged_retention_days)
    cutoff = time.time() - older_than.total_seconds()
    removed, kept = [], []
    candidates = [
        run for root in (settings.runs_dir, settings.airflow_runs_dir) for run in pending_runs(root)
    ]
    if not candidates:
        return StaleRunsRemoved()
    store = Store(settings.lake, read_only=True) if store_exists(settings.lake) else None
    try:
        for run in candidates:
            started = run.started_at()
            if started is not None and started > cutoff:
                continue
            loaded = store is not None and store.is_run_loaded(run.run_id)
            if loaded or not run.files("polls"):
                run.remove()
                removed.append(run.run_id)
            else:
                kept.append(run.run_id)
    finally:
        if store is not None:
            store.close()
    return StaleRunsRemoved(removed=len(removed), kept=len(kept), removed_runs=removed[:20])


@contextlib.contextmanager
def maintenance_store(
    settings: Settings, step: str, kept: str = "nothing was changed"
) -> Iterator[Store]:
    """The store for a maintenance step that reads the whole corpus: on a DuckDB instance of
    its own under ``NEWSFLOW_MAINTENANCE_MEMORY_LIMIT`` (the limit ends with it; past it,
    DuckDB spills to disk). A DuckDB error under the limit is reported naming the setting and
    saying what became of the store (``kept``)."""
    limit = settings.maintenance_memory_limit
    with Store(settings.lake, lock_wait=settings.load_lock_wait, private=bool(limit)) as store:
        if limit:
            store.limit_memory(limit)
        try:
            yield store
        except duckdb.Error as exc:
            if not limit:
                raise
            # Out of memory, as DuckDB reports it, or a later statement of the transaction
            # it aborted: either way the limit is the setting to look at.
            raise StoreError(
                f"the {step} step failed under {env_var('maintenance_memory_limit')}={limit}"
                f" ({kept}; if DuckDB ran out of memory, raise the limit):"
                f" {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ) from None


def resolve_entities(settings: Settings) -> EntitiesResolved:
    """Re-resolve entity identity over the whole corpus (``Store.resolve_entities``): what the
    loads decided key by key, settled again with all the evidence; before the search rebuild,
    whose derived tables (entity pairs) count by entity."""
    # (its steps commit one by one: a pass stopped midway is continued by the next)
    with maintenance_store(
        settings, "entities", "nothing stored is lost; the next run continues"
    ) as store:
        return EntitiesResolved(**store.resolve_entities())


def rebuild_search(settings: Settings) -> SearchRebuilt:
    """Rebuild the stale search shards whatever the database's size (the daily catch-up),
    then merge sealed shards into segments, so that a search opens few files."""
    if not settings.search_index:
        return SearchRebuilt(skipped="NEWSFLOW_SEARCH_INDEX=0: no search index is kept")
    with maintenance_store(settings, "search_index", "nothing stored is lost") as store:
        store.record_settings(settings)
        seconds = store.refresh_search_index()
        merged = store.compact_search_index()
        articles = store.totals()["articles"]
        files = store.search_files()
    return SearchRebuilt(
        articles=articles, seconds=seconds or 0.0, segments_built=merged, search_files=files
    )


def tidy_lake(settings: Settings) -> LakeTidied:
    """The lake's housekeeping (``Store.maintain_lake``: flush inlined rows, merge small
    files, expire old snapshots, delete unneeded and orphaned files), then its size: catalog
    and data files."""
    # (each of its steps is a transaction of its own: one that failed left the lake as it was)
    with maintenance_store(settings, "tidy_lake", "nothing stored was lost") as store:
        before = store.size()["data_files"]
        done = store.maintain_lake(settings.snapshot_retention_days)
        size = store.size()
    return LakeTidied(database=settings.database, data_files_before=before, **done, **size)


class FeedHealthError(RuntimeError):
    """Feeds are dead, failing, never worked or went silent (or none is registered); the
    message names each with its URL, last outcome and last error."""


# How each status reads in the health check's table.
_WHY = {
    "dead": "dead: the last poll was a permanent error",
    "failing": "failing {consecutive_failures} polls in a row",
    "never_worked": "never brought an item in {polls_total} polls",
    "silent": "nothing new since {since}",
    "erroring": "the last poll failed",
    "never_polled": "not polled yet",
    "ok": "ok",
}


@dataclass
class FeedHealth(Result):
    """Every active feed's health (rows of the view feed_health) and the thresholds used."""

    feeds: list[dict] = field(default_factory=list)
    failing_after: int = 0  # failed polls in a row that make a feed failing
    silence_hours: float = 0.0  # hours with nothing new that make a feed silent

    @property
    def active_feeds(self) -> int:
        return len(self.feeds)

    @property
    def problems(self) -> list[dict]:
        """The feeds that need attention."""
        return [f for f in self.feeds if f["needs_attention"]]

    @property
    def healthy(self) -> bool:
        return bool(self.feeds) and not self.problems

    def as_dict(self) -> dict:
        return {
            "active_feeds": self.active_feeds,
            **super().as_dict(),
            "problems": self.problems,
        }

    def summary(self) -> str:
        if not self.feeds:
            return "no active feeds"
        if self.problems:
            return f"{len(self.problems)} of {self.active_feeds} active feeds need attention"
        return f"all {self.active_feeds} active feeds healthy"

    def describe(self) -> str:
        """The verdict and the whole feed table, problems first."""
        if not self.feeds:
            return (
                "no active feeds: register some with `newsflow feeds import FILE`, or set"
                " NEWSFLOW_FEEDS to a feed list the next ingest registers"
            )
        lines = [
            self.summary()
            + f" (failing: {self.failing_after}+ failed polls in a row; silent: nothing new for"
            f" {self.silence_hours:g} hours):"
        ]
        for f in self.feeds:
            mark = "!" if f["needs_attention"] else " "
            lines.append(f" {mark} {f['feed']} <{f['url']}>: {_why(f)}")
        return "\n".join(lines)


def feed_health(settings: Settings, now: datetime | None = None) -> FeedHealth:
    """Every active feed's health by the one definition (view feed_health) with the settings'
    thresholds."""
    now = now or datetime.now(UTC)
    with Store(settings.lake, read_only=True) as store:
        feeds = store.feed_check(now, settings.feed_failing_after, settings.feed_silence_hours)
    return FeedHealth(
        feeds=feeds,
        failing_after=settings.feed_failing_after,
        silence_hours=settings.feed_silence_hours,
    )


def _why(feed: dict) -> str:
    since = feed["last_new_item_at"]
    why = _WHY.get(feed["status"], feed["status"]).format(
        consecutive_failures=feed["consecutive_failures"],
        polls_total=feed["polls_total"],
        since=since.strftime("%Y-%m-%d %H:%M UTC") if since else "it was added",
    )
    if feed["silent"] and feed["status"] != "silent":
        why += ", and silent"
    if feed["status"] != "ok" and feed["last_outcome"] not in (None, "ok", "not_modified"):
        status = f" {feed['last_status']}" if feed["last_status"] else ""
        error = f": {feed['last_error']}" if feed["last_error"] else ""
        why += f" (last poll: {feed['last_outcome']}{status}{error})"
    return why


@dataclass
class FeedsHealthy(Result):
    """A health check that passed (one that did not raised FeedHealthError)."""

    active_feeds: int
    problems: int = 0

    def summary(self) -> str:
        return f"all {self.active_feeds} active feeds healthy"


def check_feed_health(settings: Settings, now: datetime | None = None) -> FeedsHealthy:
    """``feed_health``, logging the whole table, and raising ``FeedHealthError`` (a failed
    task) when a feed needs attention or none is registered."""
    report = feed_health(settings, now)
    text = report.describe()
    if not report.healthy:
        raise FeedHealthError(text)
    LOGGER.info("%s", text)
    return FeedsHealthy(active_feeds=report.active_feeds)


# -- retag ------------------------------------------------------------------------------------


def retag(settings: Settings, since: str | None = None, tagger: str | None = None) -> RetagSummary:
    """``newsflow retag`` as a task: the same function, with the DAG's params."""
    from newsflow.run.retag import retag as retag_articles  # loads the taggers

    since_dt = None
    if since:
        try:
            since_dt = datetime.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"param since={since!r} is not a date (YYYY-MM-DD)") from None
        if since_dt.tzinfo is None:
            since_dt = since_dt.replace(tzinfo=UTC)
    with Store(settings.lake, lock_wait=settings.load_lock_wait) as store:
        return retag_articles(settings, store, since=since_dt, tagger=tagger or None)
