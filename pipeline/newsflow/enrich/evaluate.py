"""Score a tagger against a hand-labelled gold set (YAML; see tests/fixtures/tagging_gold.yaml).

Entities are compared per article as sets of (name, label), names casefolded: precision,
recall and F1 pooled over all articles (micro), and the same ignoring the label. Topics: the
share of articles whose best topic is one of the gold topics (accuracy), and micro F1 of the
kept topic sets against the gold sets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class GoldArticle:
    id: str
    title: str
    text: str
    entities: set[tuple[str, str]]
    topics: list[str]
    held_out: bool = False  # never looked at while the tagging rules were tuned


def load_gold(path: Path) -> list[GoldArticle]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return [
        GoldArticle(
            a["id"],
            a.get("title") or "",
            a["text"],
            {(name, label) for name, label in a["entities"]},
            list(a["topics"]),
            bool(a.get("held_out")),
        )
        for a in data["articles"]
    ]


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class Scores:
    articles: int = 0
    entity_precision: float = 0.0
    entity_recall: float = 0.0
    entity_f1: float = 0.0
    name_f1: float = 0.0  # entity names right, label ignored
    topic_accuracy: float = 0.0  # best topic is a gold topic
    topic_f1: float = 0.0
    by_label: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # (article, kind, item)

    def as_dict(self) -> dict:
        return {
            "articles": self.articles,
            "entity_precision": round(self.entity_precision, 3),
            "entity_recall": round(self.entity_recall, 3),
            "entity_f1": round(self.entity_f1, 3),
            "name_f1": round(self.name_f1, 3),
            "topic_accuracy": round(self.topic_accuracy, 3),
            "topic_f1": round(self.topic_f1, 3),
        }


def evaluate(tagger, gold: list[GoldArticle]) -> Scores:
    """Tag the gold articles with ``tagger`` (a ``newsflow.enrich.tag.Tagger``) and score it."""
    articles = [
        {
            "article_id": g.id,
            "title": g.title,
            "text": g.text,
            "language": "en",
            "feed_categories": [],
        }
        for g in gold
    ]
    rows = tagger.tag(articles)
    found: dict[str, set[tuple[str, str]]] = {g.id: set() for g in gold}
    for r in rows.entities:
        found[r["article_id"]].add((r["entity"].casefold(), r["label"]))
    topics: dict[str, list[str]] = {g.id: [] for g in gold}
    for r in sorted(rows.topics, key=lambda r: -r["score"]):
        topics[r["article_id"]].append(r["topic_code"])

    s = Scores(articles=len(gold))
    tp = fp = fn = 0
    ntp = nfp = nfn = 0
    per_label: Counter = Counter()
    correct_top = 0
    ttp = tfp = tfn = 0
    for g in gold:
        want = {(name.casefold(), label) for name, label in g.entities}
        got = found[g.id]
        tp += len(want & got)
        fp += len(got - want)
        fn += len(want - got)
        for _name, label in want & got:
            per_label[(label, "tp")] += 1
        for name, label in got - want:
            per_label[(label, "fp")] += 1
            s.misses.append((g.id, "extra", f"{name} {label}"))
        for name, label in want - got:
            per_label[(label, "fn")] += 1
            s.misses.append((g.id, "missed", f"{name} {label}"))
        want_names, got_names = {n for n, _ in want}, {n for n, _ in got}
        ntp += len(want_names & got_names)
        nfp += len(got_names - want_names)
        nfn += len(want_names - got_names)

        predicted = topics[g.id]
        if predicted and predicted[0] in g.topics:
            correct_top += 1
        ttp += len(set(predicted) & set(g.topics))
        tfp += len(set(predicted) - set(g.topics))
        tfn += len(set(g.topics) - set(predicted))
        if not predicted or predicted[0] not in g.topics:
            s.misses.append((g.id, "topic", f"got {predicted}, want {g.topics}"))
    s.entity_precision, s.entity_recall, s.entity_f1 = _prf(tp, fp, fn)
    s.name_f1 = _prf(ntp, nfp, nfn)[2]
    s.topic_accuracy = correct_top / len(gold) if gold else 0.0
    s.topic_f1 = _prf(ttp, tfp, tfn)[2]
    labels = {label for label, _ in per_label}
    s.by_label = {
        label: _prf(per_label[(label, "tp")], per_label[(label, "fp")], per_label[(label, "fn")])
        for label in sorted(labels)
    }
    return s


# -- places ------------------------------------------------------------------------------------


@dataclass
class PlaceScores:
    """The gazetteer against tests/fixtures/places_gold.tsv (see ``score_places``)."""

    gold: int = 0  # gold rows that are places (country or '-')
    found: int = 0  # of them, entities the run's model found
    with_country: int = 0  # found places in one country
    country_right: int = 0  # ... resolved to that country
    no_country: int = 0  # found places in no one country (regions, continents)
    no_country_right: int = 0  # ... resolved to no country (or not resolved)
    not_places: int = 0  # found entities that are no place ('X')
    spurious: int = 0  # ... that the gazetteer gave a country
    misses: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    not_found: list[tuple[str, str, str]] = field(default_factory=list)  # gold places untagged

    @property
    def country_accuracy(self) -> float:
        return self.country_right / self.with_country if self.with_country else 0.0

    @property
    def accuracy(self) -> float:
        n = self.with_country + self.no_country
        return (self.country_right + self.no_country_right) / n if n else 0.0

    def as_dict(self) -> dict:
        return {
            "gold_places": self.gold,
            "found_by_model": self.found,
            "country_accuracy": round(self.country_accuracy, 3),
            "accuracy_incl_no_country": round(self.accuracy, 3),
            "not_places_given_a_country": f"{self.spurious}/{self.not_places}",
        }


def load_place_gold(path: Path) -> list[tuple[str, str, str, str]]:
    """(page, entity, label, country) rows; country is an ISO code, '-' or 'X'."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("page\t"):
            continue
        page, entity, label, country = line.split("\t")
        rows.append((page, entity, label, country))
    return rows


def score_places(
    gold: list[tuple[str, str, str, str]],
    found: set[tuple[str, str]],
    resolved: dict[tuple[str, str], str | None],
) -> PlaceScores:
    """``found``: the (page, entity) pairs the run's model tagged; ``resolved``: those the
    gazetteer resolved, to their country (None: a place in no country)."""
    s = PlaceScores()
    for page, entity, _, country in gold:
        key = (page, entity)
        if country != "X":
            s.gold += 1
        if key not in found:
            if country != "X":
                s.not_found.append((page, entity, country))
            continue
        got = resolved.get(key)
        if country == "X":
            s.not_places += 1
            s.spurious += got is not None
            continue
        s.found += 1
        if country == "-":
            s.no_country += 1
            if got is None:
                s.no_country_right += 1
            else:
                s.misses.append((page, entity, country, got))
        else:
            s.with_country += 1
            if got == country:
                s.country_right += 1
            else:
                s.misses.append((page, entity, country, got))
    return s
