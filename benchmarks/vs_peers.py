"""newsflow against newspaper4k and news-please: speed and extraction F1 on the same pages.

The article-extraction-benchmark pages (with their ground truth) are served on loopback by the
newsroom simulator (benchmarks/newsroom.py), ten items to a feed, one feed to a host;
``--articles`` (550) cycles the 181 pages, each further copy with small edits, so that fixed
costs (worker start, database, index) weigh about as little as in real use. Every tool gets the
same article URLs and bodies:

- newsflow: one real ingest cycle (tagging off) on the feeds listing those pages, into a fresh
  DuckDB; its text is read back from the ``articles`` table. Run twice: with all cores (the
  default extraction workers), and confined to one CPU with one extraction worker.
- newspaper4k (``Article(url, config).download(); .parse()``, ``fetch_images=False``) and
  news-please (``NewsPlease.from_url(url, fetch_images=False)``): one page after another in one
  process, as their documentation shows, each in its own virtualenv under
  ``benchmarks/.venvs/`` (created on first use from ``benchmarks/peers/<name>.txt``; not
  timed). No ``.nlp()``: it needs NLTK data from the internet.

Every tool runs in a subprocess (``benchmarks/peers/runner.py``) that refuses any connection
beyond loopback. One-CPU runs are confined with ``sched_setaffinity`` to CPU 0, the simulator
to CPU 1. Articles per CPU second (all of a tool's processes) is printed beside articles per
wall second: it moves far less when other work shares the machine. F1 is scored exactly as
``benchmarks/extraction.py`` scores.

    .venv/bin/python -m benchmarks.vs_peers [--articles 550] [--pages N] [--peers a,b] [--json]
    .venv/bin/python -m benchmarks.vs_peers --setup-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import CORPUS, ROOT, run_main
from benchmarks.extraction import page_counts, score
from benchmarks.newsroom import Simulator, load_pages

PEERS_DIR = ROOT / "benchmarks" / "peers"
VENVS_DIR = ROOT / "benchmarks" / ".venvs"  # git-ignored
RUNNER = PEERS_DIR / "runner.py"
PEERS = ("newspaper4k", "news-please")
TARGETS = {"newspaper4k": 3.0, "news-please": 5.0}  # newsflow articles/s over the peer's
ITEMS_PER_FEED = 10
RUN_TIMEOUT = 900.0  # seconds one tool may take on the full page set


class SetupError(RuntimeError):
    """A peer's virtualenv could not be made."""


# -- peers' virtualenvs ----------------------------------------------------------------------


def peer_python(name: str) -> Path:
    """The interpreter of ``name``'s virtualenv, created (once) from its requirements file."""
    requirements = PEERS_DIR / f"{name}.txt"
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements-sha256"
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    uv = shutil.which("uv")
    if uv is None:
        raise SetupError("uv is not installed: it makes the peers' virtualenvs")
    shutil.rmtree(venv, ignore_errors=True)
    # The project's own interpreter: wheels of every pinned version exist for it (3.11).
    steps = [
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
    ]
    print(f"setting up {name} in {venv} ...", file=sys.stderr)
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SetupError(f"{' '.join(step[:3])} failed for {name}:\n{done.stderr.strip()}")
    stamp.write_text(wanted)
    return python


# -- running one tool ------------------------------------------------------------------------


def run_tool(tool: str, python: Path, job: dict, cpus: set[int] | None) -> dict:
    """Run ``runner.py`` for ``tool`` and return its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="vs-peers-job-") as f:
        json.dump(job, f)
        f.flush()
        command = [str(python), str(RUNNER), tool, f.name]
        if cpus:
            command += ["--cpus", ",".join(map(str, sorted(cpus)))]
        done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} runner failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def page_f1(truth: str, text: str) -> float:
    tp, fp, fn = page_counts(truth, text)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def figures_of(raw: dict, truths: dict[str, str], origin: dict[str, str]) -> dict:
    """Speed, failures and F1 of one tool's run."""
    pages = raw["pages"]
    walls = [p["wall_s"] for p in pages if p["wall_s"] is not None]
    failed = [p for p in pages if not p["ok"]]
    quality = score([(truths[p["url"]], p["text"]) for p in pages if p["url"] in truths])
    out = {
        "articles": len(pages),
        "wall_s": round(raw["wall_s"], 2),
        "cpu_s": round(raw["cpu_s"], 2),
        "articles_per_s": round(len(pages) / raw["wall_s"], 2),
        # Less sensitive than wall time to other work on the machine.
        "articles_per_cpu_s": round(len(pages) / raw["cpu_s"], 2) if raw["cpu_s"] else None,
        "cpus": raw["cpus"],
        "failed": len(failed),
        "failures": [
            {"url": p["url"], "page": origin.get(p["url"]), "error": p["error"]} for p in failed
        ][:20],
        "precision": round(quality["precision"], 4),
        "recall": round(quality["recall"], 4),
        "f1": round(quality["f1"], 4),
        "blocked_connections": raw["blocked"],
    }
    if walls:
        out["page_ms_median"] = round(1000 * statistics.median(walls), 1)
        out["page_ms_max"] = round(1000 * max(walls), 1)
    if "summary" in raw:
        summary = raw["summary"]
        out["cycle"] = {"feeds": summary["feeds"], "articles": summary["articles"]}
    return out


