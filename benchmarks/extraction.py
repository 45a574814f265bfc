"""Extraction quality on the article-extraction-benchmark pages, scored the benchmark's way.

Scoring (as RESULTS.md of the benchmark describes it): tokens are ``\\w+`` runs; each page's
predicted and true bodies are compared as multisets of 4-token shingles, giving TP/FP/FN that
are normalised to sum to 1 per page; precision and recall are averaged over pages, and F1 is
computed from those two averages.

    .venv/bin/python -m benchmarks.extraction [--corpus DIR] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from newsflow.fetching.extract import extract_page

from benchmarks.common import CORPUS, run_main

_TOKEN = re.compile(r"\w+")


def shingles(text: str, n: int = 4) -> Counter:
    tokens = _TOKEN.findall(text or "")
    grams = (tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)))
    return Counter(g for g in grams if g)


def page_counts(true: str, pred: str) -> tuple[float, float, float]:
    """Normalised (tp, fp, fn) of one page."""
    t, p = shingles(true), shingles(pred)
    tp = sum((t & p).values())
    fp = sum((p - t).values())
    fn = sum((t - p).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def _precision(tp, fp, fn):
    return 1.0 if fp == fn == 0 else (0.0 if tp == fp == 0 else tp / (tp + fp))


def _recall(tp, fp, fn):
    return 1.0 if fp == fn == 0 else (0.0 if tp == fn == 0 else tp / (tp + fn))


def score(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """P/R/F1 over (true, predicted) body pairs."""
    counts = [page_counts(t, p) for t, p in pairs]
    precision = statistics.mean(_precision(*c) for c in counts if c[0] + c[1] > 0)
    recall = statistics.mean(_recall(*c) for c in counts if c[0] + c[2] > 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pages": len(pairs)}


def _predict(args: tuple[Path, str]) -> tuple[str, float]:
    path, url = args
    html = gzip.decompress(path.read_bytes())
    started = time.process_time()
    result = extract_page(html, url)
    # What newsflow stores as the page's text: the extraction when it counts as an article.
    return (result.text or "") if result.ok else "", time.process_time() - started


def run(corpus: Path, workers: int = 2) -> dict:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    keys = sorted(truth)
    jobs = [(corpus / "html" / f"{k}.html.gz", truth[k]["url"]) for k in keys]
    with ProcessPoolExecutor(workers) as pool:
        predictions = list(pool.map(_predict, jobs, chunksize=4))
    figures = score([(truth[k]["articleBody"], pred) for k, (pred, _) in zip(keys, predictions)])
    figures["cpu_ms_per_page"] = 1000 * statistics.mean(cpu for _, cpu in predictions)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not (args.corpus / "ground-truth.json").exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    figures = run(args.corpus, args.workers)
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"pages={figures['pages']}  precision={figures['precision']:.3f}  "
            f"recall={figures['recall']:.3f}  F1={figures['f1']:.3f}  "
            f"cpu/page={figures['cpu_ms_per_page']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    run_main("benchmarks.extraction")
