"""Fetching and extraction: new items to article rows, staged as ``articles/<batch>``.

The fetch is a crawl frontier, not a loop over items:

- **Hosts are interleaved.** Each host has its own queue, worked by ``per_host_concurrency``
  workers that keep to its spacing (``per_host_delay``); a request waiting for its host's turn
  holds no global slot, so a host with 400 pages never delays a host with 4. A request's
  ``request_deadline`` starts when it is sent (newsflow/fetching/client.py); queue time is measured
  apart (``queued_s``).
- **A cycle has a budget** (``fetch_budget``). A host whose next turn falls after it stops;
  its remaining pages stay **pending** (stored from their feed content meanwhile) and go first
  in the next cycle.
- **Transient failures are retried** in later cycles (timeouts, connection errors, 429, 5xx,
  ``deferred``, robots.txt unreachable) with capped exponential backoff, up to
  ``fetch_max_attempts``; permanent ones (404, 410 and other 4xx, robots disallow, too large,
  not HTML, invalid or blocked URL, nothing to extract) are final at once. ``load`` records the
  page's state in ``page_fetches`` and upgrades the stored article in place when it arrives.
- **Batches are cut by host** (``article_batches``): a host's pages of a run sit in one batch,
  so parallel fetch tasks never hit one host at once.

Downloads overlap with extraction: each page goes to the extractor pool as soon as it arrives.
A page that cannot be fetched or extracted keeps the feed's own text (``feed_content``) or,
without any, is kept as ``failed`` (``pending`` while it may still come).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from newsflow.config import Settings
from newsflow.fetching.client import FetchResult, PoliteClient
from newsflow.fetching.extract import Extracted, ExtractorPool, detect_language, word_count
from newsflow.fetching.parse import clean_text, language_code, richest
from newsflow.fetching.poll import Progress
from newsflow.fetching.titles import strip_site_name
from newsflow.results import Counters
from newsflow.rows import ARTICLE_SCHEMA, ITEM_SCHEMA
from newsflow.staging import RunDir, is_disk_full

LOGGER = logging.getLogger(__name__)

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"

# Fetch states of a page (staged with its article, kept in the page_fetches table).
DONE, RETRY, FINAL, PENDING = "done", "retry", "final", "pending"
TRANSIENT_OUTCOMES = frozenset({"timeout", "network_error", "deferred"})


def is_transient(outcome: str, status: int | None) -> bool:
    """Whether a failed page fetch may succeed later: timeouts, connection errors, a host
    that asked to wait, 429 and 5xx. Everything else (404, 410, other 4xx, blocked, invalid,
    too large, redirect loops) is final."""
    if outcome in TRANSIENT_OUTCOMES:
        return True
    return outcome == "http_error" and status is not None and (status == 429 or status >= 500)


def retry_delay(attempts: int, retry_after: float | None, settings: Settings) -> float:
    """Seconds before the next attempt of a page that failed ``attempts`` times: the base delay
    doubling with each failure, capped; a longer Retry-After (within the cap) wins."""
    delay = settings.fetch_retry_delay * 2 ** max(0, min(attempts - 1, 30))
    delay = min(delay, settings.fetch_retry_max_delay)
    if retry_after:
        delay = max(delay, min(retry_after, settings.fetch_retry_max_delay))
    return delay


def host_of(url: str) -> str:
    """The host a URL's politeness belongs to (the client's per-host gate uses the same)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@dataclass
