"""Full-text index cost: rebuild time and query time as the article count grows, in one run.

    .venv/bin/python -m benchmarks.search [--sizes 1000,10000,50000]

Articles are the bundled sample-newsroom texts (or the corpus ground truth when present),
cycled with a per-copy word so every row differs, inserted into a fresh newsflow database.
DuckDB's fts index has no incremental update, so newsflow rebuilds it after each load; this
prints what that costs per load at each size, and the time of a search.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from newsflow.db.search import rebuild_index, search
from newsflow.db.store import Store

from benchmarks.common import BUNDLED_PAGES, GROUND_TRUTH, run_main


def texts() -> list[str]:
    if GROUND_TRUTH.exists():
        return [v["articleBody"] for v in json.loads(GROUND_TRUTH.read_text("utf-8")).values()]
    from newsflow.fetching.extract import extract_page

    out = []
    for path in sorted(BUNDLED_PAGES.glob("*.html.gz")):
        page = extract_page(gzip.decompress(path.read_bytes()), "http://example.org/")
        if page.ok:
            out.append(page.text)
    return out


def fill(store: Store, n: int, bodies: list[str]) -> None:
    now = datetime.now(UTC)
    store.con.execute(
        """
        insert into articles (article_id, feed_id, run_id, url, canonical_url, title,
            first_seen_at, loaded_at, published_at, text, word_count, extraction_status)
        select printf('%032x', i), 'f', 'bench', 'http://x/' || i, 'http://x/' || i,
               'Story ' || i, ?, ?, ? - to_minutes(i), body || ' copy' || i,
               len(string_split(body, ' ')), 'ok'
        from (select i, bodies[1 + i % len(bodies)] as body
              from range(?) t(i), (select ?::varchar[] as bodies))
        """,
        [now, now, now, n, bodies],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    bodies = texts()
    print(f"texts: {len(bodies)} distinct bodies, cycled")
    print(f"{'articles':>9} {'rebuild s':>10} {'ms/article':>11} {'search ms':>10}")
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.sqlite") as store:
            fill(store, n, bodies)
            seconds = rebuild_index(store.con)
            t = time.perf_counter()
            hits = search(store.con, "president election", limit=10)
            search_ms = (time.perf_counter() - t) * 1000
            assert hits, "the benchmark query should match"
            print(f"{n:>9} {seconds:>10.2f} {seconds / n * 1000:>11.3f} {search_ms:>10.1f}")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.search")
