"""The crawl frontier: deadlines that bound the request and not the queue, hosts interleaved,
a fetch budget, retries with backoff, host-aware batches. Unit tests of each rule, and client
tests against a real server on 127.0.0.1 with the default politeness (1 s between requests to
a host, 2 at a time)."""

import asyncio
import itertools
import time
from dataclasses import dataclass

import pytest
from newsflow.config import Settings
from newsflow.demo.newsroom import Route, SiteServer
from newsflow.fetching.client import PoliteClient
from newsflow.fetching.fetch import (
    article_batches,
    feed_batches,
    host_of,
    is_transient,
    pack_by_host,
    retry_delay,
    stage_queue,
)
from newsflow.rows import ITEM_SCHEMA
from newsflow.staging import RunDir

from tests.helpers import with_settings

DEFAULTS = Settings()


@pytest.mark.parametrize(
    ("outcome", "status", "transient"),
    [
        ("timeout", None, True), ("network_error", None, True), ("deferred", 503, True),
        ("http_error", 503, True), ("http_error", 500, True), ("http_error", 429, True),
        ("http_error", 404, False), ("http_error", 410, False), ("http_error", 403, False),
        ("too_large", 200, False), ("invalid_url", None, False), ("blocked", None, False),
        ("redirect_loop", 302, False), ("too_many_redirects", None, False),
    ],
)  # fmt: skip
def test_which_failures_are_retried(outcome, status, transient):
    assert is_transient(outcome, status) is transient


def test_retry_backoff_doubles_from_the_default_delay_to_its_cap():
    delays = [retry_delay(n, None, DEFAULTS) for n in range(1, 12)]
    assert delays[:4] == [300, 600, 1200, 2400]
    assert delays[-1] == DEFAULTS.fetch_retry_max_delay == 6 * 3600
    assert delays == sorted(delays)
    # A longer Retry-After wins, within the cap; a shorter one does not shorten the backoff.
    assert retry_delay(1, 3600, DEFAULTS) == 3600
    assert retry_delay(1, 10, DEFAULTS) == 300
    assert retry_delay(1, 10**9, DEFAULTS) == DEFAULTS.fetch_retry_max_delay


def test_batches_keep_each_host_whole_big_hosts_alone_small_ones_packed():
    groups = {"big.example": list(range(450)), "mid.example": list(range(120))}
    groups.update({f"s{i}.example": list(range(i % 7 + 1)) for i in range(60)})
    batches = pack_by_host(groups, 200)
    assert batches[0] == groups["big.example"]  # alone, although past the size
    for batch in batches[1:]:
        assert len(batch) <= 200
    # Every host's items sit in exactly one batch.
    items_of = {h: {(h, i) for i in items} for h, items in groups.items()}
    tagged = pack_by_host({h: [(h, i) for i in items] for h, items in groups.items()}, 200)
    for host, items in items_of.items():
        holders = [n for n, b in enumerate(tagged) if items & set(b)]
        assert len(holders) == 1, host
    assert sum(len(b) for b in batches) == sum(len(v) for v in groups.values())
    assert pack_by_host(dict(reversed(list(groups.items()))), 200) == batches  # deterministic


@dataclass
class _Feed:
    url: str


def test_poll_batches_are_cut_by_host():
    feeds = [_Feed(f"http://h{i % 5}.example/feed{i}.xml") for i in range(40)]
    batches = feed_batches(feeds, 10)
    hosts = [{host_of(f.url) for f in b} for b in batches]
    seen = [h for hs in hosts for h in hs]
    assert len(seen) == len(set(seen)) == 5  # no host in two batches
    assert sorted(f.url for b in batches for f in b) == sorted(f.url for f in feeds)


def _item(url, **extra):
    return {"article_id": url, "feed_id": "f", "url": url, "canonical_url": url, **extra}


def test_article_batches_put_pending_pages_first_then_retries_then_new(tmp_path):
    run = RunDir.create(tmp_path, "test")
    new = [_item(f"http://a.example/new{i}") for i in range(3)]
    run.write("items", "0000", new, ITEM_SCHEMA)
    stage_queue(
        run,
        [
            _item("http://a.example/retry", queue_state="retrying", fetch_attempts=2),
            _item("http://a.example/pending", queue_state="pending", fetch_attempts=0),
        ],
    )
    (batch,) = article_batches(run, 200)
    assert [i["url"].rsplit("/", 1)[1] for i in batch] == [
        "pending", "retry", "new0", "new1", "new2"
    ]  # fmt: skip


# -- the client, with default politeness ---------------------------------------------------