class FetchCounts(Counters):
    """Articles of a fetch by extraction status, and pages by frontier state."""

    articles: int = 0
    ok: int = 0
    feed_content: int = 0
    failed: int = 0
    pending: int = 0  # no text yet: the page is pending or to retry, and the feed gave none
    pages_pending: int = 0  # not fetched within the budget: first in the next cycle
    pages_retry: int = 0  # failed transiently: retried in a later cycle
    pages_final: int = 0  # failed for good (this attempt or the last allowed)
    # The longest wait of a request for its host's turn and a slot.
    max_queued_s: float = field(default=0.0, metadata={"merge": "max", "digits": 1})
    pending_by_host: dict[str, int] = field(default_factory=dict)

    def add(self, row: dict) -> None:
        self.articles += 1
        status = row["extraction_status"]
        setattr(self, status, getattr(self, status) + 1)
        state = row.get("fetch_state")
        if state == PENDING:
            self.pages_pending += 1
            self.pending_by_host[row["host"]] = self.pending_by_host.get(row["host"], 0) + 1
        elif state == RETRY:
            self.pages_retry += 1
        elif state == FINAL:
            self.pages_final += 1
        self.max_queued_s = max(self.max_queued_s, row.get("queued_s") or 0.0)

    def as_dict(self) -> dict:
        d = super().as_dict()
        d["pending_by_host"] = dict(Counter(self.pending_by_host).most_common())
        return d


def batch_name(index: int) -> str:
    return f"{index:04d}"


_QUEUE_ORDER = {"pending": 0, "retrying": 1}


def pack_by_host(groups: dict[str, list], size: int) -> list[list]:
    """Cut work into batches so that each host's share sits in one batch: a host with ``size``
    items or more alone (however many), smaller ones packed together, largest first (first
    fit), up to ``size`` a batch. Deterministic for the same input."""
    hosts = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    alone = [list(items) for _, items in hosts if len(items) >= size]
    packing: list[list] = []
    for _, items in hosts:
        if len(items) >= size:
            continue
        for batch in packing:
            if len(batch) + len(items) <= size:
                batch.extend(items)
                break
        else:
            packing.append(list(items))
    return alone + packing


def feed_batches(feeds: list, size: int) -> list[list]:
    """Poll batches of due feeds (objects with ``url``), cut by host like article batches."""
    by_host: dict[str, list] = {}
    for feed in feeds:
        by_host.setdefault(host_of(feed.url), []).append(feed)
    return pack_by_host(by_host, size)


def article_batches(run: RunDir, batch_size: int) -> list[list[dict]]:
    """The run's items to fetch (new ones, deduplicated across poll batches, and the pages the
    fetch queue gave back), cut into batches **by host**: all of a host's pages sit in one
    batch, so tasks running side by side never fetch from one host at once. A host with
    ``batch_size`` pages or more has a batch of its own (however large); smaller hosts are
    packed together, largest first, into batches of at most ``batch_size``. Within a host,
    pending pages come first, then retries, then new items. Deterministic: every task of a run
    computes the same batches."""
    seen: set[str] = set()
    by_host: dict[str, list[dict]] = {}
    for row in run.read("items", ITEM_SCHEMA):
        if row["article_id"] not in seen:
            seen.add(row["article_id"])
            by_host.setdefault(host_of(row["url"]), []).append(row)
    for items in by_host.values():
        items.sort(key=lambda r: _QUEUE_ORDER.get(r["queue_state"] or "", 2))
    return pack_by_host(by_host, batch_size)


