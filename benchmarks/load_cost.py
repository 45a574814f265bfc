"""A load's cost against the size of the store it lands in: the same run into an empty store
and into a large one, wall time and the loading process's peak RSS.

    .venv/bin/python -m benchmarks.load_cost [--articles 200000] [--load 500] [--db CATALOG]
                                             [--repeat 3] [--maintenance [--memory-limit 1GB]]
                                             [--json]

The large store is ``benchmarks.scale``'s (generated once and cached with ``--db``: articles
over a year, ~24 entities each from 200,000 names, identity resolved, search index built).
The run is ``--load`` of its articles copied under new ids, first seen and published now,
with their entity and topic rows as tagging stages them (keys, aliases; places located by the
load, as in production): a staged run, loaded by ``Store.load_run`` in a process of its own
(its peak RSS is that process's ``VmHWM``) into a fresh copy of each store. The load is what
is timed, not the process's start, nor opening the store.

Target (issue "ten million articles"): into a large store the load costs at most 1.25 times
what it costs into an empty one, wall time and peak RSS. ``--maintenance``: then the daily
maintenance's ``entities`` step (``benchmarks.scale``'s, rolled back) on the large store, its
seconds and its process's peak RSS (target: ≤ 1.5 GB at any size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from newsflow.db.store import Store
from newsflow.rows import ARTICLE_SCHEMA, ENTITY_SCHEMA, TOPIC_SCHEMA
from newsflow.staging import RunDir

from benchmarks.common import run_json
from benchmarks.scale import copy_lake, maintenance_resolve, prepare, remove_lake

LOAD = """
import json, sys, time
from newsflow.db.store import Store
from newsflow.staging import RunDir
from newsflow.enrich import places
places.gazetteer()  # as a worker that has located places before: read from the user's cache
with Store(sys.argv[1]) as store:
    started = time.perf_counter()
    done = store.load_run(RunDir(sys.argv[2]), poll_interval=600, max_backoff=3600)
    seconds = time.perf_counter() - started
peak = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": round(peak / 1024),
                  "loaded": done.articles_loaded}))
"""


def stage_copies(big: Path, runs: Path, n: int, seed: int = 0) -> RunDir:
    """``n`` of the big store's extracted English articles as a new run: new ids, now
    (another ``seed``: other articles, other ids)."""
    tag = "load-cost" if seed == 0 else f"load-cost-{seed}"
    run = RunDir.create(runs, "benchmark", run_id=tag)
    with Store(big, read_only=True) as store:
        con = store.con
        con.execute(
            f"create temp table picked as select article_id, md5(article_id || '{tag}')"
            " as new_id from (select article_id from articles"
            " where extraction_status = 'ok' and language = 'en')"
            f" using sample reservoir({int(n)} rows) repeatable ({11 + int(seed)})"
        )
        cols = [c for c in ARTICLE_SCHEMA.names]
        stored = {
            r[0]
            for r in con.execute(
                "select column_name from duckdb_columns() where table_name = 'articles'"
            ).fetchall()
        }
        select = ", ".join(
            "p.new_id as article_id" if c == "article_id"
            else "now() as first_seen_at" if c == "first_seen_at"
            else "now() - interval 1 hour as published_at" if c == "published_at"
            else "'http://bench.test/' || p.new_id as url" if c in ("url",)
            else "'http://bench.test/' || p.new_id as canonical_url" if c == "canonical_url"
            else "'done' as fetch_state" if c == "fetch_state"
            else "1 as fetch_attempts" if c == "fetch_attempts"
            else "false as requeued" if c == "requeued"
            else "'bench.test' as host" if c == "host"
            else f"a.{c}" if c in stored
            else f"null as {c}"
            for c in cols
        )  # fmt: skip
        articles = con.execute(
            f"select {select} from articles a join picked p using (article_id)"
        ).to_arrow_table()
        run.write("articles", "b0", articles.to_pylist(), ARTICLE_SCHEMA)
        for kind, schema, table in (
            ("entities", ENTITY_SCHEMA, "article_entities"),
            ("topics", TOPIC_SCHEMA, "article_topics"),
        ):
            names = [c for c in schema.names if c != "article_id"]
            rows = con.execute(
                f"select p.new_id as article_id, {', '.join('t.' + c for c in names)}"
                f" from {table} t join picked p using (article_id)"
            ).to_arrow_table()
            run.write(kind, "b0", rows.to_pylist(), schema)
    return run


def load_into(catalog: Path, run: RunDir) -> dict:
    return run_json(f"load into {catalog}", LOAD, str(catalog), str(run.path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--load", type=int, default=500, help="articles in the run loaded")
    parser.add_argument("--db", type=Path, help="generated large store to reuse or create")
    parser.add_argument("--repeat", type=int, default=3, help="loads into each (median)")
    parser.add_argument(
        "--maintenance",
        action="store_true",
        help="also the daily maintenance's entities step on the large store (rolled back)",
    )
    parser.add_argument(
        "--memory-limit",
        default="",
        help="DuckDB's memory for the maintenance step (as NEWSFLOW_MAINTENANCE_MEMORY_LIMIT;"
        " default: none, DuckDB's own 80%% of RAM)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="newsflow-load-cost-"))
    try:
        big = args.db or work / "big.sqlite"
        prepare(big, args.articles, "short", log)
        Store(big).close()  # migrated to this version's schema (once) before it is copied
        run = stage_copies(big, work / "runs", args.load)
        results: dict[str, list[dict]] = {"empty": [], "large": []}
        for i in range(args.repeat):
            for side in ("empty", "large"):
                target = work / f"{side}-{i}.sqlite"
                if side == "large":
                    copy_lake(big, target)
                else:
                    Store(target).close()
                results[side].append(load_into(target, run))
                log(f"  {side} #{i + 1}: {results[side][-1]}")
                remove_lake(target)
        summary = {
            side: {
                "seconds": statistics.median(r["seconds"] for r in rs),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                "loaded": rs[0]["loaded"],
            }
            for side, rs in results.items()
        }
        summary["ratio"] = {
            k: round(summary["large"][k] / summary["empty"][k], 2)
            for k in ("seconds", "peak_rss_mb")
        }
        summary["articles"] = args.articles
        if args.maintenance:
            summary["maintenance_entities"] = maintenance_resolve(big, args.memory_limit)
        if args.json:
            print(json.dumps(summary))
        else:
            e, g, r = summary["empty"], summary["large"], summary["ratio"]
            rows = [
                ("into an empty store", e["seconds"], e["peak_rss_mb"]),
                (f"into {args.articles:,} articles", g["seconds"], g["peak_rss_mb"]),
            ]
            print(f"a load of {e['loaded']} articles (median of {args.repeat}):")
            for name, seconds, mb in rows:
                print(f"  {name:<26} {seconds:7.2f} s  {mb:6.0f} MB")
            print(f"  {'ratio (target ≤ 1.25)':<26} {r['seconds']:7.2f}    {r['peak_rss_mb']:6.2f}")
            if args.maintenance:
                m = summary["maintenance_entities"]
                print(
                    f"the daily maintenance's entities step on {args.articles:,} articles:"
                    f" {m['seconds']} s, peak RSS {m['peak_rss_mb']} MB ({m['keys']:,} keys;"
                    f" DuckDB memory limit: {args.memory_limit or 'none'})"
                )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
