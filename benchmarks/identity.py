"""Entity identity across articles against the identity gold set.

    .venv/bin/python -m benchmarks.identity [--misses]
    .venv/bin/python -m benchmarks.identity --write-items     # (re)build the items fixture
    .venv/bin/python -m benchmarks.identity --candidates N    # pairs to label, printed

The corpus: the 497 items of the 15 real feeds of ../shared/corpus/real-feeds (their titles and
summaries, up to 1,500 characters each), stored in tests/fixtures/identity/items.json.gz so that
the benchmark and its test run without ../shared. They are tagged with the real model, loaded
into a real store feed by feed in order of publication (each load resolving its own new names,
as ingestion does: ``db.places.locate`` and ``db.entities.assign``), then re-resolved by
maintenance (``db.entities.resolve_all``).

The gold set (tests/fixtures/identity/pairs.tsv): pairs of names from two different items,
labelled by hand from the items' text, the same entity or not, hard negatives included (two
people who share a surname, a city and a person of one name, Georgia the country and the
state). A pair is predicted the same when both rows got one ``entity_id``. Printed: pairs,
positives, precision, recall and F1 (targets P >= 0.95, R >= 0.85), after the loads alone and
after maintenance.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import re
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import run_main

ROOT = Path(__file__).resolve().parents[1]
FEEDS = ROOT.parent / "shared" / "corpus" / "real-feeds"
FIXTURE = ROOT / "tests" / "fixtures" / "identity"
ITEMS = FIXTURE / "items.json.gz"
PAIRS = FIXTURE / "pairs.tsv"
MAX_CHARS = 1500


def write_items() -> int:
    import feedparser
    from newsflow.fetching.extract import detect_language

    items = []
    for path in sorted(FEEDS.glob("*.xml")):
        parsed = feedparser.parse(path.read_bytes())
        for n, e in enumerate(parsed.entries):
            summary = html.unescape(re.sub(r"<[^>]+>", " ", e.get("summary") or ""))
            text = " ".join(summary.split())[:MAX_CHARS]
            title = " ".join((e.get("title") or "").split())
            when = e.get("published_parsed") or e.get("updated_parsed")
            if not (title or text) or detect_language(f"{title}. {text}") != "en":
                continue
            items.append(
                {
                    "id": f"{path.name.split('.')[0]}-{n:03d}",
                    "feed": path.name.split(".")[0],
                    "published": datetime(*when[:6], tzinfo=UTC).isoformat() if when else None,
                    "title": title,
                    "text": text,
                }
            )
    FIXTURE.mkdir(parents=True, exist_ok=True)
    ITEMS.write_bytes(gzip.compress(json.dumps(items, ensure_ascii=False).encode(), 9, mtime=0))
    print(f"wrote {ITEMS.relative_to(ROOT)}: {len(items)} items")
    return 0


def load_items() -> list[dict]:
    return json.loads(gzip.decompress(ITEMS.read_bytes()))


def load_pairs(path: Path = PAIRS) -> list[tuple[str, str, str, str, bool]]:
    """(item a, name a, item b, name b, same) rows of the gold set."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("item_a\t"):
            continue
        a, na, b, nb, same = line.split("\t")[:5]
        out.append((a, na, b, nb, same == "same"))
    return out


def build(items: list[dict], data_dir: Path):
    """A real store of the items, loaded feed by feed; returns (store path, ids after the
    loads, ids after maintenance): (item, entity) -> entity_id."""
    from newsflow.config import Settings
    from newsflow.db import entities as entity_db
    from newsflow.db import places as places_db
    from newsflow.db.engine import arrow
    from newsflow.db.store import Store
    from newsflow.enrich.tag import Tagger
    from newsflow.rows import ENTITY_SCHEMA

    settings = Settings(data_dir=data_dir)
    tagger = Tagger(settings.ner_model_map)
    by_feed: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        by_feed[it["feed"]].append(it)
    order = sorted(by_feed, key=lambda f: min(i["published"] or "" for i in by_feed[f]))
    now = datetime.now(UTC)

    def ids(con) -> dict[tuple[str, str], str]:
        return {
            (a, e): eid
            for a, e, eid in con.execute(
                "select article_id, entity, entity_id from article_entities"
            ).fetchall()
        }

    with Store(settings.lake) as store:
        con = store.con
        for feed in order:
            batch = by_feed[feed]
            rows = tagger.tag(
                [
                    {
                        "article_id": it["id"],
                        "title": it["title"],
                        "text": it["text"],
                        "language": "en",
                        "feed_categories": [],
                    }
                    for it in batch
                ],
                kinds=("entities",),
            )
            con.execute("begin")
            for it in batch:
                published = datetime.fromisoformat(it["published"]) if it["published"] else now
                con.execute(
                    "insert into articles (article_id, feed_id, run_id, url, canonical_url,"
                    " title, text, published_at, first_seen_at, loaded_at, extraction_status,"
                    " word_count, language) values (?, ?, 'identity', ?, ?, ?, ?, ?, ?, ?,"
                    " 'feed_content', ?, 'en')",
                    [
                        it["id"],
                        feed,
                        f"http://127.0.0.1/{it['id']}",
                        f"http://127.0.0.1/{it['id']}",
                        it["title"],
                        it["text"],
                        published,
                        published,
                        now,
                        len(it["text"].split()),
                    ],
                )
            cols = {name: [r.get(name) for r in rows.entities] for name in ENTITY_SCHEMA.names}
            typed = {
                k: (v, ENTITY_SCHEMA.field(k).type) if k not in ("article_id", "entity") else v
                for k, v in cols.items()
            }
            with arrow(con, "identity_rows", **typed):
                entity_db.insert_rows(con, "identity_rows", list(ENTITY_SCHEMA.names))
            aids = [it["id"] for it in batch]
            places_db.locate(con, aids)
            entity_db.assign(con, aids)
            places_db.link(con, aids)
            con.execute("commit")
        loaded = ids(con)
        store.resolve_entities()
        maintained = ids(con)
    return loaded, maintained