def _is_http(url: str | None) -> bool:
    """A page's image URL worth keeping: http(s), of a sane length."""
    return url is not None and len(url) <= 2000 and url.lower().startswith(("http://", "https://"))


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
    final: bool = True,
) -> dict:
    """Build the staged article from the item and what the page gave (or why it gave nothing).
    ``final=False``: the page may still come (pending, to retry), so an item without feed text
    is ``pending`` rather than ``failed``."""
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
        "description": None,
        "top_image": None,
        "keywords": [],
    }
    if page is not None and page.ok:
        # What a page says is cleaned like what a feed says: no control characters, nothing
        # that cannot be encoded.
        row.update(
            title=strip_site_name(
                item["title"] or clean_text(page.title), page.site_name, final_url or item["url"]
            ),
            authors=item["authors"] or [clean_text(a) for a in page.authors or []],
            published_at=item["published_at"] or _parse_page_date(page.date),
            site_name=clean_text(page.site_name),
            description=clean_text(page.description),
            top_image=page.top_image if _is_http(page.top_image) else None,
            keywords=[k for k in (clean_text(k) for k in page.keywords or []) if k],
            language=language_code(page.language) or language_code(item["feed_language"]),
            text=clean_text(page.text),
            extraction_status="ok",
            extraction_error=None,
        )
    else:
        reason = problem or (page.error if page else None) or "page not extracted"
        # The richest body of the feed: never shorter than the item's own summary.
        fallback = richest(item["content"], item["summary"])
        row.update(
            title=strip_site_name(
                item["title"] or clean_text(page.title if page else None),
                page.site_name if page else None,
                final_url or item["url"],
            ),
            language=detect_language(fallback, title=item["title"])
            or language_code(item["feed_language"]),
            text=fallback,
            extraction_status="feed_content" if fallback else "failed" if final else "pending",
            extraction_error=reason,
        )
    text = row["text"]
    row["word_count"] = word_count(text)
    row["content_hash"] = hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None
    return row


def _with_fetch(
    row: dict,
    item: dict,
    state: str,
    *,
    error: str | None = None,
    attempted: bool = True,
    next_at: datetime | None = None,
    queued: float = 0.0,
) -> dict:
    row.update(
        host=host_of(item["url"]),
        fetch_state=state,
        fetch_attempts=(item.get("fetch_attempts") or 0) + (1 if attempted else 0),
        fetch_error=error,
        next_attempt_at=next_at,
        attempted_at=datetime.now(UTC) if attempted else None,
        queued_s=round(queued, 3),
        requeued=item.get("queue_state") is not None,
    )
    return row


@dataclass
class _Page:
    """What fetching one item's page gave: a body to extract, or a problem and its kind."""

    res: FetchResult | None = None
    problem: str | None = None
    transient: bool = False

    @property
    def fetched(self) -> bool:
        return self.problem is None


async def fetch_page(item: dict, client: PoliteClient, settings: Settings) -> _Page:
    """The page of ``item["url"]``, fetched as politely as the settings say (robots.txt
    first); its ``problem`` says why there is none."""
    url = item["url"]
    if settings.respect_robots:
        allowed, why = await client.robots_allowed(url)
        if not allowed:
            # An unreachable robots.txt (5xx, network) may come back; a disallow will not.
            return _Page(problem=why, transient=bool(why and why.startswith("robots.txt")))
    res = await client.fetch(url, max_bytes=settings.max_page_bytes, accept=PAGE_ACCEPT)
    if not res.ok:
        problem = f"page {res.outcome}: {res.error}" if res.error else f"page {res.outcome}"
        return _Page(res, problem, is_transient(res.outcome, res.status))
    ctype = (res.content_type or "").lower()
    if ctype and not any(t in ctype for t in ("html", "xml", "text/plain")):
        return _Page(res, f"not an HTML page ({ctype})")
    return _Page(res)


def _failed_row(item: dict, page: _Page, settings: Settings) -> dict:
    """The article of a page that did not come: final, or to retry with backoff."""
    res = page.res
    attempts = (item.get("fetch_attempts") or 0) + 1
    final_url, status = (res.final_url, res.status) if res else (None, None)
    if not page.transient:
        row = article_row(item, final_url, status, None, page.problem)
        return _with_fetch(row, item, FINAL, error=page.problem, queued=res.queued if res else 0)
    if attempts >= settings.fetch_max_attempts:
        problem = f"{page.problem} (gave up after {attempts} attempts)"
        row = article_row(item, final_url, status, None, problem)
        return _with_fetch(row, item, FINAL, error=page.problem, queued=res.queued if res else 0)
    delay = retry_delay(attempts, res.retry_after if res else None, settings)
    next_at = datetime.now(UTC) + timedelta(seconds=delay)
    problem = (
        f"{page.problem} (attempt {attempts} of {settings.fetch_max_attempts}; "
        f"retried after {next_at:%Y-%m-%d %H:%M} UTC)"
    )
    row = article_row(item, final_url, status, None, problem, final=False)
    return _with_fetch(
        row, item, RETRY, error=page.problem, next_at=next_at, queued=res.queued if res else 0
    )