def _polite(tmp_path, **changes) -> Settings:
    """The settings a user gets, but for loopback being allowed (the test's web is there)."""
    return with_settings(Settings(data_dir=tmp_path / "data", allow_private=True), **changes)


def _fetch_all(settings, urls):
    async def go():
        async with PoliteClient(settings) as client:
            return await asyncio.gather(*(client.fetch(u, max_bytes=1 << 20) for u in urls))

    return asyncio.run(go())


def test_the_deadline_bounds_the_request_not_the_wait_for_the_hosts_turn(tmp_path):
    """The defect of the first run against a real outlet: with 1 s between requests to a host,
    the 61st page waited 60 s for its turn and was recorded as a timeout before it was sent.
    Here the deadline is 3 s and the eighth request waits 7 s: all arrive."""
    with SiteServer({f"/p{i}": Route(b"page") for i in range(8)}) as site:
        settings = _polite(tmp_path, request_deadline=3.0)
        results = _fetch_all(settings, [f"{site.base_url}/p{i}" for i in range(8)])
    assert [r.outcome for r in results] == ["ok"] * 8
    waits = sorted(r.queued for r in results)
    assert waits[-1] > settings.request_deadline + 2  # queued far longer than the deadline
    assert all(r.elapsed - r.queued < 1.0 for r in results)  # the requests themselves: quick


def test_a_host_waiting_for_its_turn_holds_no_slot_another_host_needs(tmp_path):
    """One global slot, a host with six pages at 1 s spacing and a host with one: the small
    host's page is not stuck behind the big host's backlog."""
    with (
        SiteServer({f"/p{i}": Route(b"big") for i in range(6)}, host="127.0.0.2") as big,
        SiteServer({"/only": Route(b"small")}, host="127.0.0.3") as small,
    ):
        settings = _polite(tmp_path, max_concurrency=1)
        urls = [f"{big.base_url}/p{i}" for i in range(6)] + [f"{small.base_url}/only"]
        started = time.monotonic()
        results = _fetch_all(settings, urls)
        took = time.monotonic() - started
    assert all(r.ok for r in results)
    assert results[-1].elapsed < 1.0, results[-1]
    assert took >= 5.0  # the big host kept its spacing


def test_spacing_counts_from_the_real_start_of_each_request(tmp_path):
    """Requests of one host never start closer than per_host_delay, even when they wait for
    a global slot (measured at the server)."""
    starts: list[float] = []

    class Clock(SiteServer):
        def _serve(self, h):
            starts.append(time.monotonic())
            super()._serve(h)

    routes = {f"/p{i}": Route(b"x", delay=0.3) for i in range(5)}
    with Clock(routes, host="127.0.0.4") as a, SiteServer(routes, host="127.0.0.5") as b:
        settings = _polite(tmp_path, max_concurrency=1, per_host_delay=0.5)
        urls = [u for i in range(5) for u in (f"{a.base_url}/p{i}", f"{b.base_url}/p{i}")]
        results = _fetch_all(settings, urls)
    assert all(r.ok for r in results)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # (Measured at the server thread: scheduling jitter allowed, bunched requests are not.)
    assert min(gaps) >= 0.5 / 2, gaps
    assert starts[-1] - starts[0] >= (len(starts) - 1) * 0.5 - 0.3


def test_defaults_are_polite_and_the_budget_fits_the_schedule():
    assert DEFAULTS.per_host_delay == 1.0 and DEFAULTS.per_host_concurrency == 2
    # The last request may start at the end of the budget and run to its deadline; the cycle
    # still ends within the default 10-minute schedule.
    assert DEFAULTS.fetch_budget + DEFAULTS.request_deadline < 600


# -- a page that arrives at a later attempt ------------------------------------------------