def misses(
    raws: dict[str, dict], truths: dict[str, str], origin: dict[str, str], limit: int = 10
) -> list[dict]:
    """Pages where newsflow's F1 is lowest compared with the best peer's on the same page."""
    texts = {tool: {p["url"]: p for p in raw["pages"]} for tool, raw in raws.items()}
    rows = []
    for url, truth in truths.items():
        ours = texts["newsflow"][url]
        mine = page_f1(truth, ours["text"])
        peers = {t: page_f1(truth, texts[t][url]["text"]) for t in texts if t in PEERS}
        best = max(peers.values(), default=0.0)
        if best - mine > 0.2:
            row = {"url": url, "page": origin[url], "newsflow_f1": round(mine, 3)}
            row["newsflow_error"] = ours["error"]
            row.update({f"{t}_f1": round(v, 3) for t, v in peers.items()})
            rows.append((mine - best, row))
    rows.sort(key=lambda r: r[0])
    return [row for _, row in rows[:limit]]


# -- the benchmark ---------------------------------------------------------------------------


def run(
    pages: int | None,
    peers: list[str],
    corpus: Path = CORPUS,
    raw: Path | None = None,
    articles: int | None = None,
) -> dict:
    pythons = {name: peer_python(name) for name in peers}  # before any clock starts
    sources, where = load_pages(corpus)
    sources = sources[:pages] if pages else sources
    # More articles than source pages: the pages again, each copy edited (benchmarks/newsroom.py),
    # so that fixed costs (worker start, database, index) weigh as little as in real use.
    feeds = math.ceil(max(articles or 0, len(sources)) / ITEMS_PER_FEED)
    cores = sorted(os.sched_getaffinity(0))
    pin = {cores[0]} if len(cores) > 1 else None  # one-CPU runs; the simulator gets the rest
    results, raws = {}, {}
    started = time.perf_counter()
    with Simulator(feeds=feeds, hosts=feeds, items=ITEMS_PER_FEED, pages=sources) as sim:
        urls = sim.article_urls
        truths = {u: t for u in urls if (t := sim.truth(u)) is not None}
        # Article i shows source page i % len(sources), in ground-truth key order (load_pages).
        originals = [t["url"] for _, t in sorted(json.loads(
            (corpus / "ground-truth.json").read_text(encoding="utf-8")).items())]  # fmt: skip
        origin = {u: originals[i % len(sources)] for i, u in enumerate(urls)}
        job = {"urls": urls, "feeds": sim.feed_urls}
        plan = [("newsflow", "newsflow", sys.executable, None, 0)]
        plan.append(("newsflow_1cpu", "newsflow", sys.executable, pin, 1))
        plan += [(name, name, pythons[name], pin, 0) for name in peers]
        for label, tool, python, cpus, workers in plan:
            os.sched_setaffinity(sim.pid, set(cores) - cpus if cpus else set(cores))
            sim_cpu = sim.cpu_seconds()
            raws[label] = run_tool(tool, Path(python), {**job, "workers": workers}, cpus)
            results[label] = figures_of(raws[label], truths, origin)
            results[label]["server_cpu_s"] = round(sim.cpu_seconds() - sim_cpu, 2)
    if raw is not None:  # every tool's text of every page, with the truth, for a closer look
        raw.write_text(json.dumps({"truth": truths, "runs": raws}), encoding="utf-8")
    # F1 again on the pages every tool extracted something from: quality apart from failures.
    texts = {label: {p["url"]: p for p in r["pages"]} for label, r in raws.items()}
    common = [u for u in truths if all(pages[u]["ok"] for pages in texts.values())]
    for label in raws:
        f1 = score([(truths[u], texts[label][u]["text"]) for u in common])["f1"] if common else None
        results[label]["f1_pages_all_extracted"] = round(f1, 4) if f1 is not None else None
    ratios = {}
    for name in peers:
        theirs = results[name]["articles_per_s"]
        ratios[name] = {
            "all_cores": round(results["newsflow"]["articles_per_s"] / theirs, 2),
            "per_core": round(results["newsflow_1cpu"]["articles_per_s"] / theirs, 2),
            "by_cpu_time": round(
                results["newsflow"]["articles_per_cpu_s"] / results[name]["articles_per_cpu_s"], 2
            ),
            "target": TARGETS[name],
            "f1_at_least_theirs": results["newsflow"]["f1"] >= results[name]["f1"],
        }
    return {
        "corpus": where,
        "source_pages": len(sources),
        "articles": len(urls),
        "pages_all_extracted": len(common),
        "feeds": feeds,
        "hosts": feeds,
        "cores": len(cores),
        "tools": results,
        "ratios": ratios,
        "newsflow_misses": misses({k: raws[k] for k in ["newsflow", *peers]}, truths, origin),
        "total_s": round(time.perf_counter() - started, 1),
    }