def _pending_row(item: dict, why: str, not_before: float | None = None) -> dict:
    next_at = datetime.now(UTC) + timedelta(seconds=not_before) if not_before else None
    row = article_row(item, None, None, None, why, final=False)
    return _with_fetch(row, item, PENDING, error=why, attempted=False, next_at=next_at)


def _unexpected_row(item: dict, exc: Exception) -> dict:
    LOGGER.warning("fetching %s failed: %r", item["url"], exc, exc_info=True)
    problem = f"unexpected {type(exc).__name__}: {exc}"[:500]
    return _with_fetch(article_row(item, None, None, None, problem), item, FINAL, error=problem)


async def crawl(
    items: list[dict],
    settings: Settings,
    pool: ExtractorPool,
    *,
    deadline: float | None = None,
    on_row: Callable[[dict], None] | None = None,
    progress: Progress | None = None,
) -> list[dict]:
    """Fetch and extract ``items`` as a frontier (see the module's notes); one article row per
    item, in no particular order. ``deadline`` (monotonic) ends the budget: no request starts
    after it, and what is left is pending. With ``on_row``, each row goes there as it is done
    and none is kept (the list returned is empty)."""
    deadline = time.monotonic() + settings.fetch_budget if deadline is None else deadline
    queues: dict[str, deque] = {}
    for item in items:
        queues.setdefault(host_of(item["url"]), deque()).append(item)
    rows: list[dict] = []  # kept only without ``on_row``, which takes each row as it comes
    finished = 0
    # Bodies waiting for an extractor are held in memory: at most this many at a time.
    extract_slots = asyncio.Semaphore(max(8, 4 * pool.workers))
    extractions: set[asyncio.Task] = set()
    # An extraction that raised (``on_row`` could not write its batch: a full disk). Kept here
    # because the task leaves ``extractions`` as it finishes, before anything awaits it; no
    # request starts after one, and the crawl raises it.
    failed: list[BaseException] = []

    def extraction_done(task: asyncio.Task) -> None:
        extractions.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            failed.append(exc)

    def finish(row: dict) -> None:
        nonlocal finished
        finished += 1
        if on_row:
            on_row(row)
        else:
            rows.append(row)
        if progress:
            progress("fetch", finished, len(items))

    async def extract(item: dict, res: FetchResult) -> None:
        try:
            page = await pool.extract(res.body, res.final_url)
            row = article_row(item, res.final_url, res.status, page, None)
            state = DONE if page.ok else FINAL
            finish(_with_fetch(row, item, state, error=page.error, queued=res.queued))
        except Exception as exc:
            if is_disk_full(exc):
                raise
            finish(_unexpected_row(item, exc))
        finally:
            extract_slots.release()

    async def work(host: str, queue: deque, client: PoliteClient) -> None:
        while queue and not failed:
            if max(time.monotonic(), client.next_turn(host)) > deadline:
                return  # the budget is spent for this host: the rest stays pending
            item = queue.popleft()
            try:
                page = await fetch_page(item, client, settings)
            except Exception as exc:  # one page this code did not foresee fails alone
                if is_disk_full(exc):
                    raise
                finish(_unexpected_row(item, exc))
                continue
            if not page.fetched:
                finish(_failed_row(item, page, settings))
                if page.res is not None and page.res.outcome == "deferred":
                    # The host asked for a long pause: its other pages wait for it too.
                    why = f"page deferred: {page.res.error}"
                    while queue:
                        finish(_pending_row(queue.popleft(), why, page.res.retry_after))
                continue
            assert page.res is not None  # fetched
            await extract_slots.acquire()
            task = asyncio.ensure_future(extract(item, page.res))
            extractions.add(task)
            task.add_done_callback(extraction_done)

    # The language model the feed-text fallback uses loads once, off the loop, before any
    # request has taken its host's turn (loaded inside the loop, it would stall every request).
    await asyncio.to_thread(detect_language, "warm up " * 20)
    async with PoliteClient(settings) as client:
        workers = [
            work(host, queue, client)
            for host, queue in queues.items()
            for _ in range(settings.per_host_concurrency)
        ]
        await asyncio.gather(*workers)
        while extractions:
            await asyncio.gather(*list(extractions), return_exceptions=True)
    if failed:
        raise failed[0]
    budget_s = settings.fetch_budget
    for host, queue in queues.items():
        why = (
            f"page pending: the fetch budget ({budget_s:g}s, NEWSFLOW_FETCH_BUDGET) ran out "
            f"before {host}'s turn; fetched first by the next cycle"
        )
        while queue:
            finish(_pending_row(queue.popleft(), why))
    return rows