def score(pairs: list[tuple[str, str, str, str, bool]], ids: dict[tuple[str, str], str]) -> dict:
    tp = fp = fn = tn = missing = 0
    misses = []
    for a, na, b, nb, same in pairs:
        ia, ib = ids.get((a, na)), ids.get((b, nb))
        if ia is None or ib is None:
            # A name the tagger no longer gives (its boundary or label rules changed): a pair of
            # one entity counts as missed, a pair of two as kept apart.
            missing += 1
            if same:
                fn += 1
                misses.append(("untagged", a, na, b, nb))
            else:
                tn += 1
            continue
        predicted = ia == ib
        if predicted and same:
            tp += 1
        elif predicted:
            fp += 1
            misses.append(("joined", a, na, b, nb))
        elif same:
            fn += 1
            misses.append(("apart", a, na, b, nb))
        else:
            tn += 1
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {
        "pairs": tp + fp + fn + tn,
        "positives": tp + fn,
        "precision": round(p, 3),
        "recall": round(r, 3),
        "f1": round(f, 3),
        "missing": missing,
        "misses": misses,
    }


def candidates(n: int) -> int:
    """Print up to ``n`` cross-item pairs worth labelling: a name and a longer one containing
    it ("Trump", "Donald Trump"; "Eric Trump"), an acronym and a name it abbreviates, two
    spellings of one key or of one place, and two places of one name; joined or not by the
    pipeline (J or -)."""
    from newsflow.enrich import identity

    items = load_items()
    text = {it["id"]: f"{it['title']} | {it['text']}" for it in items}
    with tempfile.TemporaryDirectory() as tmp:
        _, ids = build(items, Path(tmp))
        from newsflow.db.store import Store

        with Store(Path(tmp) / "newsflow.sqlite", read_only=True) as store:
            rows = store.query(
                "select article_id, entity, label, entity_key from article_entities"
                " where label in ('PERSON', 'ORG', 'GPE', 'LOC', 'NORP', 'FAC', 'EVENT')"
            )[1]
    first: dict[str, tuple[str, str, str]] = {}  # one occurrence per spelling
    for a, e, label, key in sorted(rows):
        if len(identity.entity_key(e).split()) <= 4:
            first.setdefault(e, (a, label, key))
    names = sorted(first)
    out = []
    for i, ea in enumerate(names):
        a, la, ka = first[ea]
        ta = identity.entity_key(ea).split()
        for eb in names[i + 1 :]:
            b, lb, kb = first[eb]
            if a == b:
                continue
            tb = identity.entity_key(eb).split()
            short, long_ = (ta, tb) if len(ta) <= len(tb) else (tb, ta)
            related = (
                ka == kb
                or (len(short) < len(long_) and identity.contains_run(long_, short))
                or identity.acronym_of(ea, eb)
                or identity.acronym_of(eb, ea)
                or (la == lb == "PERSON" and ta[-1] == tb[-1] and len(ta) > 1 and len(tb) > 1)
                or (identity.entity_key(ea) == identity.entity_key(eb))
            )
            if related:
                out.append((a, ea, b, eb, ids[(a, ea)] == ids[(b, eb)]))
    for a, ea, b, eb, joined in out[:n]:
        print(f"{a}\t{ea}\t{b}\t{eb}\t{'J' if joined else '-'}")
        print(f"    a: {_near(text[a], ea)}\n    b: {_near(text[b], eb)}")
    print(f"{len(out)} candidate pairs", file=__import__("sys").stderr)
    return 0


def _near(text: str, name: str) -> str:
    i = text.find(name)
    return text[max(0, i - 60) : i + len(name) + 60] if i >= 0 else text[:120]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="print every wrong pair")
    parser.add_argument("--write-items", action="store_true", help="rebuild the items fixture")
    parser.add_argument("--candidates", type=int, metavar="N", help="print N pairs to label")
    args = parser.parse_args()
    if args.write_items:
        return write_items()
    if args.candidates:
        return candidates(args.candidates)
    items, pairs = load_items(), load_pairs()
    with tempfile.TemporaryDirectory(prefix="newsflow-identity-") as tmp:
        loaded, maintained = build(items, Path(tmp))
    print(f"corpus: {len(items)} feed items; gold: {len(pairs)} pairs ({PAIRS.relative_to(ROOT)})")
    for name, ids in (("after the loads", loaded), ("after maintenance", maintained)):
        s = score(pairs, ids)
        print(
            f"{name}: {s['pairs']} pairs, {s['positives']} same; precision {s['precision']:.3f}"
            f"  recall {s['recall']:.3f}  F1 {s['f1']:.3f}  (targets P >= 0.95, R >= 0.85)"
            + (
                f"; {s['missing']} pairs name a row not tagged this run"
                " (scored as missed when same, apart when not)"
                if s["missing"]
                else ""
            )
        )
        if args.misses and name == "after maintenance":
            for how, a, na, b, nb in s["misses"]:
                print(f"  {how:<6} {a} {na!r} ~ {b} {nb!r}")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.identity")
