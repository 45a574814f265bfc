"""Story clustering quality and speed on pairs generated from real articles.

    .venv/bin/python -m benchmarks.stories [--threshold 0.8] [--sweep] [--write-fixture]
                                           [--repeat 3]

Texts: the 181 ground-truth article texts of ../shared/corpus/article-extraction-benchmark
(MIT, Scrapinghub). From each article the generator (fixed seed) makes copies that are the
same story, as another outlet would run it:

  edits            1-3 words changed, inserted or deleted per paragraph (a wire rewrite:
                   "said" -> "says", "also", "on Tuesday", a dropped word)
  boilerplate      an outlet's intro line, and footer lines ("Read more", newsletter,
                   copyright) added
  truncated        the first 80-90% of the words
  para_removed     one paragraph (not the first) removed
  edits+boilerplate, truncated+boilerplate, edits+para_removed, all (edits + para_removed +
  truncated + boilerplate)

Positive pairs (same story): the article vs each copy, and two copies with different outlets'
boilerplate, one of them edited ("two_outlets"). Negative pairs (different stories): each
article vs the other article sharing most of its rare words ("same_topic": the closest pairs
of the corpus), vs two random others ("random"), two different articles carrying the same
outlet's boilerplate ("same_boilerplate"), and the article vs a templated article made from
it, with every name and number swapped ("entities_swapped", when that changes at least 8% of
the words).

Printed: the parameters, pair precision/recall/F1 of (a) ``signature`` + ``similarity >=
threshold`` over every pair, (b) the LSH path: a pair must share a band key and then pass
verification, (c) ``assign_stories`` end to end (every text ingested in random order, in
batches of 1-60, against an in-memory store; a pair is predicted the same story when both get
one story_id) and, for it, pairwise precision/recall over all pairs of texts (the clustering);
then recall per kind of copy, the similarities of each kind of negative, and the milliseconds
per signature.
``--sweep`` prints exact-Jaccard recall and negative margins for shingles of 1-8 words.
``--write-fixture`` writes tests/fixtures/stories/pairs.json.gz (20 articles cut to 2,500
characters, with their generated copies and pairs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsflow.enrich import stories

from benchmarks.common import CORPUS, ROOT, run_main

FIXTURE = ROOT / "tests" / "fixtures" / "stories" / "pairs.json.gz"
SEED = 20240611
FIXTURE_ARTICLES = 20
FIXTURE_CHARS = 2500

POSITIVE_KINDS = (
    "edits",
    "boilerplate",
    "truncated",
    "para_removed",
    "edits+boilerplate",
    "truncated+boilerplate",
    "edits+para_removed",
    "all",
    "two_outlets",
)
NEGATIVE_KINDS = ("same_topic", "random", "same_boilerplate", "entities_swapped")

# Wire rewrites: words an outlet's desk changes, and words it inserts.
REWRITES = {
    "said": "says",
    "says": "said",
    "told": "said to",
    "about": "around",
    "around": "about",
    "however": "but",
    "but": "however",
    "also": "further",
    "because": "as",
    "while": "whereas",
    "big": "large",
    "large": "big",
    "many": "numerous",
    "people": "persons",
    "company": "firm",
    "government": "administration",
    "percent": "per cent",
    "nearly": "almost",
    "almost": "nearly",
    "very": "highly",
    "new": "latest",
    "will": "would",
    "can": "could",
    "show": "indicate",
    "start": "begin",
}
INSERTS = ("also", "reportedly", "on Tuesday", "now", "officials said", "still", "recently")
OUTLETS = [
    (
        "By Staff Reporter, The Daily Courier | Updated {time} GMT",
        [
            "Read more: The Daily Courier's full coverage of this story.",
            "© {year} The Daily Courier. All rights reserved.",
        ],
    ),
    (
        "(Metro Wire) — This story was first published by our partners and is republished "
        "with permission.",
        [
            "Sign up for our free morning newsletter to get the day's top stories delivered to "
            "your inbox.",
            "Copyright {year} Metro Wire Services. This material may not be published, "
            "broadcast, rewritten or redistributed.",
        ],
    ),
    (
        "Posted {time} by the newsroom — share this article on Facebook, Twitter or email.",
        [
            "Follow us on Twitter and Facebook for the latest breaking news and updates.",
            "Read more: Top stories of the week you may have missed.",
            "Copyright © {year} Valley News Network, all rights reserved.",
        ],
    ),
    (
        "ADVERTISEMENT — Story continues below this advertisement.",
        [
            "Have a news tip? Contact our newsroom by email; we read every message.",
            "This article originally appeared on the Northern Star website. © {year}",
        ],
    ),
]

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKENS = re.compile(rf"\s+|[{_CJK}]|[^\s{_CJK}]+")


# -- the generator --------------------------------------------------------------------------


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n") if p.strip()]


def join(paras: list[str]) -> str:
    return "\n\n".join(paras)


def _is_word(token: str) -> bool:
    return not token.isspace()


def edit_paragraph(para: str, rng: random.Random, pool: list[str]) -> str:
    """1-3 word edits (0-1 under 10 words): substitute, insert or delete a word."""
    tokens = _TOKENS.findall(para)
    words = [i for i, t in enumerate(tokens) if _is_word(t)]
    n = rng.randint(0, 1) if len(words) < 10 else rng.randint(1, 3)
    cjk = bool(re.search(f"[{_CJK}]", para))
    for _ in range(n):
        words = [i for i, t in enumerate(tokens) if _is_word(t)]
        if len(words) < 2:
            break
        i = rng.choice(words)
        op = rng.choice(("substitute", "insert", "delete"))
        core = tokens[i].strip(".,;:!?\"'“”‘’()").lower()
        if op == "substitute":
            new = REWRITES.get(core) or rng.choice(pool)
            tokens[i] = tokens[i].lower().replace(core, new) if core in REWRITES else new
        elif op == "insert":
            word = rng.choice(pool) if cjk else rng.choice(INSERTS)
            tokens[i:i] = [word] if cjk else [word, " "]
        else:
            del tokens[i]
            if i < len(tokens) and tokens[i].isspace() and i > 0 and tokens[i - 1].isspace():
                del tokens[i]
    return "".join(tokens)


def light_edits(paras: list[str], rng: random.Random) -> list[str]:
    pool = [t for t in _TOKENS.findall(" ".join(paras)) if _is_word(t)] or ["word"]
    return [edit_paragraph(p, rng, pool) for p in paras]


def with_boilerplate(paras: list[str], outlet: int, rng: random.Random) -> list[str]:
    intro, footer = OUTLETS[outlet % len(OUTLETS)]
    fill = {"time": f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d} p.m.", "year": "2024"}
    return [intro.format(**fill), *paras, *(line.format(**fill) for line in footer)]


def truncated(paras: list[str], rng: random.Random) -> list[str]:
    """The first 80-90% of the words (paragraphs kept)."""
    total = sum(len(p.split()) for p in paras)
    keep = round(total * rng.uniform(0.80, 0.90))
    out = []
    for p in paras:
        words = p.split()
        if keep <= 0:
            break
        out.append(" ".join(words[:keep]))
        keep -= len(words)
    return out


def para_removed(paras: list[str], rng: random.Random) -> list[str]:
    """One paragraph removed (never the first); a sentence when the text is one paragraph."""
    if len(paras) >= 2:
        i = rng.randrange(1, len(paras))
        return paras[:i] + paras[i + 1 :]
    sentences = re.split(r"(?<=[.!?。])\s*", paras[0]) if paras else []
    sentences = [s for s in sentences if s]
    if len(sentences) < 2:
        return paras
    i = rng.randrange(1, len(sentences))
    return [" ".join(sentences[:i] + sentences[i + 1 :])]


def variants(text: str, rng: random.Random, outlet: int) -> dict[str, str]:
    """The same-story copies of ``text`` by kind (``two_outlets`` uses two of them)."""
    paras = paragraphs(text)
    edited = light_edits(paras, rng)
    out = {
        "edits": edited,
        "boilerplate": with_boilerplate(paras, outlet, rng),
        "truncated": truncated(paras, rng),
        "para_removed": para_removed(paras, rng),
        "edits+boilerplate": with_boilerplate(edited, outlet + 1, rng),
        "truncated+boilerplate": with_boilerplate(truncated(paras, rng), outlet + 2, rng),
        "edits+para_removed": para_removed(light_edits(paras, rng), rng),
        "all": with_boilerplate(
            truncated(para_removed(light_edits(paras, rng), rng), rng), outlet + 3, rng
        ),
    }
    return {kind: join(p) for kind, p in out.items()}


_NAME = re.compile(r"(?<=[a-z,;:] )[A-Z][A-Za-z’'-]+|\b\d[\d.,:%]*")


def entities_swapped(text: str, rng: random.Random, names: list[str]) -> str | None:
    """A templated article about something else: every name (a capitalised word inside a
    sentence) and every number replaced, consistently; None when under 8% of the words are."""
    mapping: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        old = m.group()
        if old not in mapping:
            if old[0].isdigit():
                mapping[old] = re.sub(r"\d", lambda _: str(rng.randint(0, 9)), old)
            else:
                mapping[old] = rng.choice(names)
        return mapping[old]

    swapped, n = _NAME.subn(swap, text)
    return swapped if n >= 0.08 * len(stories.normalise(text)) else None


def content_words(text: str) -> set[str]:
    return {w for w in stories.normalise(text) if len(w) > 3 or not w.isascii()}


def closest_others(texts: dict[str, str]) -> dict[str, tuple[str, float]]:
    """For each article, the other article sharing most of its content words (rare words)."""
    words = {aid: content_words(t) for aid, t in texts.items()}
    df = Counter(w for ws in words.values() for w in ws)
    limit = max(2, len(texts) // 10)  # words in over 10% of the articles say nothing
    rare = {aid: {w for w in ws if df[w] <= limit} for aid, ws in words.items()}
    out = {}
    for aid, ws in rare.items():
        best = ("", -1.0)
        for other, os_ in rare.items():
            if other != aid and ws and os_:
                score = len(ws & os_) / len(ws | os_)
                if score > best[1] or (score == best[1] and other < best[0]):
                    best = (other, score)
        out[aid] = best
    return out


def build(texts: dict[str, str], seed: int = SEED) -> dict:
    """Documents (id -> text, story) and labelled pairs generated from ``texts``."""
    rng = random.Random(seed)
    ids = sorted(texts)
    docs: dict[str, dict] = {}
    pairs: list[dict] = []
    for n, aid in enumerate(ids):
        docs[aid] = {"text": texts[aid], "story": aid}
        for kind, text in variants(texts[aid], rng, outlet=n).items():
            docs[f"{aid}~{kind}"] = {"text": text, "story": aid}
            pairs.append({"a": aid, "b": f"{aid}~{kind}", "same": True, "kind": kind})
        pairs.append(
            {"a": f"{aid}~boilerplate", "b": f"{aid}~edits+boilerplate", "same": True}
            | {"kind": "two_outlets"}
        )
    closest = closest_others(texts)
    names = sorted({m.group() for t in texts.values() for m in _NAME.finditer(t)} - {""})
    names = [n for n in names if not n[0].isdigit()] or ["Smith"]
    seen: set[frozenset] = set()
    for n, aid in enumerate(ids):
        other = closest[aid][0]
        if other and frozenset((aid, other)) not in seen:
            seen.add(frozenset((aid, other)))
            pairs.append({"a": aid, "b": other, "same": False, "kind": "same_topic"})
        for other in rng.sample([i for i in ids if i != aid], min(2, len(ids) - 1)):
            if frozenset((aid, other)) not in seen:
                seen.add(frozenset((aid, other)))
                pairs.append({"a": aid, "b": other, "same": False, "kind": "random"})
        # Two different articles carrying the same outlet's intro and footer.
        if other := closest[aid][0]:
            outlet = n % len(OUTLETS)
            for x in (aid, other):
                key = f"{x}~outlet{outlet}"
                if key not in docs:
                    text = join(with_boilerplate(paragraphs(texts[x]), outlet, rng))
                    docs[key] = {"text": text, "story": x}
            pair = {"a": f"{aid}~outlet{outlet}", "b": f"{other}~outlet{outlet}"}
            if frozenset(pair.values()) not in seen:
                seen.add(frozenset(pair.values()))
                pairs.append(pair | {"same": False, "kind": "same_boilerplate"})
        # The same template, other names and numbers: a different story.
        if swapped := entities_swapped(texts[aid], rng, names):
            docs[f"{aid}~swapped"] = {"text": swapped, "story": f"{aid}~swapped"}
            pairs.append({"a": aid, "b": f"{aid}~swapped", "same": False})
            pairs[-1]["kind"] = "entities_swapped"
    return {"seed": seed, "docs": docs, "pairs": pairs}


# -- evaluation -----------------------------------------------------------------------------


def prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def score(pairs: list[dict], predicted: list[bool]) -> dict:
    tp = sum(p["same"] and y for p, y in zip(pairs, predicted))
    fp = sum(not p["same"] and y for p, y in zip(pairs, predicted))
    fn = sum(p["same"] and not y for p, y in zip(pairs, predicted))
    return prf(tp, fp, fn)


class MemoryStore:
    """What newsflow.db.store keeps for stories: signature, seen_at, story_id and band keys."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.by_key: dict[int, set[str]] = defaultdict(set)

    def lookup(self, keys: list[int]) -> list[dict]:
        found = set().union(*(self.by_key.get(k, set()) for k in keys))
        return [dict(self.rows[aid]) for aid in sorted(found)]

    def add(self, item: dict, story_id: str) -> None:
        self.rows[item["article_id"]] = item | {"story_id": story_id}
        if item["signature"]:
            for k in stories.band_keys(item["signature"]):
                self.by_key[k].add(item["article_id"])