QUEUE_BATCH = "queue"  # items/queue.parquet: the pages the fetch queue gave back to a run


def stage_queue(run: RunDir, pages: list[dict]) -> int:
    """Stage the pages the fetch queue gives back (``Store.due_pages``) as the run's items,
    beside the polled ones; ``article_batches`` puts them first within their host."""
    if pages:
        run.write("items", QUEUE_BATCH, pages, ITEM_SCHEMA)
    return len(pages)


def fetch_batches(
    batches: dict[str, list[dict]],
    settings: Settings,
    run: RunDir,
    pool: ExtractorPool | None = None,
    progress: Progress | None = None,
) -> FetchCounts:
    """Stage: fetch and extract article batches in one frontier (one budget); write each
    ``articles/<batch>`` as soon as all its items are done."""
    started = time.monotonic()
    own_pool = pool is None
    pool = pool or ExtractorPool(settings.extract_workers, settings.extract_timeout)
    owner = {item["article_id"]: name for name, items in batches.items() for item in items}
    waiting = {name: len(items) for name, items in batches.items()}
    done: dict[str, list[dict]] = {name: [] for name in batches}
    counts = FetchCounts()

    def write(name: str) -> None:
        rows = sorted(done.pop(name), key=lambda r: r["article_id"])
        run.write("articles", name, rows, ARTICLE_SCHEMA)

    def on_row(row: dict) -> None:
        name = owner[row["article_id"]]
        done[name].append(row)
        counts.add(row)
        waiting[name] -= 1
        if not waiting[name]:
            write(name)

    items = [item for batch in batches.values() for item in batch]
    try:
        for name in [n for n, left in waiting.items() if not left]:
            write(name)  # an empty batch is still a batch that is done
        asyncio.run(crawl(items, settings, pool, on_row=on_row, progress=progress))
    finally:
        if own_pool:
            pool.close()
    LOGGER.info(
        "fetched and extracted %d articles in %.1fs: %d ok, %d feed content, %d failed, "
        "%d pending; pages: %d left pending by the budget, %d to retry; longest queue wait %.1fs",
        counts.articles,
        time.monotonic() - started,
        counts.ok,
        counts.feed_content,
        counts.failed,
        counts.pending,
        counts.pages_pending,
        counts.pages_retry,
        counts.max_queued_s,
    )
    return counts


def fetch_and_extract(
    items: list[dict],
    settings: Settings,
    run: RunDir,
    batch: str,
    pool: ExtractorPool | None = None,
    progress: Progress | None = None,
) -> FetchCounts:
    """Stage: fetch and extract one batch of items; write ``articles/<batch>``."""
    return fetch_batches({batch: items}, settings, run, pool=pool, progress=progress)
