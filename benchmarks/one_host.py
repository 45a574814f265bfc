"""Many new pages on one host, with the default (polite) settings: the first run a user makes
against an outlet with several feeds.

The 181 pages of the article-extraction benchmark (``../shared/corpus``; the 50 bundled sample
pages without it) are served by one host, 127.0.0.2, through three feeds, and ingested in one
cycle with newsflow's defaults: 1 s between requests to the host, 2 at a time, the 60 s request
deadline. Before the crawl frontier, every page past the 60th timed out while it waited for its
turn (121 of 181 stored as ``failed``). Prints the statuses, how many pages failed on a timeout,
the longest wait for the host's turn, and the extraction F1 through the whole pipeline.

    .venv/bin/python -m benchmarks.one_host [--json]
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import tempfile
import time
from pathlib import Path

from newsflow.config import Settings
from newsflow.demo.newsroom import Route, SiteServer
from newsflow.fetching.feedlist import FeedSpec

from benchmarks.common import BUNDLED_PAGES, CORPUS, run_main
from benchmarks.extraction import score

FEEDS = 3


def pages() -> tuple[dict[str, bytes], dict[str, str | None], str]:
    """{slug: html}, {slug: true body or None}, where they came from."""
    truth_file = CORPUS / "ground-truth.json"
    if truth_file.exists():
        truth = json.loads(truth_file.read_text(encoding="utf-8"))
        bodies = {
            k: gzip.decompress((CORPUS / "html" / f"{k}.html.gz").read_bytes()) for k in truth
        }
        return bodies, {k: t["articleBody"] for k, t in truth.items()}, str(CORPUS)
    bodies = {
        p.name.removesuffix(".html.gz"): gzip.decompress(p.read_bytes())
        for p in BUNDLED_PAGES.glob("*.html.gz")
    }
    return bodies, dict.fromkeys(bodies), str(BUNDLED_PAGES)


def _feed(base: str, slugs: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Story {s}</title><link>{base}/a/{s}.html</link>"
        f"<description>{html.escape('Teaser of story ' + s)}</description></item>"
        for s in slugs
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>One host</title>'
        f"<link>{base}/</link>{items}</channel></rss>"
    ).encode()


def run(settings: Settings | None = None) -> dict:
    """Serve the pages on one host, ingest them once with ``settings`` (default: newsflow's
    defaults, loopback allowed), and report."""
    from newsflow.db.store import Store
    from newsflow.run.cycle import run_cycle

    bodies, truth, source = pages()
    slugs = sorted(bodies)
    with tempfile.TemporaryDirectory() as tmp, SiteServer(host="127.0.0.2") as site:
        settings = settings or Settings(allow_private=True)
        settings = settings.with_overrides(data_dir=Path(tmp))
        site.routes["/robots.txt"] = Route(b"User-agent: *\nAllow: /\n", content_type="text/plain")
        for s in slugs:
            site.routes[f"/a/{s}.html"] = Route(bodies[s])
        feeds = []
        for i in range(FEEDS):
            site.routes[f"/feed{i}.xml"] = Route(
                _feed(site.base_url, slugs[i::FEEDS]), content_type="application/rss+xml"
            )
            feeds.append(FeedSpec(f"{site.base_url}/feed{i}.xml"))
        started = time.monotonic()
        with Store(settings.lake) as store:
            summary = run_cycle(settings, store, feeds=feeds)
            rows = store.rows("select url, extraction_status, extraction_error, text from articles")
    wall = time.monotonic() - started
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["extraction_status"]] = by_status.get(r["extraction_status"], 0) + 1
    timeouts = sum("timeout" in (r["extraction_error"] or "") for r in rows)
    pairs = [
        (truth[r["url"].rsplit("/", 1)[1].removesuffix(".html")], r["text"] or "")
        for r in rows
        if truth.get(r["url"].rsplit("/", 1)[1].removesuffix(".html"))
    ]
    return {
        "pages": len(slugs),
        "source": source,
        "by_status": by_status,
        "timeouts": timeouts,
        "max_queued_s": summary.articles.max_queued_s,
        "pages_pending": summary.articles.pages_pending,
        "f1": round(score(pairs)["f1"], 3) if pairs else None,
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run()
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{result['pages']} pages on one host ({result['source']}), newsflow's default settings")
    print(f"  one cycle, {result['wall_s']} s: {result['by_status']}")
    print(
        f"  failed on a timeout: {result['timeouts']}; left pending: {result['pages_pending']}; "
        f"longest wait for the host's turn {result['max_queued_s']} s"
    )
    print(f"  extraction F1 through the pipeline: {result['f1']}")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.one_host")
