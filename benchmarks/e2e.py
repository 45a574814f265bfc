"""End-to-end ingest throughput against the newsroom simulator, and the machine's limit, in one run.

The simulator (benchmarks/newsroom.py, its own process) serves enough feeds and real article
pages for ``--articles`` new articles on ``--hosts`` loopback hosts. Measured, in one run:

* cold: ``run_cycle`` into an empty DuckDB (tagging on unless ``--no-tag``): articles loaded,
  wall seconds, articles/s; wall and CPU seconds of each step (plan, poll, fetch+extract, tag,
  load with the search index) as the cycle reports them (``CycleSummary.timings``, measured by
  newsflow/run/steps.py over the process tree, the simulator's 0.1% included); the total CPU is
  that of the whole process tree (this process, its workers, their reaped children; the
  simulator excluded), read from /proc. Core utilisation = tree CPU / (wall x cores). Peak RSS
  of the tree (the sum over its processes, sampled every 50 ms) and peak PSS (shared pages
  counted once, every 40th sample), as benchmarks/common.py samples them. The simulator's
  share of all CPU.
* warm: ``run_cycle(include_not_due=True)`` again; every feed answers 304. Its wall time against
  the cold poll stage and the cold cycle.
* the machine's limit: in this one process, bare ``trafilatura.bare_extraction`` (the options of
  newsflow/fetching/extract.py) and bare spaCy NER (the model and components of
  newsflow/enrich/entities.py)
  over a sample of the same pages, plus feedparser over the feeds (per article: a feed's parse
  divided by its items). limit = cores / (CPU seconds per article of the three);
  efficiency = throughput / limit.

Settings: ``per_host_delay`` is 0 by default (``--per-host-delay`` to change it; with the default
1 s, 20 feeds a host take 20 s to poll whatever the machine), otherwise newsflow's defaults.

    .venv/bin/python -m benchmarks.e2e [--articles 5000] [--feeds N] [--hosts 50] [--no-tag]
                                       [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run.cycle import run_cycle

from benchmarks.common import MB, TreeMemory, run_main, tree_cpu_seconds
from benchmarks.newsroom import Simulator, self_check

STEPS = ("plan", "poll", "fetch", "tag", "load")  # as the cycle reports them
TARGETS = {"articles_per_s": 11.6, "efficiency": 0.75, "warm_s": 5.0, "warm_over_cold": 0.1}
TARGET_RSS_MB = 1536
CLK = os.sysconf("SC_CLK_TCK")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK


# -- the machine's limit ---------------------------------------------------------------------


def machine_limit(sim: Simulator, settings: Settings, sample: int, tagging: bool) -> dict:
    """CPU seconds per article of bare extraction, NER and feed parsing, in this process."""
    import feedparser
    import httpx
    import trafilatura
    from newsflow.enrich import entities

    urls = sim.article_urls[:sample]
    pages = [(sim.html(u), u) for u in urls]
    trafilatura.bare_extraction(
        pages[0][0], url=pages[0][1], with_metadata=True, fast=True
    )  # warm-up
    started = time.process_time()
    docs = [
        trafilatura.bare_extraction(
            html, url=url, include_comments=False, with_metadata=True, fast=True
        )
        for html, url in pages
    ]
    extract_cpu = (time.process_time() - started) / len(pages)

    ner_cpu = 0.0
    if tagging:
        model = settings.ner_model_map["en"]
        nlp = entities.load_model(model)
        texts = [
            entities.document(d.title, (d.text or "")[: settings.ner_max_chars])[0]
            for d in docs
            if d is not None and d.text
        ]
        list(nlp.pipe(texts[:4]))  # warm-up
        started = time.process_time()
        list(nlp.pipe(texts, batch_size=32))
        ner_cpu = (time.process_time() - started) / len(pages)

    feed_urls = sim.feed_urls[: max(1, min(len(sim.feed_urls), sample // sim.layout.items))]
    with httpx.Client(trust_env=False, timeout=30) as client:
        bodies = [(client.get(u).content, u) for u in feed_urls]
    options = {"sanitize_html": True, "resolve_relative_uris": True}
    feedparser.parse(bodies[0][0], response_headers={"content-location": bodies[0][1]}, **options)
    started = time.process_time()
    for body, url in bodies:
        feedparser.parse(body, response_headers={"content-location": url}, **options)
    parse_cpu = (time.process_time() - started) / len(bodies) / sim.layout.items

    per_article = extract_cpu + ner_cpu + parse_cpu
    return {
        "sample_pages": len(pages),
        "extract_ms": 1000 * extract_cpu,
        "ner_ms": 1000 * ner_cpu,
        "parse_ms": 1000 * parse_cpu,
        "cpu_ms_per_article": 1000 * per_article,
        "limit_articles_per_s": cores() / per_article,
    }


# -- the run ---------------------------------------------------------------------------------


def run(
    articles: int,
    feeds: int | None,
    hosts: int,
    items: int,
    tagging: bool,
    per_host_delay: float,
    latency: float,
    sample: int,
) -> dict:
    feeds = feeds or math.ceil(articles / items)
    n_cores = cores()
    with Simulator(feeds=feeds, hosts=hosts, items=items, latency=latency) as sim:
        self_check(sim, n=2)
        exclude = {sim.pid}  # this process and its workers, not the simulator
        with tempfile.TemporaryDirectory(prefix="newsflow-e2e-") as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                allow_private=True,
                per_host_delay=per_host_delay,
                tagging=tagging,
            )
            with Store(settings.lake) as store:
                store.upsert_feeds([FeedSpec(u, f"sim {i}") for i, u in enumerate(sim.feed_urls)])
                sim_cpu0, req0 = sim.cpu_seconds(), sim.requests()
                load0 = os.getloadavg()[0]
                busy0, cpu0, t0 = machine_busy(), tree_cpu_seconds(exclude), time.perf_counter()
                with TreeMemory(exclude=exclude) as cold_mem:
                    cold = run_cycle(settings, store)
                cold_s = time.perf_counter() - t0
                cold_cpu = tree_cpu_seconds(exclude) - cpu0
                sim_cpu = sim.cpu_seconds() - sim_cpu0
                others_cpu = machine_busy() - busy0 - cold_cpu - sim_cpu
                load1 = os.getloadavg()[0]
                req1 = sim.requests()
                t1 = time.perf_counter()
                with TreeMemory(exclude=exclude) as warm_mem:
                    warm = run_cycle(settings, store, include_not_due=True)
                warm_s = time.perf_counter() - t1
                req2 = sim.requests()
                warm_poll_s = warm.timings.get("poll", {}).get("wall_s", 0.0)
                stored = store.rows("select count(*) as n from articles")[0]["n"]
        limit = machine_limit(sim, settings, sample, tagging)
        source = sim.source

    # The cycle's own per-step figures (newsflow/run/steps.py, Timings). Its CPU counts the whole
    # process tree, the simulator's process included (about 0.1% of it, printed apart).
    wall = {name: t["wall_s"] for name, t in cold.timings.items()}
    cpu = {name: t["cpu_s"] for name, t in cold.timings.items()}
    loaded = cold.articles_loaded
    per_s = loaded / cold_s
    accounted = sum(wall.values())

    def delta(a: dict, b: dict, key) -> int:
        return b.get(key, 0) - a.get(key, 0)

    return {
        "articles": loaded,
        "articles_in_db": stored,
        "feeds": feeds,
        "hosts": sim.layout.hosts,
        "items_per_feed": items,
        "pages_from": source,
        "tagging": tagging,
        "per_host_delay": per_host_delay,
        "extracted_ok": cold.articles.ok,
        "feed_content": cold.articles.feed_content,
        "failed": cold.articles.failed,
        "tagged": cold.tagging.articles,
        "entities": cold.tagging.entities,
        "cold_s": round(cold_s, 2),
        "articles_per_s": round(per_s, 2),
        "limit_articles_per_s": round(limit["limit_articles_per_s"], 2),
        "efficiency": round(per_s / limit["limit_articles_per_s"], 3),
        "limit": {k: round(v, 2) for k, v in limit.items()},
        "cores": n_cores,
        "cpu_s": round(cold_cpu, 1),
        "core_utilisation": round(cold_cpu / (cold_s * n_cores), 3),
        # Independent of what other programs take: the limit's CPU per article over ours.
        "cpu_ms_per_article": round(1000 * cold_cpu / max(loaded, 1), 1),
        "cpu_efficiency": round(limit["cpu_ms_per_article"] * max(loaded, 1) / 1000 / cold_cpu, 3),
        "stage_wall_s": {
            **{name: round(wall.get(name, 0.0), 2) for name in STEPS},
            "other": round(cold_s - accounted, 2),
        },
        "stage_cpu_s": {
            **{name: round(cpu.get(name, 0.0), 1) for name in STEPS},
            "other": round(max(0.0, cold_cpu - sum(cpu.values())), 1),
        },
        "peak_rss_mb": round(cold_mem.peak_rss / MB),
        "peak_pss_mb": round(cold_mem.peak_pss / MB),
        "peak_rss_by_process_mb": cold_mem.split_mb(),
        "processes": cold_mem.processes,
        "simulator_cpu_s": round(sim_cpu, 1),
        "simulator_cpu_share": round(sim_cpu / (sim_cpu + cold_cpu), 3),
        # CPU that other programs of the machine took meanwhile: the cores were not all ours.
        "others_cpu_s": round(max(0.0, others_cpu), 1),
        "others_core_share": round(max(0.0, others_cpu) / (cold_s * n_cores), 3),
        "loadavg_1min": [round(load0, 2), round(load1, 2)],
        "requests_cold": {s: delta(req0, req1, s) for s in ("total", 200, 304, 404)},
        "warm_s": round(warm_s, 2),
        "warm_poll_s": round(warm_poll_s, 2),
        "warm_not_modified": warm.polls.not_modified,
        "warm_new_items": warm.polls.items_new,
        "warm_peak_rss_mb": round(warm_mem.peak_rss / MB),
        "requests_warm": {s: delta(req1, req2, s) for s in ("total", 200, 304, 404)},
        "warm_over_cold": round(warm_s / cold_s, 4),
        "warm_over_cold_poll": round(warm_s / max(wall.get("poll", 0.0), 1e-9), 3),
    }


def summary(f: dict) -> str:
    def mark(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    w, c, lim = f["stage_wall_s"], f["stage_cpu_s"], f["limit"]
    rate = TARGETS["articles_per_s"]
    stage_lines = "\n".join(
        f"  {name:<14} {w[name]:>8.1f} s wall {c[name]:>8.1f} s CPU"
        f"  ({c[name] / (w[name] * f['cores']) if w[name] else 0:.0%} of the cores)"
        for name in (*STEPS, "other")
    )
    return (
        f"cold: {f['articles']} articles ({f['extracted_ok']} extracted, {f['feed_content']} "
        f"feed text, {f['failed']} failed; {f['tagged']} tagged) from {f['feeds']} feeds on "
        f"{f['hosts']} hosts in {f['cold_s']} s = {f['articles_per_s']} articles/s "
        f"[target >= {rate}: {mark(f['articles_per_s'] >= rate)}]\n"
        f"{stage_lines}\n"
        "  (tag includes model loading; load includes the search index rebuild)\n"
        f"  tree CPU {f['cpu_s']} s on {f['cores']} cores: utilisation "
        f"{f['core_utilisation']:.0%}; simulator CPU {f['simulator_cpu_s']} s = "
        f"{f['simulator_cpu_share']:.1%} of all CPU; other programs took "
        f"{f['others_core_share']:.0%} of the cores (load average {f['loadavg_1min']})\n"
        f"  CPU per article {f['cpu_ms_per_article']} ms; the limit's "
        f"{lim['cpu_ms_per_article']:.1f} ms is {f['cpu_efficiency']:.0%} of it\n"
        f"  peak RSS (tree sum, {f['processes']} processes) {f['peak_rss_mb']} MB "
        f"{f['peak_rss_by_process_mb']}, PSS "
        f"{f['peak_pss_mb']} MB [target <= {TARGET_RSS_MB} MB: "
        f"{mark(f['peak_rss_mb'] <= TARGET_RSS_MB)}]\n"
        f"limit: {lim['extract_ms']:.1f} ms extract + {lim['ner_ms']:.1f} ms NER + "
        f"{lim['parse_ms']:.2f} ms feed parse = {lim['cpu_ms_per_article']:.1f} ms CPU/article "
        f"over {lim['sample_pages']:.0f} pages -> {f['limit_articles_per_s']} articles/s on "
        f"{f['cores']} cores; efficiency {f['efficiency']:.2f} "
        f"[target >= {TARGETS['efficiency']}: {mark(f['efficiency'] >= TARGETS['efficiency'])}]\n"
        f"warm: {f['warm_not_modified']} of {f['feeds']} feeds not modified, "
        f"{f['warm_new_items']} new items, in {f['warm_s']} s "
        f"[target <= {TARGETS['warm_s']} s: {mark(f['warm_s'] <= TARGETS['warm_s'])}] = "
        f"{f['warm_over_cold']:.3f} of cold [target <= {TARGETS['warm_over_cold']}: "
        f"{mark(f['warm_over_cold'] <= TARGETS['warm_over_cold'])}], "
        f"{f['warm_over_cold_poll']:.2f} of the cold poll stage\n"
        f"simulator requests: cold {f['requests_cold']}, warm {f['requests_warm']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000, help="new articles to ingest")
    parser.add_argument("--feeds", type=int, help="default: articles / items")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--items", type=int, default=5, help="items per feed")
    parser.add_argument("--no-tag", action="store_true", help="switch entity/topic tagging off")
    parser.add_argument("--per-host-delay", type=float, default=0.0, help="seconds (default 0)")
    parser.add_argument("--latency", type=float, default=0.0, help="simulator latency, seconds")
    parser.add_argument("--sample", type=int, default=200, help="pages for the limit")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    figures = run(
        args.articles,
        args.feeds,
        args.hosts,
        args.items,
        not args.no_tag,
        args.per_host_delay,
        args.latency,
        args.sample,
    )
    print(json.dumps(figures) if args.json else summary(figures))
    return 0


if __name__ == "__main__":
    run_main("benchmarks.e2e")