def _verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else "NOT met"


def report(fig: dict) -> str:
    nan = float("nan")
    lines = [
        f"{fig['articles']} articles ({fig['source_pages']} source pages, {fig['feeds']} feeds "
        f"on {fig['hosts']} loopback hosts), {fig['cores']} cores, {fig['total_s']}s in all",
        f"{'tool':<15}{'cpus':>5}{'wall s':>8}{'cpu s':>8}{'art/s':>8}{'art/cpu-s':>10}"
        f"{'failed':>7}{'P':>7}{'R':>7}{'F1':>7}{'F1*':>7}{'page ms':>9}",
    ]
    for label, t in fig["tools"].items():
        lines.append(
            f"{label:<15}{len(t['cpus']):>5}{t['wall_s']:>8.2f}{t['cpu_s']:>8.2f}"
            f"{t['articles_per_s']:>8.2f}{t['articles_per_cpu_s'] or nan:>10.2f}{t['failed']:>7}"
            f"{t['precision']:>7.3f}{t['recall']:>7.3f}{t['f1']:>7.3f}"
            f"{t['f1_pages_all_extracted'] or nan:>7.3f}{t.get('page_ms_median', nan):>9.1f}"
        )
    lines += [
        f"F1* = F1 on the {fig['pages_all_extracted']} pages every tool extracted text from; "
        "page ms = median per page (peers, one at a time)",
        "newsflow's wall: feed polls, robots.txt, fetch, extract, load into DuckDB; "
        "the peers': download + parse",
    ]
    nf = fig["tools"]["newsflow"]
    for name, r in fig["ratios"].items():
        target = r["target"]
        lines.append(
            f"newsflow/{name} (target >= {target:g}x): {r['all_cores']}x all cores "
            f"({_verdict(r['all_cores'], target)}), {r['per_core']}x per core "
            f"({_verdict(r['per_core'], target)}), {r['by_cpu_time']}x by CPU time "
            f"({_verdict(r['by_cpu_time'], target)}); F1 {nf['f1']:.3f} vs "
            f"{fig['tools'][name]['f1']:.3f} (target >= theirs: "
            f"{'met' if r['f1_at_least_theirs'] else 'NOT met'})"
        )
    for label, t in fig["tools"].items():
        if t["blocked_connections"]:
            lines.append(f"{label}: blocked non-loopback attempts: {t['blocked_connections']}")
        for fail in t["failures"][:5]:
            error = " ".join(fail["error"].split())
            lines.append(f"{label} failed: {fail['url']} ({fail['page']}): {error}")
    if fig["newsflow_misses"]:
        lines.append("pages where newsflow's F1 trails a peer's by > 0.2:")
        for m in fig["newsflow_misses"]:
            peers = "  ".join(f"{k[:-3]} {v}" for k, v in m.items() if k.endswith("_f1"))
            lines.append(f"  {m['url']}  {peers}  ({m['newsflow_error'] or 'ok'})")
            lines.append(f"    source page: {m['page']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=None, help="first N corpus pages (all)")
    parser.add_argument(
        "--articles", type=int, default=550, help="articles served, cycling the pages (550)"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated peers")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--raw", type=Path, help="also write every page's text to this file")
    parser.add_argument("--setup-only", action="store_true", help="only make the virtualenvs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        print(f"unknown peer(s): {', '.join(unknown)} (known: {', '.join(PEERS)})", file=sys.stderr)
        return 2
    if not (args.corpus / "ground-truth.json").exists():
        print(f"corpus with ground truth not found: {args.corpus}", file=sys.stderr)
        return 2
    if args.pages is not None and args.pages < 1:
        print("--pages must be at least 1", file=sys.stderr)
        return 2
    try:
        if args.setup_only:
            for name in peers:
                print(f"{name}: {peer_python(name)}")
            return 0
        fig = run(args.pages, peers, args.corpus, args.raw, args.articles)
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(fig) if args.json else report(fig))
    return 0


if __name__ == "__main__":
    run_main("benchmarks.vs_peers")
