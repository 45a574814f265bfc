"""One ingest cycle: register feeds, poll due feeds, fetch and extract new items, tag, load.

This is the CLI's path through the stages; the Airflow DAG calls the same stage functions
(``poll_feeds``, ``fetch_and_extract``, ``tag_batch``, ``Store.load_run``) as separate tasks.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.config import Settings
from pipeline.extract import ExtractorPool
from pipeline.feedlist import FeedSpec
from pipeline.fetch import FetchCounts, article_batches, batch_name, fetch_and_extract
from pipeline.poll import PollCounts, Progress, poll_feeds
from pipeline.stage import RunDir, pending_runs
from pipeline.store import Store
from pipeline.tag import TagCounts, TagPool, tag_batch, untagged_batches

LOGGER = logging.getLogger(__name__)


@dataclass
class CycleSummary:
    run_id: str
    feeds_registered: int = 0
    feeds_due: int = 0
    polls: PollCounts = field(default_factory=PollCounts)
    articles: FetchCounts = field(default_factory=FetchCounts)
    tagging: TagCounts = field(default_factory=TagCounts)
    articles_loaded: int = 0
    resumed_runs: list[str] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "feeds_registered": self.feeds_registered,
            "feeds_due": self.feeds_due,
            "feeds": self.polls.as_dict(),
            "articles": self.articles.as_dict(),
            "tagging": self.tagging.as_dict(),
            "articles_loaded": self.articles_loaded,
            "resumed_runs": self.resumed_runs,
            "failed_feeds": self.failures,
            "elapsed_s": round(self.elapsed_s, 2),
        }


class _Stages:
    """The CPU pools of a cycle: extraction always, tagging on first use (models load once)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.extract = ExtractorPool(settings.extract_workers, settings.extract_timeout)
        self._tag: TagPool | None = None

    @property
    def tag(self) -> TagPool:
        if self._tag is None:
            self._tag = TagPool(self.settings)
        return self._tag

    def close(self) -> None:
        self.extract.close()
        if self._tag is not None:
            self._tag.close()

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _complete_and_load(
    run: RunDir,
    settings: Settings,
    store: Store,
    stages: _Stages,
    progress: Progress | None,
    trigger: str,
) -> tuple[FetchCounts, TagCounts, int]:
    """Extract and tag whatever article batches the run still lacks, then load it in one
    transaction."""
    counts = FetchCounts()
    tagged = TagCounts()
    done = {p.stem for p in run.files("articles")}
    for index, items in enumerate(article_batches(run, settings.article_batch_size)):
        name = batch_name(index)
        if name in done:
            continue
        part = fetch_and_extract(items, settings, run, name, pool=stages.extract, progress=progress)
        for key, value in part.as_dict().items():
            setattr(counts, key, getattr(counts, key) + value)
    if settings.tagging:
        batches = untagged_batches(run)
        for done_batches, name in enumerate(batches, 1):
            part = tag_batch(run, name, stages.tag)
            for key, value in part.as_dict().items():
                setattr(tagged, key, getattr(tagged, key) + value)
            if progress:
                progress("tag", done_batches, len(batches))
    result = store.load_run(
        run, poll_interval=settings.poll_interval, max_backoff=settings.max_backoff, trigger=trigger
    )
    if result.articles_loaded and settings.search_index:
        seconds = store.refresh_search_index(settings.search_rebuild_max_articles)
        if seconds is not None:
            LOGGER.info("search index rebuilt in %.2fs", seconds)
    return counts, tagged, result.articles_loaded


def resume_pending(
    settings: Settings, store: Store, stages: _Stages, progress: Progress | None = None
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
            run, settings, store, stages, progress, run.info().get("trigger", "resume")
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
    """
    started = time.monotonic()
    registered = 0
    if feeds:
        registered, _ = store.upsert_feeds(feeds)

    with _Stages(settings) as stages:
        resumed = resume_pending(settings, store, stages, progress)
        run = RunDir.create(settings.runs_dir, trigger)
        summary = CycleSummary(run.run_id, feeds_registered=registered, resumed_runs=resumed)
        due = store.due_feeds(datetime.now(UTC), include_not_due=include_not_due)
        summary.feeds_due = len(due)
        summary.polls = poll_feeds(due, settings, run, store.known_article_ids, progress=progress)
        summary.articles, summary.tagging, summary.articles_loaded = _complete_and_load(
            run, settings, store, stages, progress, trigger
        )
    run.remove()
    summary.failures = store.rows(
        "select f.url, p.outcome, p.http_status, p.error from feed_polls p"
        " join feeds f using (feed_id)"
        " where p.run_id = ? and p.outcome not in ('ok', 'not_modified') order by f.url",
        [run.run_id],
    )
    summary.elapsed_s = time.monotonic() - started
    return summary
