"""Staged-file traffic to the bucket: what the tasks of one Airflow run send to and read from
object storage when their staged files live there (NEWSFLOW_RUNS_PATH=s3://…), per 1,000
articles, by stage, against the Parquet the lake itself gains.

The run's tasks (plan, poll, plan_articles, fetch_extract, tag, load) run in this process, as
a cluster's workers run them, on the frontier newsroom of benchmarks/frontier.py (40 loopback
hosts, transient and permanent failures), tagging on, the bucket moto's S3 server in a process
of its own. Every request newsflow's staging makes to the bucket is counted with its bytes
(politeness off: it changes the time, not the traffic).

    .venv/bin/python -m benchmarks.staged_traffic [--big-pages 400] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from newsflow import staging
from newsflow.config import Settings
from newsflow.fetching.feedlist import to_yaml
from newsflow.run import tasks
from newsflow.staging import StagedPath

from benchmarks.common import run_main
from benchmarks.frontier import FlakyNewsroom

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "newsflow-bench"

# stage -> {"requests": n, "sent": bytes, "received": bytes}
traffic: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
stage = ["plan"]


def _size(path: StagedPath) -> int:
    return path.fs.get_file_info(path._path).size or 0


def _count(name: str, direction: str | None):
    real = getattr(StagedPath, name)

    @functools.wraps(real)
    def counted(self, *args, **kwargs):
        if not self.on_object_storage:
            return real(self, *args, **kwargs)
        out = real(self, *args, **kwargs)
        t = traffic[stage[0]]
        t["requests"] += 1
        if direction == "received":
            t["received"] += _size(self)
        elif direction == "sent":
            t["sent"] += (
                len(args[0]) if name == "_put" else _size(self) if name != "upload" else
                os.path.getsize(args[0])
            )  # fmt: skip
        elif name == "download":
            t["received"] += Path(args[0]).stat().st_size
        return out

    setattr(StagedPath, name, counted)


def instrument() -> None:
    for name, direction in [
        ("_put", "sent"), ("write_table", "sent"), ("upload", "sent"),
        ("read_bytes", "received"), ("read_table", "received"), ("download", None),
        ("_info", None), ("iterdir", None), ("files_below", None), ("unlink", None),
    ]:  # fmt: skip
        _count(name, direction)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-pages", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from scripts.services import S3Server

    instrument()
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-staged-") as tmp, \
            FlakyNewsroom(big_pages=args.big_pages) as room:  # fmt: skip
        tmp = Path(tmp)
        s3 = S3Server(tmp / "s3", BUCKET).start()
        try:
            os.environ.update(s3.env)
            staging._s3_cached.cache_clear()
            feeds = tmp / "feeds.yaml"
            feeds.write_text(to_yaml([{"url": s.url, "title": s.name} for s in room.feeds]))
            settings = Settings(
                data_dir=tmp / "data",
                runs_path=f"s3://{BUCKET}/staged",
                feeds_file=feeds,
                allow_private=True,
                per_host_delay=0.0,
            )
            started = time.perf_counter()
            plan = tasks.plan(settings, "manual__traffic")
            stage[0] = "poll"
            for batch in plan.poll_batches:
                tasks.poll(settings, plan.run, batch)
            stage[0] = "fetch_extract"
            batches = tasks.plan_articles(settings, plan.run)
            for batch in batches:
                tasks.fetch_extract(settings, plan.run, batch)
            stage[0] = "tag"
            for batch in batches:
                tasks.tag(settings, plan.run, batch)
            stage[0] = "load"
            loaded = tasks.load(settings, plan.run)
            seconds = time.perf_counter() - started
            lake_bytes = sum(
                p.stat().st_size for p in Path(settings.lake.data_path).rglob("*.parquet")
            )
        finally:
            s3.stop()
    articles = loaded.articles_loaded
    per_k = 1000 / max(articles, 1)
    total = {k: sum(t[k] for t in traffic.values()) for k in ("requests", "sent", "received")}
    out = {
        "articles": articles,
        "seconds": seconds,
        "stages": {k: dict(v) for k, v in traffic.items()},
        "total": total,
        "per_1000_articles": {
            "requests": total["requests"] * per_k,
            "sent_mb": total["sent"] * per_k / 1e6,
            "received_mb": total["received"] * per_k / 1e6,
            "lake_parquet_mb": lake_bytes * per_k / 1e6,
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"{articles} articles loaded in {seconds:.0f} s; staged-file traffic to the bucket:")
    print(f"{'stage':<14} {'requests':>9} {'sent MB':>9} {'received MB':>12}")
    for name, t in traffic.items():
        print(f"{name:<14} {t['requests']:>9} {t['sent'] / 1e6:>9.2f} {t['received'] / 1e6:>12.2f}")
    p = out["per_1000_articles"]
    print(
        f"per 1,000 articles: {p['requests']:.0f} requests, {p['sent_mb']:.1f} MB sent,"
        f" {p['received_mb']:.1f} MB received;"
        f" the lake's own Parquet: {p['lake_parquet_mb']:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    run_main("benchmarks.staged_traffic")
