"""The steps of a run: one driver for the CLI cycle and the Airflow tasks.

    register ─► plan ─► poll ─► fetch ─► tag ─► load
                (reads) (batches) (batches) (batches) (the one writer)

Each step works over one run's staged files (newsflow/staging.py) and is idempotent: a step, or
a batch of one, whose output is staged already is not done again, so a retried task, a resumed
cycle or a second call never repeats work or duplicates a row. The CLI cycle
(newsflow/run/cycle.py) calls them in order in one process, every batch of a step at once; each
Airflow task (newsflow/run/tasks.py, called by dags/) calls one step for one batch. Only
``register`` and ``load`` write the database; ``plan`` reads it; the others touch files only.

``Timings`` measures what each step cost (wall time, and CPU of this process and its worker
processes), so that a cycle reports it and benchmarks read it instead of patching functions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

from newsflow.config import Settings, fault_point
from newsflow.db.store import LoadResult, Store
from newsflow.enrich.tag import TagCounts, TagPool, tag_batch, untagged_batches
from newsflow.fetching.extract import ExtractorPool
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.fetch import (
    FetchCounts,
    article_batches,
    batch_name,
    feed_batches,
    fetch_batches,
    stage_queue,
)
from newsflow.fetching.poll import KnownIds, PollCounts, Progress, poll_batches
from newsflow.fetching.urls import feed_id as make_feed_id
from newsflow.procs import tree_cpu_seconds
from newsflow.results import Result
from newsflow.rows import DueFeed
from newsflow.staging import RunDir, StagedPath

LOGGER = logging.getLogger(__name__)

PLAN_FILE = "plan.json"  # written last by ``plan``: its presence means the plan is complete
REGISTER_FILE = "register.json"


# -- timings ----------------------------------------------------------------------------------


@dataclass
class Timings:
    """Wall and CPU seconds per step, added up over the calls of a step."""

    steps: dict = field(default_factory=dict)

    @contextmanager
    def step(self, name: str):
        wall, cpu = time.monotonic(), tree_cpu_seconds()
        try:
            yield
        finally:
            entry = self.steps.setdefault(name, {"wall_s": 0.0, "cpu_s": 0.0})
            entry["wall_s"] += time.monotonic() - wall
            entry["cpu_s"] += max(0.0, tree_cpu_seconds() - cpu)

    def as_dict(self) -> dict:
        return {
            name: {k: round(v, 2) for k, v in entry.items()} for name, entry in self.steps.items()
        }


# -- register and plan ------------------------------------------------------------------------


def register(
    store: Store, specs: Sequence[FeedSpec], keep_unlisted: bool = True
) -> tuple[int, list[str]]:
    """Add the feeds of a feed list to the registry (or update their name, tags, language) and,
    unless ``keep_unlisted``, deactivate the registered feeds it does not name: the list is the
    source of truth. How many were new, and the URLs deactivated. No list: nothing changes."""
    if not specs:
        return 0, []
    added, _ = store.upsert_feeds(list(specs))
    gone = [] if keep_unlisted else store.deactivate_unlisted(list(specs))
    for url in gone:
        LOGGER.warning("feed %s is not in the feed list any more: deactivated", url)
    return added, gone


@dataclass
class Plan(Result):
    """What ``plan`` decided: the run's folder, its poll batches, and how many feeds are due
    (new ones among them) and pages the fetch queue gave back."""

    run: str
    poll_batches: list[str]
    feeds_due: int
    feeds_new: int
    pages_requeued: int

    def summary(self) -> str:
        return (
            f"{self.feeds_due} feeds due ({self.feeds_new} new to register) in"
            f" {len(self.poll_batches)} batches; {self.pages_requeued} pages from the fetch"
            f" queue; staged files in {self.run}"
        )


def plan(
    settings: Settings,
    run: RunDir,
    store: Store | None,
    specs: Sequence[FeedSpec] = (),
    *,
    include_not_due: bool = False,
) -> Plan:
    """Which feeds are due (all active ones with ``include_not_due``), cut into poll batches by
    host (``plan/feeds-<batch>.json``), and the pages the fetch queue gives back
    (``items/queue.parquet``). Feeds of ``specs`` the registry does not know yet are due now;
    ``load`` registers them (``plan/register.json``). Reads only; ``store`` is None when there
    is no database yet. A plan already made is returned as it was."""
    plan_dir = run.path / "plan"
    done = plan_dir / PLAN_FILE
    if done.exists():
        return Plan.from_dict(json.loads(done.read_text(encoding="utf-8")))
    plan_dir.mkdir()
    now = datetime.now(UTC)
    due: list[DueFeed] = []
    registered: set[str] = set()
    requeued = 0
    if store is not None:
        # Due by now, or within the grace: a run starting seconds before a feed is due polls it.
        grace = timedelta(seconds=settings.poll_grace)
        due = store.due_feeds(now + grace, include_not_due=include_not_due)
        if specs and not settings.keep_unlisted_feeds:  # the load deactivates the others
            listed = {make_feed_id(s.url) for s in specs}
            due = [f for f in due if f.feed_id in listed]
        registered = store.feed_ids()
        requeued = stage_queue(run, store.due_pages(now))
    new = [s for s in specs if make_feed_id(s.url) not in registered]
    due_ids = {f.feed_id for f in due}
    for spec in new:
        fid = make_feed_id(spec.url)
        if fid not in due_ids:
            due.append(DueFeed(fid, spec.url, None, None, spec.language))
            due_ids.add(fid)
    _write_json(plan_dir / REGISTER_FILE, [asdict(s) for s in specs])
    batches = []
    for index, feeds in enumerate(feed_batches(due, settings.feeds_per_batch)):
        name = batch_name(index)
        _write_json(plan_dir / f"feeds-{name}.json", [f.as_json() for f in feeds])
        batches.append(name)
    result = Plan(str(run.path), batches, len(due), len(new), requeued)
    _write_json(done, result.as_dict())
    return result


def planned_specs(run: RunDir) -> list[FeedSpec]:
    """The feed list a plan recorded for ``load`` to register."""
    path = run.path / "plan" / REGISTER_FILE
    if not path.exists():
        return []
    return [
        FeedSpec(**{**s, "tags": tuple(s.get("tags") or ())})
        for s in json.loads(path.read_text("utf-8"))
    ]


def _write_json(path: StagedPath, data) -> None:
    path.write_text(json.dumps(data))  # whole or not at all


# -- poll, fetch, tag -------------------------------------------------------------------------


def _staged(run: RunDir, kind: str, batch: str) -> StagedPath | None:
    path = run.path / kind / f"{batch}.parquet"
    return path if path.exists() else None


def poll(
    settings: Settings,
    run: RunDir,
    batches: Sequence[str],
    known: KnownIds,
    progress: Progress | None = None,
) -> PollCounts:
    """Poll the planned ``batches`` that are not staged yet, together (one client, hosts
    interleaved); writes ``items/`` then ``polls/`` per batch. Batches staged already count as
    they were staged."""
    counts = PollCounts()
    todo: dict[str, list[DueFeed]] = {}
    for name in batches:
        staged = _staged(run, "polls", name)
        if staged is not None:
            counts.merge(PollCounts.from_staged(staged.read_table()))
            continue
        path = run.path / "plan" / f"feeds-{name}.json"
        todo[name] = [DueFeed(**f) for f in json.loads(path.read_text("utf-8"))]
    if todo:
        counts.merge(poll_batches(todo, settings, run, known, progress))
    return counts


def plan_articles(settings: Settings, run: RunDir) -> list[str]:
    """The run's article batches: new items and the queue's pages, cut by host."""
    return [batch_name(i) for i in range(len(article_batches(run, settings.article_batch_size)))]


def fetch(
    settings: Settings,
    run: RunDir,
    batches: Sequence[str] | None = None,
    pool: Callable[[], ExtractorPool] | None = None,
    progress: Progress | None = None,
) -> FetchCounts:
    """Fetch and extract the article ``batches`` (default: all) not staged yet, in one
    frontier under one budget; writes ``articles/<batch>``. Staged batches count as staged.
    ``pool`` gives the extractor pool to use (asked only when there is work); without it
    the step starts its own."""
    every = article_batches(run, settings.article_batch_size)
    names = [batch_name(i) for i in range(len(every))] if batches is None else list(batches)
    counts = FetchCounts()
    todo = {}
    for name in names:
        staged = _staged(run, "articles", name)
        if staged is None:
            todo[name] = every[int(name)]
            continue
        columns = ["extraction_status", "fetch_state", "host", "queued_s"]
        for row in staged.read_table(columns=columns).to_pylist():
            counts.add(row)
    if todo:
        own = None if pool else ExtractorPool(settings.extract_workers, settings.extract_timeout)
        try:
            extractor = pool() if pool else own
            counts.merge(fetch_batches(todo, settings, run, pool=extractor, progress=progress))
        finally:
            if own is not None:
                own.close()
        fault_point("extracted")
    return counts


def tag(
    settings: Settings,
    run: RunDir,
    batches: Sequence[str] | None = None,
    pool: Callable[[], TagPool] | None = None,
    progress: Progress | None = None,
) -> TagCounts:
    """Tag the extracted ``batches`` (default: all) that are not tagged yet; writes their tag
    files, ``tagging/`` last. Nothing when tagging is off. ``pool`` gives the tag pool
    (asked only when there is work); without it the step starts its own."""
    counts = TagCounts()
    if not settings.tagging:
        return counts
    todo = [b for b in untagged_batches(run) if batches is None or b in batches]
    if not todo:
        return counts
    own = None if pool else TagPool(settings)
    try:
        tagger = pool() if pool else own
        assert tagger is not None
        for done, name in enumerate(todo, 1):
            counts.merge(tag_batch(run, name, tagger))
            if progress:
                progress("tag", done, len(todo))
            fault_point("tagged")
    finally:
        if own is not None:
            own.close()
    return counts


# -- load -------------------------------------------------------------------------------------


@dataclass
class Loaded:
    result: LoadResult
    feeds_registered: int = 0
    search_index_s: float | None = None
    feeds_deactivated: list[str] = field(default_factory=list)


def load(settings: Settings, store: Store, run: RunDir, trigger: str) -> Loaded:
    """Register the plan's new feeds, then load the run in one transaction (a run loaded
    already changes nothing), then refresh the search index when the load changed texts."""
    registered, gone = register(store, planned_specs(run), settings.keep_unlisted_feeds)
    result = store.load_run(
        run, poll_interval=settings.poll_interval, max_backoff=settings.max_backoff, trigger=trigger
    )
    store.record_settings(settings)
    search_s = None
    if settings.search_index:
        # An upgraded article has a new text: the index must see it as it sees a new one.
        search_s = store.refresh_search_after_load(
            result.articles_loaded,
            settings.search_rebuild_max_articles,
            changed=result.upgraded_ids,
        )
        if search_s is not None:
            LOGGER.info("search index rebuilt in %.2fs", search_s)
    return Loaded(result, registered, search_s, gone)