def test_a_page_that_arrives_later_upgrades_its_article_in_place(site, tmp_path, model_name):
    """A 503 on the first cycle: the article is stored from its feed text (tagged, searchable)
    and the page waits to be retried. When it comes, the same row takes the page's text, its
    tags are replaced, it gets a story, and search finds the page's words."""
    from newsflow.db.search import search
    from newsflow.db.store import Store
    from newsflow.fetching.feedlist import FeedSpec
    from newsflow.fetching.urls import article_id, canonicalize
    from newsflow.run.cycle import run_cycle

    from tests.helpers import bundled_page, entity_count_errors, rss

    page_url = f"{site.base_url}/world/boat.html"
    teaser = "A strike on a boat in the Caribbean, officials in Washington said on Tuesday."
    site.routes["/feed.xml"] = Route(
        rss("World", [{"link": page_url, "title": "Boat strike", "description": teaser}]),
        content_type="application/rss+xml",
    )
    site.routes["/world/boat.html"] = Route(b"busy", status=503, conditional=False)
    settings = _polite(tmp_path, tag_workers=1)
    aid = article_id(canonicalize(page_url))
    with Store(settings.database) as store:
        first = run_cycle(settings, store, feeds=[FeedSpec(f"{site.base_url}/feed.xml")])
        assert first.articles.pages_retry == 1
        row = store.rows("select * from articles where article_id = ?", [aid])[0]
        assert (row["extraction_status"], row["text"]) == ("feed_content", teaser)
        assert "HTTP 503" in row["extraction_error"] and "attempt 1 of 5" in row["extraction_error"]
        queued = store.rows("select * from page_fetches where article_id = ?", [aid])[0]
        assert (queued["state"], queued["attempts"]) == ("retrying", 1)
        wait = (queued["next_attempt_at"] - queued["last_attempt_at"]).total_seconds()
        assert wait == pytest.approx(settings.fetch_retry_delay, abs=5)
        before = store.query("select count(*) from article_entities where article_id = ?", [aid])[
            1
        ][0][0]

        # Not due yet: the next cycle leaves it alone.
        second = run_cycle(settings, store)
        assert second.pages_requeued == 0 and site.hits["/world/boat.html"] == 1

        site.routes["/world/boat.html"] = Route(bundled_page("5fa3154ec031ab35"))
        store.con.execute("update page_fetches set next_attempt_at = now() - interval 1 minute")
        third = run_cycle(settings, store)
        assert (third.pages_requeued, third.articles_upgraded, third.articles_loaded) == (1, 1, 0)
        rows = store.rows("select * from articles")
        assert len(rows) == 1 and rows[0]["article_id"] == aid
        row = rows[0]
        assert row["extraction_status"] == "ok" and row["extraction_error"] is None
        assert row["word_count"] > 100 and row["story_id"] and row["fingerprint"]
        done = store.rows("select * from page_fetches where article_id = ?", [aid])[0]
        assert (done["state"], done["attempts"], done["last_error"]) == ("done", 2, None)
        status = store.rows(
            "select kind, count(*) as n from article_tagging where article_id = ? group by 1",
            [aid],
        )
        assert {r["kind"]: r["n"] for r in status} == {"entities": 1, "topics": 1}
        after = store.query("select count(*) from article_entities where article_id = ?", [aid])[1][
            0
        ][0]
        assert after > before
        dupes = store.query(
            "select count(*) from (select entity, label from article_entities"
            " group by all having count(*) > 1)"
        )[1][0][0]
        assert dupes == 0
        assert entity_count_errors(store) == {}  # the old rows' counts taken away
        word = next(
            w for w in row["text"].split() if len(w) > 7 and w.isalpha() and w not in teaser
        )
        assert [h.article_id for h in search(store.con, word)] == [aid]
        assert (
            store.query("select articles_upgraded from runs order by started_at desc limit 1")[1][
                0
            ][0]
            == 1
        )


def _served_items(site, slugs: list[str]) -> list[dict]:
    """A bundled article page per slug on ``site`` (one host), and the staged item of each."""
    from tests.helpers import bundled_page

    items = []
    for s in slugs:
        site.routes[f"/a/{s}"] = Route(bundled_page(s))
        items.append({
            "article_id": s, "feed_id": "f", "url": f"{site.base_url}/a/{s}",
            "canonical_url": s, "guid": None, "title": s, "authors": [], "categories": [],
            "summary": None, "content": None, "published_at": None, "first_seen_at": None,
            "feed_language": None,
        })  # fmt: skip
    return items


@pytest.mark.slow  # ten pages a politeness turn apart (~10 s)
def test_a_hosts_requests_take_their_turns_in_order(site, tmp_path):
    """Two workers per host: neither may lose the race for the host's turn again and again
    (one page once waited 12 s of a 12 s crawl). Each waits about one turn of the other."""
    from newsflow.fetching.extract import ExtractorPool
    from newsflow.fetching.fetch import crawl

    from tests.helpers import bundled_slugs

    slugs = bundled_slugs()[:10]
    items = _served_items(site, slugs)
    pool = ExtractorPool(1, 20)
    try:
        rows = asyncio.run(crawl(items, _polite(tmp_path, respect_robots=False), pool))
    finally:
        pool.close()
    assert sorted(r["extraction_status"] for r in rows) == ["ok"] * len(slugs)
    waits = [r["queued_s"] for r in rows]
    # About two turns each; a starved request waited the whole crawl (12 s of 12 s).
    assert max(waits) <= 3 * DEFAULTS.per_host_delay + 0.5, waits


