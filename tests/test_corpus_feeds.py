"""Every feed of feedparser's test corpus and of the real-feed snapshots, through the poll and
parse path from a loopback server into a real DuckDB file: none may crash the run, each must be
recorded. Skipped when ../shared/corpus is absent."""

import re
from datetime import UTC, datetime

import pytest
from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route, SiteServer
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.poll import poll_feeds
from newsflow.staging import RunDir

from tests.helpers import SHARED_CORPUS

# 2,107 feeds polled and parsed through a loopback server: a minute and a half of parsing by
# design, left to `make test` (make check is the inner loop).
pytestmark = pytest.mark.slow

HEALTHY = {"ok", "not_modified"}
KNOWN_OUTCOMES = HEALTHY | {"parse_error"}
_HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.+?)\s*$", re.MULTILINE)


def corpus_files():
    files = []
    for folder in ("feedparser-tests", "real-feeds"):
        root = SHARED_CORPUS / folder
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.suffix in (".xml", ".json"))
    return files


FILES = corpus_files()
IDS = [str(p.relative_to(SHARED_CORPUS)) for p in FILES]


@pytest.fixture(scope="module")
def polled(tmp_path_factory):
    if not FILES:
        pytest.skip(f"corpus not available: {SHARED_CORPUS}")
    settings = Settings(data_dir=tmp_path_factory.mktemp("corpus"), allow_private=True,
                        per_host_delay=0.0, per_host_concurrency=8)  # fmt: skip
    routes = {}
    for index, path in enumerate(FILES):
        body = path.read_bytes()
        headers = {k.decode().lower(): v.decode() for k, v in _HEADER.findall(body[:2000])}
        ctype = headers.pop("content-type", "application/xml")
        headers = {
            k: v for k, v in headers.items() if k in ("content-language", "content-location")
        }
        routes[f"/f/{index}"] = Route(body, content_type=ctype, headers=headers)
    with SiteServer(routes) as site, Store(settings.database) as store:
        specs = [FeedSpec(f"{site.base_url}/f/{i}") for i in range(len(FILES))]
        store.upsert_feeds(specs)
        run = RunDir.create(settings.runs_dir, "test")
        due = store.due_feeds(datetime.now(UTC))
        poll_feeds(due, settings, run, store.known_article_ids)
        store.load_run(run, poll_interval=600, max_backoff=3600)
        rows = store.rows("select * from feed_polls")
        by_url = {r["url"]: r for r in rows}
        yield {str(p.relative_to(SHARED_CORPUS)): by_url.get(f"{site.base_url}/f/{i}")
               for i, p in enumerate(FILES)}  # fmt: skip


@pytest.mark.corpus
@pytest.mark.parametrize("name", IDS or ["<corpus absent>"])
def test_feed_is_polled_parsed_and_recorded(polled, name):
    poll = polled[name]
    assert poll is not None, f"{name} was not recorded"
    assert poll["outcome"] in KNOWN_OUTCOMES, poll
    if poll["outcome"] == "parse_error":
        assert poll["error"], "a parse error must say why"
    if "/wellformed/" in name or "/json/" in name:
        assert poll["outcome"] == "ok", poll
    if name.startswith("real-feeds/"):
        assert poll["outcome"] == "ok" and not poll["malformed"] and poll["items_seen"] > 0, poll
