"""Polling: fetch due feeds (conditionally), parse them, and stage polls and new items."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from newsflow.config import Settings
from newsflow.fetching.client import FetchResult, PoliteClient
from newsflow.fetching.parse import ParsedFeed, language_code, serve_parser
from newsflow.fetching.rhythm import Hints, next_interval
from newsflow.procs import worker_context
from newsflow.results import Counters
from newsflow.rows import ITEM_SCHEMA, POLL_SCHEMA, DueFeed
from newsflow.staging import RunDir

LOGGER = logging.getLogger(__name__)

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9,"
    " text/xml;q=0.9, */*;q=0.1"
)

KnownIds = Callable[[Iterable[str]], set[str]]
Progress = Callable[[str, int, int], None]


@dataclass
class PollCounts(Counters):
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: int = 0
    items_seen: int = 0
    items_new: int = 0

    @classmethod
    def from_staged(cls, polls) -> PollCounts:
        """The counts of a staged ``polls`` batch (a pyarrow table)."""
        counts = cls(feeds=polls.num_rows)
        for row in polls.select(["outcome", "items_seen", "items_new"]).to_pylist():
            counts.items_seen += row["items_seen"]
            counts.items_new += row["items_new"]
            if row["outcome"] in ("ok", "not_modified"):
                setattr(counts, row["outcome"], getattr(counts, row["outcome"]) + 1)
            else:
                counts.failed += 1
        return counts


WORKER_START_TIMEOUT = 60.0  # seconds a new parser process may take to import feedparser


class _ParserProcess:
    """One parser process and the pipe to it."""

    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve_parser, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(WORKER_START_TIMEOUT) or self.conn.recv() != "ready":
            self.kill()
            raise OSError(f"parser process did not start within {WORKER_START_TIMEOUT:g}s")

    def run(self, job: tuple, timeout: float) -> ParsedFeed | None:
        """The parse of ``job``, or None when it is not done within ``timeout`` seconds."""
        self.conn.send(job)
        if not self.conn.poll(timeout):
            return None
        return self.conn.recv()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.proc.join(1)
        except OSError:
            pass
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class ParserPool:
    """Feed parsing in worker processes, each parse bounded by ``timeout`` seconds.

    feedparser has quadratic corners (thousands of attributes on one element, unclosed
    declarations repeated): a 3 MB document can keep it busy for hours, inside regular
    expressions that no signal interrupts and that hold the GIL. A parse that runs past the
    timeout is abandoned and its process killed; only that feed notices. Time spent waiting
    for a free process does not count.
    """

    def __init__(self, workers: int, timeout: float) -> None:
        self.timeout = timeout
        self._ctx = worker_context()
        self._slots = asyncio.Semaphore(max(1, workers))
        self._idle: list[_ParserProcess] = []
        self._busy: set[_ParserProcess] = set()

    async def parse(
        self, body: bytes, feed_url: str, content_type: str | None, max_items: int
    ) -> ParsedFeed:
        async with self._slots:
            worker = self._idle.pop() if self._idle else None
            try:
                if worker is None:
                    worker = await asyncio.to_thread(_ParserProcess, self._ctx)
                self._busy.add(worker)
                job = (body, feed_url, content_type, max_items)
                parsed = await asyncio.to_thread(worker.run, job, self.timeout)
            except (OSError, EOFError, ValueError) as exc:  # the process died or never started
                if worker is not None:
                    self._busy.discard(worker)
                    worker.kill()
                LOGGER.warning("parser process failed on %s: %r", feed_url, exc)
                return ParsedFeed(
                    usable=False, error=f"parser process failed: {type(exc).__name__}: {exc}"[:500]
                )
            self._busy.discard(worker)
            if parsed is None:
                LOGGER.warning("parsing %s took longer than %gs; abandoned", feed_url, self.timeout)
                worker.kill()
                return ParsedFeed(
                    usable=False,
                    error=f"parsing took longer than {self.timeout:g}s; abandoned",
                )
            self._idle.append(worker)
            return parsed

    def close(self) -> None:
        for worker in self._idle:
            worker.stop()
        for worker in self._busy:
            worker.kill()
        self._idle.clear()
        self._busy.clear()


async def _poll_one(client: PoliteClient, parser: ParserPool, feed: DueFeed, settings: Settings):
    polled_at = datetime.now(UTC)
    res: FetchResult = await client.fetch(
        feed.url,
        max_bytes=settings.max_feed_bytes,
        etag=feed.etag,
        last_modified=feed.last_modified,
        accept=FEED_ACCEPT,
    )
    parsed: ParsedFeed | None = None
    outcome, error = res.outcome, res.error
    if res.ok:
        # Parsing is CPU work, and a hostile document can make it very long: it runs in
        # another process, bounded in time, while other downloads keep flowing.
        parsed = await parser.parse(
            res.body, res.final_url, res.content_type, settings.max_items_per_feed
        )
        if not parsed.usable:
            outcome, error = "parse_error", parsed.error
        elif parsed.warning:
            error = parsed.warning
    return feed, polled_at, res, parsed, outcome, error


def _interval(settings: Settings, feed: DueFeed, polled_at, res, parsed, outcome, seen, new):
    """The adaptive interval after a healthy poll (fetching/rhythm.py); None after a failure."""
    if outcome not in ("ok", "not_modified"):
        return None, None
    hints = Hints(
        ttl=parsed.ttl_s if parsed else None,
        update_period=parsed.update_period_s if parsed else None,
        max_age=res.max_age,
    )
    since = (polled_at - feed.last_polled_at).total_seconds() if feed.last_polled_at else None
    return next_interval(
        settings,
        previous=feed.poll_interval_s,
        first_poll=feed.last_polled_at is None,
        items_seen=seen,
        items_new=new,
        dates=[i.published_at for i in parsed.items] if parsed and parsed.usable else (),
        since_last_poll=since,
        hints=hints,
        now=polled_at,
    )


def _poll_row(run_id, feed, polled_at, res, parsed, outcome, error, seen, new, interval) -> dict:
    return {
        "poll_id": f"{run_id}:{feed.feed_id}",
        "run_id": run_id,
        "feed_id": feed.feed_id,
        "url": feed.url,
        "polled_at": polled_at,
        "http_status": res.status,
        "outcome": outcome,
        "error": error,
        "malformed": bool(parsed and parsed.malformed),
        "bytes": len(res.body),
        "items_seen": seen,
        "items_new": new,
        "duration_ms": round(res.elapsed * 1000, 1),
        "etag": res.etag,
        "last_modified": res.last_modified,
        "retry_after": res.retry_after,
        "feed_title": parsed.title if parsed else None,
        "site_url": parsed.site_url if parsed else None,
        "feed_language": parsed.language if parsed else None,
        "poll_interval": interval[0],
        "interval_reason": interval[1],
    }


async def poll_async(
    feeds: list[DueFeed],
    settings: Settings,
    run_id: str,
    known: KnownIds,
    progress: Progress | None = None,
) -> tuple[list[dict], list[dict], PollCounts]:
    """Poll ``feeds`` concurrently; return (poll rows, new item rows, counts)."""
    results = []
    # extract_timeout bounds the CPU one document may take, a page or a feed.
    parser = ParserPool(settings.extract_workers or os.cpu_count() or 1, settings.extract_timeout)
    try:
        async with PoliteClient(settings) as client:
            tasks = [asyncio.ensure_future(_poll_one(client, parser, f, settings)) for f in feeds]
            for done, fut in enumerate(asyncio.as_completed(tasks), 1):
                results.append(await fut)
                if progress:
                    progress("poll", done, len(feeds))
    finally:
        parser.close()
    results.sort(key=lambda r: r[0].url)  # a stable owner for items several feeds carry

    candidate_ids = [i.article_id for r in results if r[3] and r[3].usable for i in r[3].items]
    already = known(candidate_ids)
    now = datetime.now(UTC)
    polls, counts = [], PollCounts(feeds=len(feeds))
    items: dict[str, dict] = {}  # article_id -> staged item; the first feed to carry it owns it
    for feed, polled_at, res, parsed, outcome, error in results:
        fresh = 0
        language = language_code(feed.language) or (parsed.language if parsed else None)
        usable = parsed.items if parsed and parsed.usable else []
        for item in usable:
            if item.article_id in already:
                continue
            if item.article_id in items:
                _fill_gaps(items[item.article_id], item)
                continue
            fresh += 1
            items[item.article_id] = _item_row(item, feed.feed_id, language, now)
        seen = len(usable)
        # The feed's own rhythm counts items new to the store, whichever feed owns them.
        unseen = sum(1 for item in usable if item.article_id not in already)
        interval = _interval(settings, feed, polled_at, res, parsed, outcome, seen, unseen)
        polls.append(
            _poll_row(run_id, feed, polled_at, res, parsed, outcome, error, seen, fresh, interval)
        )
        counts.items_seen += seen
        counts.items_new += fresh
        if outcome == "ok":
            counts.ok += 1
        elif outcome == "not_modified":
            counts.not_modified += 1
        else:
            counts.failed += 1
            LOGGER.warning("feed %s failed: %s (%s)", feed.url, outcome, error)
    return polls, list(items.values()), counts


def _item_row(item, feed_id: str, language: str | None, now: datetime) -> dict:
    return {
        "article_id": item.article_id,
        "feed_id": feed_id,
        "url": item.url,
        "canonical_url": item.canonical_url,
        "guid": item.guid,
        "title": item.title,
        "authors": item.authors,
        "categories": item.categories,
        "summary": item.summary,
        "content": item.content,
        "published_at": item.published_at,
        "first_seen_at": now,
        "feed_language": language,
    }


def _fill_gaps(row: dict, other) -> None:
    """Another feed carries the same article: take what the first one lacked (a date, a text)."""
    for key in ("title", "summary", "content", "published_at"):
        if row[key] is None and getattr(other, key) is not None:
            row[key] = getattr(other, key)
    for key in ("authors", "categories"):
        row[key] = row[key] + [v for v in getattr(other, key) if v not in row[key]]


def poll_batches(
    batches: dict[str, list[DueFeed]],
    settings: Settings,
    run: RunDir,
    known: KnownIds,
    progress: Progress | None = None,
) -> PollCounts:
    """Stage: poll the feeds of several batches in one pass (one client: hosts interleave) and
    write ``items/<batch>`` then ``polls/<batch>`` for each; an item belongs to the batch of
    the feed that owns it."""
    started = time.monotonic()
    feeds = [feed for batch in batches.values() for feed in batch]
    owner = {feed.feed_id: name for name, batch in batches.items() for feed in batch}
    polls, items, counts = asyncio.run(poll_async(feeds, settings, run.run_id, known, progress))
    for name in batches:
        # Items first: a polls file is the sign that its batch is complete.
        run.write("items", name, [i for i in items if owner[i["feed_id"]] == name], ITEM_SCHEMA)
        run.write("polls", name, [p for p in polls if owner[p["feed_id"]] == name], POLL_SCHEMA)
    LOGGER.info(
        "polled %d feeds in %.1fs: %d ok, %d not modified, %d failed; %d new items",
        counts.feeds,
        time.monotonic() - started,
        counts.ok,
        counts.not_modified,
        counts.failed,
        counts.items_new,
    )
    return counts


def poll_feeds(
    feeds: list[DueFeed],
    settings: Settings,
    run: RunDir,
    known: KnownIds,
    batch: str = "0000",
    progress: Progress | None = None,
) -> PollCounts:
    """Stage: poll one batch of feeds and write ``polls/<batch>`` and ``items/<batch>``."""
    return poll_batches({batch: feeds}, settings, run, known, progress)