def test_a_batch_that_cannot_be_written_stops_the_crawl_with_its_error(site, tmp_path):
    """Defect: a finished extraction left the task set before anything awaited it, so the
    error of its ``on_row`` (the batch's file written on a full disk) was never retrieved:
    the file was missing and the cycle went on. Now the crawl raises it, and starts no more
    requests. Default politeness: the first row fails while later pages still wait their
    turn."""
    import errno

    from newsflow.fetching.extract import ExtractorPool
    from newsflow.fetching.fetch import crawl

    from tests.helpers import bundled_slugs

    slugs = bundled_slugs()[:4]
    items = _served_items(site, slugs)
    rows: list[dict] = []

    def on_row(row: dict) -> None:
        if not rows:
            rows.append(row)
            raise OSError(errno.ENOSPC, "No space left on device", "articles/batch-0.parquet")
        rows.append(row)

    pool = ExtractorPool(1, 20)
    try:
        settings = _polite(tmp_path, respect_robots=False, per_host_concurrency=1)
        with pytest.raises(OSError, match="No space left on device"):
            asyncio.run(crawl(items, settings, pool, on_row=on_row))
    finally:
        pool.close()
    # One page was in flight when the first failed (waiting for its turn); none after it.
    assert sum(n for path, n in site.hits.items() if path.startswith("/a/")) <= 2


def test_ingest_json_shows_the_pages_waiting_per_host(site, tmp_path, capsys):
    """``newsflow ingest --json`` with a page to retry: the queue per host, dates as ISO text."""
    import json

    from newsflow.cli import main

    from tests.helpers import rss

    site.routes["/feed.xml"] = Route(
        rss("F", [{"link": f"{site.base_url}/busy.html", "title": "Busy", "description": "x y z"}]),
        content_type="application/rss+xml",
    )
    site.routes["/busy.html"] = Route(b"busy", status=503, conditional=False)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site.base_url}/feed.xml\n")
    args = ["ingest", "--data-dir", str(tmp_path / "data"), "--feeds", str(feeds)]
    assert main([*args, "--allow-private", "--no-tag", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (waiting,) = summary["pages_waiting"]
    assert (waiting["host"], waiting["pending"], waiting["retrying"]) == ("127.0.0.1", 0, 1)
    assert "HTTP 503" in waiting["last_error"]
    datetime_text = waiting["next_retry_at"]
    assert isinstance(datetime_text, str) and datetime_text[:2] == "20"
    assert summary["articles"]["pages_retry"] == 1 and summary["timings"]["fetch"]["wall_s"] >= 0


def test_a_run_staged_by_the_previous_version_still_loads(tmp_path):
    """A crash, then an upgrade: the staged files lack the frontier's columns. They load with
    defaults (page done, not requeued) instead of failing every later cycle."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq
    from newsflow.db.store import Store
    from newsflow.rows import ARTICLE_SCHEMA, POLL_SCHEMA, STAGED_SINCE_006

    now = datetime.now(UTC)
    run = RunDir.create(tmp_path / "runs", "cli")
    old_polls = pa.schema([f for f in POLL_SCHEMA if f.name not in STAGED_SINCE_006["polls"]])
    old_articles = pa.schema(
        [f for f in ARTICLE_SCHEMA if f.name not in STAGED_SINCE_006["articles"]]
    )
    poll = {"poll_id": "r:f", "run_id": run.run_id, "feed_id": "f", "url": "http://a.example/f",
            "polled_at": now, "outcome": "ok", "malformed": False, "bytes": 10, "items_seen": 1,
            "items_new": 1, "duration_ms": 1.0}  # fmt: skip
    article = {"article_id": "a1", "feed_id": "f", "url": "http://a.example/1",
               "canonical_url": "http://a.example/1", "title": "T", "authors": [],
               "feed_categories": [], "first_seen_at": now, "text": "some text here",
               "word_count": 3, "extraction_status": "ok"}  # fmt: skip
    pq.write_table(
        pa.Table.from_pylist([poll], schema=old_polls), run.path / "polls" / "0000.parquet"
    )
    pq.write_table(
        pa.Table.from_pylist([article], schema=old_articles), run.path / "articles" / "0000.parquet"
    )
    with Store(tmp_path / "db.sqlite") as store:
        result = store.load_run(run, poll_interval=600, max_backoff=86400)
        assert result.articles_loaded == 1
        assert store.rows("select count(*) as n from page_fetches")[0]["n"] == 0
