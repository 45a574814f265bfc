"""End-to-end ingest speed against the bundled sample newsroom, replicated K times on loopback.

Each replica serves the ten feeds and fifty pages under its own path prefix, so every replica's
articles are new URLs. Measures a cold cycle (everything new: poll, fetch, extract, tag, load)
and a warm one (every feed answers 304), in one run.

    .venv/bin/python -m benchmarks.ingest [--replicas K] [--no-tag] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route, SiteServer, newsroom_routes
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run.cycle import run_cycle

from benchmarks.common import run_main


def replicated_site(replicas: int) -> tuple[SiteServer, list[FeedSpec]]:
    site = SiteServer()
    feeds = []
    for k in range(replicas):
        prefix = f"{site.base_url}/r{k}"
        for path, route in newsroom_routes(prefix).items():
            if path == "/robots.txt":
                site.routes[path] = route
                continue
            site.routes[f"/r{k}{path}"] = route
            if path.startswith("/feeds/"):
                feeds.append(FeedSpec(f"{prefix}{path}", f"replica {k} {path}"))
    site.routes.setdefault("/robots.txt", Route(b"User-agent: *\n", content_type="text/plain"))
    return site, feeds


def run(replicas: int, tagging: bool = True) -> dict:
    site, feeds = replicated_site(replicas)
    with tempfile.TemporaryDirectory() as tmp, site:
        settings = Settings(data_dir=Path(tmp), allow_private=True, per_host_delay=0.0,
                            per_host_concurrency=8, tagging=tagging)  # fmt: skip
        with Store(settings.lake) as store:
            store.upsert_feeds(feeds)
            cpu0, t0 = time.process_time(), time.perf_counter()
            cold = run_cycle(settings, store)
            cold_s, cold_cpu = time.perf_counter() - t0, time.process_time() - cpu0
            t1 = time.perf_counter()
            warm = run_cycle(settings, store, include_not_due=True)
            warm_s = time.perf_counter() - t1
    articles = cold.articles_loaded
    return {
        "feeds": len(feeds),
        "articles": articles,
        "articles_ok": cold.articles.ok,
        "tagged": cold.tagging.articles,
        "cold_s": round(cold_s, 2),
        "articles_per_s": round(articles / cold_s, 1),
        "main_process_cpu_s": round(cold_cpu, 2),
        "warm_s": round(warm_s, 2),
        "warm_not_modified": warm.polls.not_modified,
        "warm_over_cold": round(warm_s / cold_s, 3),
        "cores": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--replicas", type=int, default=4, help="copies of the newsroom (50 pages each)"
    )
    parser.add_argument("--no-tag", action="store_true", help="switch entity/topic tagging off")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run(args.replicas, tagging=not args.no_tag)
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"cold: {figures['articles']} articles from {figures['feeds']} feeds in "
            f"{figures['cold_s']}s = {figures['articles_per_s']} articles/s "
            f"({figures['articles_ok']} extracted, {figures['tagged']} tagged; "
            f"main process {figures['main_process_cpu_s']} CPU s, "
            f"{figures['cores']} cores)\n"
            f"warm: {figures['warm_not_modified']} feeds not modified in {figures['warm_s']}s "
            f"= {figures['warm_over_cold']} of cold"
        )
    return 0


if __name__ == "__main__":
    run_main("benchmarks.ingest")