def end_to_end(
    docs: dict[str, dict], sigs: dict[str, bytes | None], threshold: float, seed: int
) -> dict[str, str]:
    """story_id of every document, ingested in random order in batches of 1-60."""
    rng = random.Random(seed)
    order = sorted(docs)
    rng.shuffle(order)
    start = datetime(2024, 6, 1, tzinfo=UTC)
    seen_at = {d: start + timedelta(minutes=rng.randrange(24 * 60)) for d in order}
    store = MemoryStore()
    out: dict[str, str] = {}
    i = 0
    while i < len(order):
        batch = order[i : i + rng.randint(1, 60)]
        i += len(batch)
        items = [{"article_id": d, "signature": sigs[d], "seen_at": seen_at[d]} for d in batch]
        assigned = stories.assign_stories(items, store.lookup, threshold=threshold)
        for item in items:
            store.add(item, assigned[item["article_id"]])
        out.update(assigned)
    return out


def evaluate(data: dict, threshold: float = stories.THRESHOLD) -> dict:
    """Figures of the three paths on generated ``data`` (see the module docstring)."""
    docs, pairs = data["docs"], data["pairs"]
    sigs = {d: stories.signature(v["text"]) for d, v in docs.items()}
    keys = {d: set(stories.band_keys(s)) if s else set() for d, s in sigs.items()}
    sims, direct, lsh = [], [], []
    for p in pairs:
        a, b = sigs[p["a"]], sigs[p["b"]]
        sim = stories.similarity(a, b) if a and b else 0.0
        sims.append(sim)
        direct.append(sim >= threshold)
        lsh.append(bool(keys[p["a"]] & keys[p["b"]]) and sim >= threshold)
    started = time.perf_counter()
    assigned = end_to_end(docs, sigs, threshold, data["seed"])
    assign_ms = 1000 * (time.perf_counter() - started) / len(docs)
    e2e = [assigned[p["a"]] == assigned[p["b"]] for p in pairs]

    # Clustering of every document: pairwise over all pairs of documents.
    truth, found = defaultdict(set), defaultdict(set)
    for d, v in docs.items():
        truth[v["story"]].add(d)
        found[assigned[d]].add(d)
    tp = sum(len(a & b) * (len(a & b) - 1) // 2 for a in truth.values() for b in found.values())
    true_pairs = sum(len(a) * (len(a) - 1) // 2 for a in truth.values())
    found_pairs = sum(len(b) * (len(b) - 1) // 2 for b in found.values())

    kinds: dict[str, dict] = {}
    for p, sim, y_direct, y_lsh, y_e2e in zip(pairs, sims, direct, lsh, e2e):
        k = kinds.setdefault(p["kind"], {"n": 0, "sims": [], "direct": 0, "lsh": 0, "e2e": 0})
        k["n"] += 1
        k["sims"].append(sim)
        k["direct"] += y_direct
        k["lsh"] += y_lsh
        k["e2e"] += y_e2e
    return {
        "threshold": threshold,
        "docs": len(docs),
        "no_signature": sum(s is None for s in sigs.values()),
        "positives": sum(p["same"] for p in pairs),
        "negatives": sum(not p["same"] for p in pairs),
        "signature": score(pairs, direct),
        "lsh": score(pairs, lsh),
        "assign_stories": score(pairs, e2e),
        "clusters": prf(tp, found_pairs - tp, true_pairs - tp)
        | {"stories": len(found), "true_stories": len(truth)},
        "kinds": kinds,
        "assign_ms_per_article": assign_ms,
    }


def load_corpus(path: Path = CORPUS) -> dict[str, str]:
    truth = json.loads((path / "ground-truth.json").read_text(encoding="utf-8"))
    return {key[:16]: value.get("articleBody") or "" for key, value in sorted(truth.items())}


def evaluate_corpus(path: Path = CORPUS, threshold: float = stories.THRESHOLD) -> dict:
    return evaluate(build(load_corpus(path)), threshold)


def signature_speed(texts: list[str], repeat: int = 3) -> dict:
    """Best-of-``repeat`` milliseconds per signature, mean over the texts and the longest."""
    words = sum(len(stories.normalise(t)) for t in texts)
    longest = max(texts, key=len)
    stories.signature(longest)  # warm the hash-function cache
    rounds, long_rounds = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        for t in texts:
            stories.signature(t)
        rounds.append(time.perf_counter() - started)
        started = time.perf_counter()
        stories.signature(longest)
        long_rounds.append(time.perf_counter() - started)
    best = min(rounds)
    return {
        "ms_per_article": 1000 * best / len(texts),
        "ms_per_1000_words": 1000 * best / words * 1000,
        "ms_longest": 1000 * min(long_rounds),
        "longest_words": len(stories.normalise(longest)),
        "articles": len(texts),
        "repeat": repeat,
    }


def sweep(data: dict, threshold: float, ks=range(1, 9)) -> None:
    """Exact-Jaccard figures for shingles of k words: recall per kind of copy, and the highest
    resemblance of each kind of negative (its margin below the threshold)."""
    docs, pairs = data["docs"], data["pairs"]
    words = {d: stories.normalise(v["text"]) for d, v in docs.items()}
    short = {"edits+boilerplate": "ed+bp", "truncated+boilerplate": "tr+bp"}
    short |= {"edits+para_removed": "ed+pr", "same_boilerplate": "same_bp"}
    short |= {"entities_swapped": "swapped", "para_removed": "para_rm", "boilerplate": "boilerp"}
    print(f"\nexact Jaccard by shingle size (threshold {threshold}); recall per kind, then the")
    print("highest resemblance per kind of negative:")
    cols = [short.get(k, k)[:7] for k in (*POSITIVE_KINDS, *NEGATIVE_KINDS)]
    print(f"{'k':>2} {'prec':>5} {'recall':>6} {'F1':>5}  " + " ".join(f"{c:>7}" for c in cols))
    for k in ks:
        sets = {d: set(stories.shingle_hashes(w, k).tolist()) for d, w in words.items()}
        js = []
        for p in pairs:
            a, b = sets[p["a"]], sets[p["b"]]
            ok = len(words[p["a"]]) >= stories.MIN_WORDS <= len(words[p["b"]])
            js.append(len(a & b) / len(a | b) if ok and a and b else 0.0)
        figures = score(pairs, [j >= threshold for j in js])
        cells = []
        for kind in (*POSITIVE_KINDS, *NEGATIVE_KINDS):
            kj = [j for p, j in zip(pairs, js) if p["kind"] == kind]
            if kind in POSITIVE_KINDS:
                cells.append(sum(j >= threshold for j in kj) / len(kj))
            else:
                cells.append(max(kj))
        print(
            f"{k:>2} {figures['precision']:5.3f} {figures['recall']:6.3f} {figures['f1']:5.3f}  "
            + " ".join(f"{c:7.2f}" for c in cells)
        )


def report(figures: dict, title: str) -> None:
    print(f"\n{title}: {figures['docs']} texts ({figures['no_signature']} without signature),")
    print(f"  {figures['positives']} same-story pairs, {figures['negatives']} different-story")
    print(f"{'path':<32} {'precision':>9} {'recall':>7} {'F1':>6} {'fp':>4} {'fn':>4}")
    names = {
        "signature": "signature + similarity",
        "lsh": "LSH bands + verification",
        "assign_stories": "assign_stories (end to end)",
        "clusters": "  clusters, all pairs of texts",
    }
    for key, name in names.items():
        f = figures[key]
        print(
            f"{name:<32} {f['precision']:9.3f} {f['recall']:7.3f} {f['f1']:6.3f}"
            f" {f['fp']:>4} {f['fn']:>4}"
        )
    c = figures["clusters"]
    print(f"  stories found {c['stories']} (true {c['true_stories']})")
    print(
        f"  assign_stories: {figures['assign_ms_per_article']:.2f} ms per article (band keys,"
        " verification, union-find; in-memory lookup, store updates included)"
    )
    print(
        f"\n{'kind':<22} {'pairs':>5} {'sim mean':>8} {'min':>5} {'max':>5}  share predicted same"
    )
    print(f"{'':<22} {'':>5} {'':>8} {'':>5} {'':>5}  {'sig':>5} {'lsh':>5} {'e2e':>5}")
    for kind in (*POSITIVE_KINDS, *NEGATIVE_KINDS):
        k = figures["kinds"].get(kind)
        if not k:
            continue
        n = k["n"]
        print(
            f"{kind:<22} {n:>5} {statistics.mean(k['sims']):8.3f} {min(k['sims']):5.2f}"
            f" {max(k['sims']):5.2f}  {k['direct'] / n:5.2f} {k['lsh'] / n:5.2f}"
            f" {k['e2e'] / n:5.2f}"
        )


def cut(text: str, limit: int = FIXTURE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters at a paragraph, else a word boundary."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = head.rfind("\n")
    if end < limit // 2:
        end = head.rfind(" ")
    return head[:end].rstrip()


def fixture_texts(texts: dict[str, str], n: int = FIXTURE_ARTICLES) -> dict[str, str]:
    """``n`` articles in closest pairs (hard negatives), each cut to 2,500 characters."""
    cuts = {
        aid: cut(t)
        for aid, t in texts.items()
        if len(stories.normalise(cut(t))) >= 3 * stories.MIN_WORDS
    }
    closest = closest_others(cuts)
    chosen: list[str] = []
    for aid, (other, _) in sorted(closest.items(), key=lambda kv: (-kv[1][1], kv[0])):
        if len(chosen) >= n:
            break
        if aid not in chosen and other not in chosen:
            chosen += [aid, other]
    return {aid: cuts[aid] for aid in sorted(chosen[:n])}


def write_fixture(texts: dict[str, str]) -> dict:
    data = build(fixture_texts(texts))
    truth = json.loads((CORPUS / "ground-truth.json").read_text(encoding="utf-8"))
    urls = {key[:16]: value.get("url") for key, value in truth.items()}
    data["sources"] = {aid: urls[aid] for aid in data["docs"] if aid in urls}
    data["provenance"] = (
        "ground-truth.json of https://github.com/scrapinghub/article-extraction-benchmark"
        " (MIT, (c) 2020 Scrapinghub), texts cut to 2,500 characters; copies and pairs by"
        " benchmarks/stories.py --write-fixture"
    )
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=0).encode()
    FIXTURE.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    print(f"\nwrote {FIXTURE.relative_to(ROOT)}: {FIXTURE.stat().st_size / 1024:.0f} KB")
    return data


def load_fixture(path: Path = FIXTURE) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threshold", type=float, default=stories.THRESHOLD)
    parser.add_argument("--sweep", action="store_true", help="exact Jaccard for k = 1..8")
    parser.add_argument("--write-fixture", action="store_true", help=f"write {FIXTURE.name}")
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds (best counts)")
    args = parser.parse_args()

    print(
        f"parameters: shingles of k={stories.SHINGLE_WORDS} words, num_perm={stories.NUM_PERM}"
        f" (uint32 slots), bands x rows = {stories.BANDS} x {stories.ROWS},"
        f" threshold {args.threshold}, min words {stories.MIN_WORDS}, seed {SEED}"
    )
    curve = "  ".join(
        f"{j}:{1 - (1 - j**stories.ROWS) ** stories.BANDS:.3f}"
        for j in (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
    )
    print(f"LSH S-curve P(candidate | J): {curve}")
    if not (CORPUS / "ground-truth.json").exists():
        print(f"skipped: corpus not available at {CORPUS}; the committed fixture only")
        if FIXTURE.exists():
            fixture = load_fixture()
            report(evaluate(fixture, args.threshold), f"fixture {FIXTURE.name}")
            texts = {d: v["text"] for d, v in fixture["docs"].items() if "~" not in d}
            print_speed(signature_speed(list(texts.values()), args.repeat))
        return 0

    texts = load_corpus()
    data = build(texts)
    report(evaluate(data, args.threshold), f"corpus {CORPUS.name}")
    if args.sweep:
        sweep(data, args.threshold)
    if args.write_fixture:
        write_fixture(texts)
    if FIXTURE.exists():
        report(evaluate(load_fixture(), args.threshold), f"fixture {FIXTURE.name}")
    print_speed(signature_speed(list(texts.values()), args.repeat))
    return 0


def print_speed(speed: dict) -> None:
    print(
        f"\nsignature: {speed['ms_per_article']:.2f} ms per article"
        f" ({speed['ms_per_1000_words']:.2f} ms per 1,000 words; the longest,"
        f" {speed['longest_words']} words: {speed['ms_longest']:.2f} ms), best of"
        f" {speed['repeat']} rounds over {speed['articles']} articles"
    )


if __name__ == "__main__":
    run_main("benchmarks.stories")
