"""Search on a cluster: where the full-text index's files live when machines share no folder.

One store (catalog on this disk, data files and index in a bucket: moto's S3 server in a
process of its own), written by machine A, searched by machine B (a data folder of its own),
the three ways an index can reach B, measured in one run:

- **bucket + cache** (what newsflow does with ``NEWSFLOW_SEARCH_PATH=s3://…``): A uploads the
  files it builds, B copies what it lacks into its cache and searches the copies;
- **read from the bucket**: B attaches the bucket's files read-only over DuckDB's httpfs,
  without copies;
- **rebuilt from the lake**: B keeps an index of its own, rebuilding from the lake what changed
  (the same work A does after a load, repeated on every machine; a fresh machine builds all).

Printed per way: B's search latency warm (median of the queries, the index there already)
and cold (a fresh machine's first search), and commit-to-searchable: from A's load commit to
B's first search that finds the new articles. The baseline: the same searches on one machine
with the index in a folder.

    .venv/bin/python -m benchmarks.search_bucket [--articles 60000] [--new 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

from newsflow.config import Settings
from newsflow.db import search as search_db
from newsflow.db import search_files
from newsflow.db.search import refresh, search
from newsflow.db.store import Store

from benchmarks.common import run_main
from benchmarks.search import texts

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "newsflow-bench"
QUERIES = ["election results", "interest rate bank", "storm coast", "police said", "minister"]


def fill(store: Store, first: int, n: int, bodies: list[str]) -> None:
    store.con.execute(
        """
        insert into articles (article_id, feed_id, run_id, url, canonical_url, title,
            first_seen_at, loaded_at, published_at, text, word_count, extraction_status)
        select printf('%032x', i), 'f', 'bench', 'http://x/' || i, 'http://x/' || i,
               'Story ' || i || (case when i >= ? then ' zyzzyva' else '' end),
               now(), now() + to_microseconds(i), now(), body || ' copy' || i,
               len(string_split(body, ' ')), 'ok'
        from (select i, bodies[1 + i % len(bodies)] as body
              from range(?, ?) t(i), (select ?::varchar[] as bodies))
        """,
        [first, first, first + n, bodies],
    )


def timed_search(settings: Settings, query: str) -> tuple[float, int]:
    with Store(settings.lake, read_only=True) as reader:
        started = time.perf_counter()
        hits = search(reader.con, query, limit=10)
        return time.perf_counter() - started, len(hits)


def warm(settings: Settings) -> float:
    for q in QUERIES:  # once to fill caches
        timed_search(settings, q)
    return statistics.median(timed_search(settings, q)[0] for q in QUERIES * 3)


def from_bucket(lake, files):
    """search_files.local_files for the way that reads the bucket's files in place."""
    return {
        n: f"{lake.search_bucket}/{search_files.stored_name(lake, n, b)}" for n, b in files.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=60_000)
    parser.add_argument("--new", type=int, default=50, help="articles of the load measured")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from scripts.services import S3Server

    log = (lambda *a: None) if args.json else print
    bodies = texts()
    out: dict = {"articles": args.articles, "new": args.new}
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-search-") as tmp:
        tmp = Path(tmp)
        s3 = S3Server(tmp / "s3", BUCKET).start()
        try:
            os.environ.update(s3.env)
            a = Settings(
                data_dir=tmp / "a",
                catalog=str(tmp / "catalog" / "lake.sqlite"),
                data_path=f"s3://{BUCKET}/lake",
                search_path=f"s3://{BUCKET}/search",
            )
            b = replace(a, data_dir=tmp / "b")
            # One machine with its index in a folder, and a machine that rebuilds an index of
            # its own from the lake: the same articles under a copy of the catalog (its own
            # record of what its index holds), loaded into as A is.
            own = replace(
                a,
                data_dir=tmp / "own",
                catalog=str(tmp / "own-catalog" / "lake.sqlite"),
                search_path=str(tmp / "own-index"),
            )
            with Store(a.lake) as store:
                fill(store, 0, args.articles, bodies)
            shutil.copytree(tmp / "catalog", tmp / "own-catalog")
            with Store(a.lake) as store:
                started = time.perf_counter()
                refresh(store.con)
                out["build_and_upload_s"] = time.perf_counter() - started
            with Store(own.lake) as store:  # a fresh machine building its own index
                started = time.perf_counter()
                refresh(store.con)
                out["rebuilt_cold_s"] = time.perf_counter() - started
            files = list(a.lake.search_path.glob("*.duckdb"))
            out["index_mb"] = sum(p.stat().st_size for p in files) / 1e6
            log(f"{args.articles:,} articles: index {out['index_mb']:.0f} MB in {len(files)}"
                f" files; built in {out['rebuilt_cold_s']:.1f} s, built and uploaded in"
                f" {out['build_and_upload_s']:.1f} s")  # fmt: skip

            out["folder_warm_s"] = warm(own)
            started = time.perf_counter()
            timed_search(b, QUERIES[0])
            out["cache_cold_s"] = time.perf_counter() - started
            out["cache_warm_s"] = warm(b)
            with mock.patch.object(search_db, "local_files", from_bucket):
                started = time.perf_counter()
                timed_search(b, QUERIES[0])
                out["bucket_cold_s"] = time.perf_counter() - started
                out["bucket_warm_s"] = warm(b)

            # A load of --new articles: A rebuilds its last shard and uploads it, then B's
            # first search that finds them; the machine with its own index rebuilds it.
            for name, settings in (("commit_refresh_upload_s", a), ("rebuilt_refresh_s", own)):
                with Store(settings.lake) as store:
                    fill(store, args.articles, args.new, bodies)
                    started = time.perf_counter()
                    refresh(store.con)
                    out[name] = time.perf_counter() - started
            started = time.perf_counter()
            _, found = timed_search(b, "zyzzyva")
            out["cache_first_search_s"] = time.perf_counter() - started
            assert found == min(10, args.new), found
            with mock.patch.object(search_db, "local_files", from_bucket):
                started = time.perf_counter()
                _, found = timed_search(b, "zyzzyva")
                out["bucket_first_search_s"] = time.perf_counter() - started
                assert found == min(10, args.new), found
            _, found = timed_search(own, "zyzzyva")
            assert found == min(10, args.new), found
        finally:
            s3.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    ways = {
        "one machine, a folder": (out["folder_warm_s"], None, out["rebuilt_refresh_s"]),
        "bucket + cache": (
            out["cache_warm_s"],
            out["cache_cold_s"],
            out["commit_refresh_upload_s"] + out["cache_first_search_s"],
        ),
        "read from the bucket": (
            out["bucket_warm_s"],
            out["bucket_cold_s"],
            out["commit_refresh_upload_s"] + out["bucket_first_search_s"],
        ),
        "rebuilt from the lake": (
            out["folder_warm_s"],
            out["rebuilt_cold_s"],
            out["rebuilt_refresh_s"],  # on every machine
        ),
    }
    out["ways"] = {
        k: dict(zip(("warm_s", "cold_s", "commit_to_searchable_s"), v)) for k, v in ways.items()
    }
    out["download_mb_per_s"] = out["index_mb"] / out["cache_cold_s"]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"a fresh machine's cache filled at {out['download_mb_per_s']:.0f} MB/s from the bucket")
    print(f"\n{'way':<24} {'search warm':>12} {'first search':>13} {'commit→searchable':>18}")
    for name, (w, c, cts) in ways.items():
        cold = f"{c:.2f} s" if c is not None else "—"
        print(f"{name:<24} {w * 1000:>9.0f} ms {cold:>13} {cts:>16.2f} s")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.search_bucket")
