"""Fetching and extraction: new items to article rows, staged as ``articles/<batch>``.

Downloads overlap with extraction: each page goes to the extractor pool as soon as it arrives.
A page that cannot be fetched or extracted keeps the feed's own text (``feed_content``) or,
without any, is kept as ``failed``; either way the reason is in ``extraction_error``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.client import PoliteClient
from pipeline.config import Settings
from pipeline.extract import Extracted, ExtractorPool, detect_language, word_count
from pipeline.parse import clean_text
from pipeline.poll import Progress
from pipeline.stage import ARTICLE_SCHEMA, ITEM_SCHEMA, RunDir
from pipeline.store import is_disk_full

LOGGER = logging.getLogger(__name__)

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"


@dataclass
class FetchCounts:
    articles: int = 0
    ok: int = 0
    feed_content: int = 0
    failed: int = 0

    def add(self, status: str) -> None:
        self.articles += 1
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def batch_name(index: int) -> str:
    return f"{index:04d}"


def article_batches(run: RunDir, batch_size: int) -> list[list[dict]]:
    """The run's new items, deduplicated across poll batches, split into article batches."""
    seen: set[str] = set()
    items = []
    for row in run.read("items", ITEM_SCHEMA):
        if row["article_id"] not in seen:
            seen.add(row["article_id"])
            items.append(row)
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def _parse_page_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return when if when <= datetime.now(UTC) else None


def article_row(
    item: dict,
    final_url: str | None,
    http_status: int | None,
    page: Extracted | None,
    problem: str | None,
) -> dict:
    """Build the staged article from the item and what the page gave (or why it gave nothing)."""
    row = {
        "article_id": item["article_id"],
        "feed_id": item["feed_id"],
        "url": item["url"],
        "canonical_url": item["canonical_url"],
        "final_url": final_url,
        "guid": item["guid"],
        "title": item["title"],
        "authors": item["authors"] or [],
        "feed_categories": item["categories"] or [],
        "summary": item["summary"],
        "published_at": item["published_at"],
        "first_seen_at": item["first_seen_at"],
        "http_status": http_status,
        "site_name": None,
    }
    if page is not None and page.ok:
        # What a page says is cleaned like what a feed says: no control characters, nothing
        # that cannot be encoded.
        row.update(
            title=item["title"] or clean_text(page.title),
            authors=item["authors"] or [clean_text(a) for a in page.authors or []],
            published_at=item["published_at"] or _parse_page_date(page.date),
            site_name=clean_text(page.site_name),
            language=page.language or item["feed_language"],
            text=clean_text(page.text),
            extraction_status="ok",
            extraction_error=None,
        )
    else:
        reason = problem or (page.error if page else None) or "page not extracted"
        fallback = item["content"] or item["summary"]
        row.update(
            title=item["title"] or clean_text(page.title if page else None),
            language=detect_language(fallback) or item["feed_language"],
            text=fallback,
            extraction_status="feed_content" if fallback else "failed",
            extraction_error=reason,
        )
    text = row["text"]
    row["word_count"] = word_count(text)
    row["content_hash"] = hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None
    return row


async def _one(item: dict, client: PoliteClient, pool: ExtractorPool, settings: Settings) -> dict:
    try:
        return await _fetch_one(item, client, pool, settings)
    except Exception as exc:  # one page this code did not foresee must not fail the batch
        if is_disk_full(exc):
            raise  # not the page's fault: the cycle stops and says so (pipeline/ingest.py)
        LOGGER.warning("fetching %s failed: %r", item["url"], exc, exc_info=True)
        return article_row(item, None, None, None, f"unexpected {type(exc).__name__}: {exc}"[:500])


async def _fetch_one(
    item: dict, client: PoliteClient, pool: ExtractorPool, settings: Settings
) -> dict:
    url = item["url"]
    if settings.respect_robots:
        allowed, why = await client.robots_allowed(url)
        if not allowed:
            return article_row(item, None, None, None, why)
    res = await client.fetch(url, max_bytes=settings.max_page_bytes, accept=PAGE_ACCEPT)
    if not res.ok:
        problem = f"page {res.outcome}: {res.error}" if res.error else f"page {res.outcome}"
        return article_row(item, res.final_url, res.status, None, problem)
    ctype = (res.content_type or "").lower()
    if ctype and not any(t in ctype for t in ("html", "xml", "text/plain")):
        return article_row(item, res.final_url, res.status, None, f"not an HTML page ({ctype})")
    page = await pool.extract(res.body, res.final_url)
    return article_row(item, res.final_url, res.status, page, None)


async def fetch_async(
    items: list[dict], settings: Settings, pool: ExtractorPool, progress: Progress | None = None
) -> list[dict]:
    async with PoliteClient(settings) as client:
        tasks = [asyncio.ensure_future(_one(item, client, pool, settings)) for item in items]
        rows = []
        for done, fut in enumerate(asyncio.as_completed(tasks), 1):
            rows.append(await fut)
            if progress:
                progress("fetch", done, len(items))
    return rows


def fetch_and_extract(
    items: list[dict],
    settings: Settings,
    run: RunDir,
    batch: str,
    pool: ExtractorPool | None = None,
    progress: Progress | None = None,
) -> FetchCounts:
    """Stage: fetch and extract one batch of new items; write ``articles/<batch>``."""
    started = time.monotonic()
    own_pool = pool is None
    pool = pool or ExtractorPool(settings.extract_workers, settings.extract_timeout)
    try:
        rows = asyncio.run(fetch_async(items, settings, pool, progress))
    finally:
        if own_pool:
            pool.close()
    rows.sort(key=lambda r: r["article_id"])
    run.write("articles", batch, rows, ARTICLE_SCHEMA)
    counts = FetchCounts()
    for row in rows:
        counts.add(row["extraction_status"])
    LOGGER.info(
        "fetched and extracted %d articles in %.1fs: %d ok, %d feed content, %d failed",
        counts.articles,
        time.monotonic() - started,
        counts.ok,
        counts.feed_content,
        counts.failed,
    )
    return counts
