"""The frontier newsroom through `make cluster`'s shape with 1 and with 2 Celery workers.

For each worker count: a fresh cluster (scripts/cluster.py: PostgreSQL, Redis, moto S3,
Airflow's api-server, scheduler and dag-processor, N workers with one task at a time each),
one `news_ingest` run on the frontier newsroom of benchmarks/frontier.py (40 loopback hosts,
one carrying many pages, transient and permanent failures) with newsflow's default politeness,
then:

- the run's wall time (first task queued to last task done), articles stored, articles/s;
- at the servers: the most requests any host had in flight (the setting: 2), the shortest
  gap between two requests to one host and the highest rate any host saw in one second;
- Airflow's own overhead per task: the median seconds from queued to running, and the median
  of a task's run time as Airflow records it for the tasks that do nearly nothing (`announce`,
  `plan_articles`);
- the hosts the task instances ran on.

    .venv/bin/python -m benchmarks.cluster [--workers 1,2] [--big-pages 60] [--json]

Needs `make setup-dev`, Debian's postgresql and redis-server (`make postgres redis`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from newsflow.fetching.feedlist import to_yaml

from benchmarks.common import run_main
from benchmarks.frontier import FlakyNewsroom, max_rate, min_gap

ROOT = Path(__file__).resolve().parents[1]


def feeds_yaml(room: FlakyNewsroom, path: Path) -> Path:
    path.write_text(to_yaml([{"url": s.url, "title": s.name} for s in room.feeds]))
    return path


def one_run(workers: int, big_pages: int, log) -> dict:
    sys.path.insert(0, str(ROOT))
    from scripts.cluster import Cluster

    with tempfile.TemporaryDirectory(prefix="newsflow-bench-cluster-") as tmp, \
            FlakyNewsroom(big_pages=big_pages) as room:  # fmt: skip
        pg_root = Path(tempfile.mkdtemp(prefix="newsflow-bench-pg-"))
        cluster = Cluster(
            Path(tmp) / "cluster",
            workers=workers,
            feeds=feeds_yaml(room, Path(tmp) / "feeds.yaml"),
            extra_env={"NEWSFLOW_ALLOW_PRIVATE": "1", "NEWSFLOW_RETRY_DELAY_SECONDS": "5"},
            paused=True,
            concurrency=1,
            postgres_root=pg_root,
            triggerer=False,
        )
        started = time.monotonic()
        cluster.start()
        log(f"{workers} worker(s): cluster up in {time.monotonic() - started:.0f} s")
        try:
            env = cluster.env(cluster.root / "control")
            deadline = time.monotonic() + 300
            while True:
                try:
                    cluster.airflow_cli("dags", "unpause", "news_ingest", env=env)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(3)
            with psycopg.connect(cluster.pg.database("airflow"), autocommit=True) as db:
                while True:
                    row = db.execute(
                        "select run_id, state from dag_run where dag_id = 'news_ingest'"
                        " order by id limit 1"
                    ).fetchone()
                    if row and row[1] in ("success", "failed"):
                        break
                    time.sleep(2)
                tis = db.execute(
                    "select task_id, state, hostname,"
                    " extract(epoch from queued_dttm), extract(epoch from start_date),"
                    " extract(epoch from end_date)"
                    " from task_instance where dag_id = 'news_ingest' and run_id = %s",
                    [row[0]],
                ).fetchall()
            client = cluster.client_env()
            import os

            os.environ.update(cluster.s3_env)
            from newsflow.config import LakeLocation
            from newsflow.db.store import connect

            lake = LakeLocation.of(client["NEWSFLOW_CATALOG"], client["NEWSFLOW_DATA_PATH"],
                                   Path(client["NEWSFLOW_DATA_DIR"]),
                                   Path(client["NEWSFLOW_SEARCH_PATH"]))  # fmt: skip
            con = connect(lake)
            articles = con.execute(
                "select count(*) filter (where extraction_status = 'ok'), count(*) from articles"
            ).fetchone()
            con.close()
            stats = room.stats()
        finally:
            cluster.stop()
            import shutil

            shutil.rmtree(pg_root, ignore_errors=True)
    queued = [q for _, _, _, q, s, _ in tis if q is not None and s is not None]
    first = min(queued)
    last = max(e for *_, e in tis if e is not None)
    wall = last - first
    waits = [float(s) - float(q) for _, _, _, q, s, _ in tis if q is not None and s is not None]
    trivial = [
        float(e) - float(s)
        for task, _, _, _, s, e in tis
        if task in ("announce", "plan_articles") and s is not None and e is not None
    ]
    gaps = [g for s in stats.values() if (g := min_gap(s["starts"])) is not None]
    return {
        "workers": workers,
        "state": row[1],
        "tasks": len(tis),
        "task_states": sorted({t[1] for t in tis}),
        "hosts": sorted({t[2] for t in tis if t[2]}),
        "wall_s": round(float(wall), 1),
        "articles_ok": articles[0],
        "articles": articles[1],
        "articles_per_s": round(articles[0] / float(wall), 2),
        "max_in_flight_per_host": max(s["max_in_flight"] for s in stats.values()),
        "min_gap_between_requests_to_a_host_s": round(min(gaps), 3) if gaps else None,
        "max_requests_per_host_per_s": max(max_rate(s["starts"]) for s in stats.values()),
        "median_queued_to_running_s": round(statistics.median(waits), 2),
        "median_trivial_task_s": round(statistics.median(trivial), 2) if trivial else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument("--big-pages", type=int, default=60, help="pages on the busy host")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    for n in [int(x) for x in args.workers.split(",")]:
        results.append(one_run(n, args.big_pages, log=lambda m: print(m, file=sys.stderr)))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    keys = [k for k in results[0] if k != "workers"]
    print(f"{'':40}" + "".join(f"{r['workers']:>3} worker(s)" for r in results))
    for key in keys:
        print(f"{key:40}" + "".join(f"{json.dumps(r[key]):>14}" for r in results))
    if len(results) == 2 and results[0]["articles_per_s"]:
        ratio = results[1]["articles_per_s"] / results[0]["articles_per_s"]
        print(f"\n2 workers / 1 worker, articles per second: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.cluster")
