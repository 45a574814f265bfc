"""The daily maintenance's memory and time against the store's size: each step of
``news_maintenance`` in a process of its own, on a large store after a day of loads.

    .venv/bin/python -m benchmarks.maintenance [--articles 1000000] [--day 5000] [--db CATALOG]
                                               [--memory-limit 512MB] [--json]

The store is ``benchmarks.scale``'s (generated once and cached with ``--db``), copied; into
the copy, a day of loads: ``--day`` of its articles under new ids, first seen now, with their
entity and topic rows, in runs of 500 (as ``benchmarks.load_cost`` stages them). Then the
steps in the DAG's order, each as the Airflow task runs it (``newsflow.run.tasks``, with the
settings a user gets but the store's paths and ``NEWSFLOW_MAINTENANCE_MEMORY_LIMIT``):
``entities`` (every key re-resolved over the corpus), ``search_index`` (stale shards rebuilt,
sealed ones merged, entity pairs recomputed), ``tidy_lake`` (inlined rows flushed, small files
merged, snapshots expired, unneeded files deleted). Printed per step: its seconds and its
process's peak RSS (``VmHWM``). Target (issue "ten million articles"): every step ≤ 1.5 GB,
at any store size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from benchmarks.common import run_json
from benchmarks.load_cost import load_into, stage_copies
from benchmarks.scale import copy_lake, prepare

STEPS = ("resolve_entities", "rebuild_search", "tidy_lake")
STEP = """
import json, sys, time
from newsflow.config import load_settings
from newsflow.run import tasks
settings = load_settings()
started = time.perf_counter()
done = getattr(tasks, sys.argv[1])(settings)
seconds = time.perf_counter() - started
peak = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM"))
print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024),
                  "summary": done.summary() if hasattr(done, "summary") else str(done)}))
"""
TARGET_MB = 1536


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=1_000_000)
    parser.add_argument("--day", type=int, default=5000, help="articles loaded before it")
    parser.add_argument("--db", type=Path, help="generated large store to reuse or create")
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="NEWSFLOW_MAINTENANCE_MEMORY_LIMIT (default: the setting's default)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="newsflow-maint-") as tmp:
        work = Path(tmp)
        big = args.db or work / "big.sqlite"
        prepare(big, args.articles, "short", log)
        store = work / "store.sqlite"
        copy_lake(big, store)
        loads = []
        for i in range(max(1, args.day // 500)):
            staged = stage_copies(big, work / f"runs{i}", 500, seed=i)
            loads.append(load_into(store, staged))
        log(f"a day of loads: {sum(x['loaded'] for x in loads):,} articles in {len(loads)} runs")
        env = {
            **os.environ,
            "NEWSFLOW_CATALOG": str(store),
            "NEWSFLOW_DATA_DIR": str(work / "data"),
        }
        if args.memory_limit is not None:
            env["NEWSFLOW_MAINTENANCE_MEMORY_LIMIT"] = args.memory_limit
        steps = {}
        for step in STEPS:
            steps[step] = run_json(step, STEP, step, env=env, timeout=7200)
            log(f"  {step}: {steps[step]}")
        summary = {"articles": args.articles, "day": args.day, "steps": steps,
                   "memory_limit": args.memory_limit}  # fmt: skip
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"the daily maintenance on {args.articles:,} articles after a day of loads"
        f" ({args.day:,} articles), each step in a process of its own:"
    )
    for step, got in steps.items():
        mark = "✓" if got["peak_rss_mb"] <= TARGET_MB else "✗"
        print(f"  {step:<18} {got['seconds']:>7.1f} s  {got['peak_rss_mb']:>6,} MB {mark}")
    print(f"  (target: every step ≤ {TARGET_MB:,} MB at any size)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
