"""Topics: the IPTC Media Topics top level, and newsflow's default classifier for it.

A classifier is anything with ``name``, ``version``, ``languages`` and ``classify(doc)``
returning ``TopicScore``s (see ``TopicClassifier``); a better model can replace the default one
without touching the rest of the pipeline.

The default, ``LexiconClassifier`` (tagger name ``iptc-lexicon``), reads its weighted lexicon
from ``newsflow/data/iptc_topics.yaml``. For each subject it adds up the evidence in an article:
    term hits      weight × (1 + ln count) per distinct term, title hits counting double
    entity cues    a word of the subject's cue list inside an entity the tagger found
    feed category  a publisher category that clearly means the subject
and turns it into a score in [0, 1] with ``1 - exp(-evidence / scale)``, where the scale grows
slowly with the article's length so that long articles do not score everything. Subjects with a
score of at least ``threshold`` and at least ``relative`` × the best score are kept, at most
three. Every score carries its evidence, so ``newsflow tags ARTICLE`` can say why.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

DATA = Path(__file__).resolve().parent.parent / "data" / "iptc_topics.yaml"
_WORD = re.compile(r"[a-z0-9][a-z0-9&'’.-]*[a-z0-9]|[a-z0-9]")


@dataclass(frozen=True)
class Subject:
    code: str
    label: str


@dataclass
class TopicScore:
    code: str
    topic: str
    score: float
    evidence: list[tuple[str, float]] = field(default_factory=list)  # (cue, contribution)


@dataclass
class TopicInput:
    """What a classifier sees of one article."""

    title: str
    text: str
    language: str | None
    entities: list  # newsflow.enrich.entities.Entity
    categories: list[str]


class TopicClassifier(Protocol):
    name: str
    version: str
    languages: frozenset[str] | None  # None: any language

    def classify(self, doc: TopicInput) -> list[TopicScore]: ...


def normalise_category(category: str) -> str:
    """ "News / Politics " -> "politics": casefolded, last path segment, spaces collapsed."""
    cat = " ".join(category.replace("\u00a0", " ").split()).casefold()
    for sep in ("/", ">", "|", "»", ":"):
        if sep in cat:
            cat = cat.rsplit(sep, 1)[-1].strip()
    return cat


@dataclass
class _Lexicon:
    version: int
    subjects: list[Subject]
    words: dict[str, list[tuple[int, float]]]  # word -> [(subject index, weight)]
    stems: dict[str, list[tuple[int, float]]]  # prefix -> ...
    stem_lengths: list[int]
    phrases: dict[tuple[str, ...], list[tuple[int, float]]]
    entity_cues: list[tuple[int, re.Pattern]]
    categories: dict[str, int]


@functools.lru_cache(maxsize=2)
def load_lexicon(path: Path = DATA) -> _Lexicon:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    subjects: list[Subject] = []
    words: dict[str, list[tuple[int, float]]] = {}
    stems: dict[str, list[tuple[int, float]]] = {}
    phrases: dict[tuple[str, ...], list[tuple[int, float]]] = {}
    cues: list[tuple[int, re.Pattern]] = []
    cats: dict[str, int] = {}
    for i, entry in enumerate(data["topics"]):
        subjects.append(Subject(entry["code"], entry["label"]))
        for term, weight in (entry.get("terms") or {}).items():
            term = str(term).lower().strip()
            weight = float(weight)
            if term.endswith("*"):
                stems.setdefault(term[:-1], []).append((i, weight))
            elif " " in term:
                phrases.setdefault(tuple(term.split()), []).append((i, weight))
            else:
                words.setdefault(term, []).append((i, weight))
        cue_words = [re.escape(str(c).lower()) for c in entry.get("entities") or []]
        if cue_words:
            cues.append((i, re.compile(r"\b(?:" + "|".join(cue_words) + r")\b")))
        for cat in entry.get("categories") or []:
            cats[normalise_category(str(cat))] = i
    return _Lexicon(
        int(data["version"]),
        subjects,
        words,
        stems,
        sorted({len(s) for s in stems}),
        phrases,
        cues,
        cats,
    )


def taxonomy() -> list[Subject]:
    return list(load_lexicon().subjects)


def category_topic(category: str) -> Subject | None:
    """The subject a publisher category clearly means, or None."""
    lex = load_lexicon()
    index = lex.categories.get(normalise_category(category))
    return lex.subjects[index] if index is not None else None


class LexiconClassifier:
    """The default topic classifier: a weighted lexicon per IPTC subject (see module doc)."""

    name = "iptc-lexicon"
    languages: frozenset[str] | None = frozenset({"en"})

    def __init__(
        self,
        threshold: float = 0.5,
        relative: float = 0.4,
        max_topics: int = 3,
        max_chars: int = 60_000,
    ):
        self.lexicon = load_lexicon()
        self.version = str(self.lexicon.version)
        self.threshold = threshold
        self.relative = relative
        self.max_topics = max_topics
        self.max_chars = max_chars

    def _hits(self, tokens: list[str]) -> Counter:
        lex = self.lexicon
        hits: Counter = Counter()
        counts = Counter(tokens)
        for word, n in counts.items():
            if word in lex.words:
                hits[word] += n
            for size in lex.stem_lengths:
                if len(word) >= size and word[:size] in lex.stems:
                    hits[word[:size] + "*"] += n
        if lex.phrases:
            for size in (2, 3):
                for gram in zip(*(tokens[k:] for k in range(size))):
                    if gram in lex.phrases:
                        hits[" ".join(gram)] += 1
        return hits

    def _entries(self, term: str) -> list[tuple[int, float]]:
        lex = self.lexicon
        if term.endswith("*"):
            return lex.stems[term[:-1]]
        if " " in term:
            return lex.phrases[tuple(term.split())]
        return lex.words[term]

    def scores(self, doc: TopicInput) -> list[TopicScore]:
        """Every subject's score and evidence, best first (the classifier's full view)."""
        lex = self.lexicon
        n = len(lex.subjects)
        evidence: list[dict[str, float]] = [{} for _ in range(n)]
        text = doc.text[: self.max_chars].lower()
        title_tokens = _WORD.findall((doc.title or "").lower())
        body_tokens = _WORD.findall(text)
        body_hits = self._hits(body_tokens)
        title_hits = self._hits(title_tokens)
        for term in set(body_hits) | set(title_hits):
            count = body_hits.get(term, 0) + 2 * title_hits.get(term, 0)
            for i, weight in self._entries(term):
                if weight > 0:
                    evidence[i][term] = weight * (1.0 + math.log(count))
        for ent in doc.entities:
            name = ent.entity.lower()
            for i, pattern in lex.entity_cues:
                if pattern.search(name):
                    evidence[i][f"entity:{ent.entity}"] = 2.0
        for cat in doc.categories:
            index = lex.categories.get(normalise_category(cat))
            if index is not None:
                evidence[index][f"category:{cat}"] = 6.0
        words = len(body_tokens) + len(title_tokens)
        scale = 6.0 * (1.0 + math.log10(1.0 + words / 150.0))
        out = []
        for i, subject in enumerate(lex.subjects):
            total = sum(evidence[i].values())
            if total <= 0:
                continue
            top = sorted(evidence[i].items(), key=lambda kv: (-kv[1], kv[0]))
            out.append(
                TopicScore(
                    subject.code,
                    subject.label,
                    round(1.0 - math.exp(-total / scale), 4),
                    [(k, round(v, 2)) for k, v in top],
                )
            )
        return sorted(out, key=lambda s: (-s.score, s.code))

    @property
    def rule(self) -> str:
        """How ``classify`` chooses among the scores, in words."""
        return (
            f"keeps scores >= {self.threshold} and >= {self.relative} x the best,"
            f" at most {self.max_topics}"
        )

    def classify(self, doc: TopicInput) -> list[TopicScore]:
        ranked = self.scores(doc)
        if not ranked:
            return []
        best = ranked[0].score
        kept = [s for s in ranked if s.score >= self.threshold and s.score >= self.relative * best]
        return kept[: self.max_topics]


@dataclass(frozen=True)
class Explanation:
    """Why a classifier gave an article its topics: ``scores`` are every score it considered,
    best first, each with whether it was kept; ``rule`` says how it chose ('' if it does not)."""

    classifier: str  # name/version
    rule: str
    scores: list[tuple[bool, TopicScore]]


def explain(classifier: TopicClassifier, doc: TopicInput) -> Explanation:
    """The classifier's reasons for ``doc`` (what ``newsflow tags --explain`` prints). A plugin
    classifier may offer ``scores(doc)``, its full view, and ``rule``; without them the
    explanation is the topics it kept."""
    kept = classifier.classify(doc)
    codes = {s.code for s in kept}
    scores_of = getattr(classifier, "scores", None)
    considered = scores_of(doc) if callable(scores_of) else kept
    return Explanation(
        f"{classifier.name}/{classifier.version}",
        str(getattr(classifier, "rule", "") or ""),
        [(s.code in codes, s) for s in considered],
    )
