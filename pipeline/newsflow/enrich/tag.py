"""The tag stage: entities and topics for extracted articles, between extraction and load.

``Tagger`` tags a list of articles in one process: spaCy NER per language (``nlp.pipe`` over
the batch, only the NER component), entity normalisation (``newsflow.enrich.entities``), then the
topic classifier (``enrich.topics``). ``TagPool`` spreads batches over worker processes that
each load the models once. Every article gets one status row per kind (``entities``,
``topics``): ok, skipped (with the reason, e.g. no model for its language) or failed (with the
error); a failure is data, never an aborted run.

``tag_batch`` is the stage function the ingest cycle and the DAG call: it reads one staged
``articles/<batch>`` file and writes ``entities/``, ``topics/``, ``categories/`` and
``tagging/`` files beside it. Re-tagging stored articles is ``newsflow.run.retag``.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsflow.config import ConfigError, Settings
from newsflow.enrich import entities as ent
from newsflow.enrich import identity, places
from newsflow.enrich.topics import LexiconClassifier, TopicClassifier, TopicInput, category_topic
from newsflow.fetching.parse import language_code
from newsflow.procs import worker_context
from newsflow.results import Counters
from newsflow.rows import ARTICLE_SCHEMA, ENTITY_TAGGER_NAMES, TAG_SCHEMAS
from newsflow.staging import RunDir

LOGGER = logging.getLogger(__name__)

ENTITY_TAGGER, PLACE_TAGGER = ENTITY_TAGGER_NAMES  # spaCy; the gazetteer's places
KINDS = ("entities", "topics")

TAG_INPUT_COLUMNS = ["article_id", "title", "text", "language", "feed_categories"]


@dataclass
class TagRows:
    """Rows for the four tag tables, for a batch of articles."""

    entities: list[dict] = field(default_factory=list)
    topics: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)
    tagging: list[dict] = field(default_factory=list)

    def extend(self, other: TagRows) -> None:
        for kind in TAG_SCHEMAS:
            getattr(self, kind).extend(getattr(other, kind))

    def as_dict(self) -> dict[str, list[dict]]:
        return {kind: getattr(self, kind) for kind in TAG_SCHEMAS}

    def counts(self) -> dict[str, int]:
        out = {kind: len(getattr(self, kind)) for kind in TAG_SCHEMAS}
        for status in ("ok", "skipped", "failed"):
            out[status] = sum(1 for r in self.tagging if r["status"] == status)
        return out


@dataclass
class TagCounts(Counters):
    articles: int = 0
    entities: int = 0
    topics: int = 0
    skipped: int = 0  # status rows (article × kind) skipped
    failed: int = 0
    seconds: float = field(default=0.0, metadata={"hidden": True})

    def add(self, rows: TagRows, articles: int) -> None:
        c = rows.counts()
        self.articles += articles
        self.entities += c["entities"]
        self.topics += c["topics"]
        self.skipped += c["skipped"]
        self.failed += c["failed"]


class Tagger:
    """Entities and topics for articles, in this process. Models load on first use."""

    def __init__(
        self,
        models: dict[str, str],
        classifier: TopicClassifier | None = None,
        max_chars: int = 100_000,
        batch_size: int = 32,
    ):
        self.models = dict(models)
        self.classifier = classifier or LexiconClassifier()
        self.max_chars = max_chars
        self.batch_size = batch_size
        # Seconds spent in the NER models' own pipelines (nlp.pipe), of all tag() calls: what
        # tagging costs beyond it is newsflow's (benchmarks/tagging.py prints the share).
        self.model_seconds = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Tagger:
        return cls(
            settings.ner_model_map,
            load_classifier(settings.topic_classifier, settings.topic_threshold),
            max_chars=settings.ner_max_chars,
        )

    def check(self) -> None:
        """Fail fast, with the model's name, when a configured model is not installed. (Without
        loading it: a pool's workers load their own, and this process may never need one.)"""
        for name in self.models.values():
            if not ent.model_available(name):
                ent.load_model(name)  # raises ModelNotInstalled, naming the model

    def entity_tagger(self, language: str) -> str:
        model = self.models[language]
        return f"{ENTITY_TAGGER}/{ent.model_version(model)}.n{ent.NORMALISER_VERSION}"

    @property
    def topic_tagger(self) -> str:
        return f"{self.classifier.name}/{self.classifier.version}"

    def tag(self, articles: list[dict], kinds: Iterable[str] = KINDS) -> TagRows:
        """Tag ``articles`` (dicts with TAG_INPUT_COLUMNS); rows for the requested kinds."""
        kinds = set(kinds)
        now = datetime.now(UTC)
        rows = TagRows()
        found = self._entities(articles)
        for art in articles:
            aid = art["article_id"]
            ents, ent_status, ent_reason, ent_tagger = found[aid]
            if "entities" in kinds:
                rows.tagging.append(
                    _status(aid, "entities", ent_tagger, ent_status, ent_reason, len(ents), now)
                )
                rows.entities.extend(
                    {
                        "article_id": aid,
                        "entity": e.entity,
                        "label": e.label,
                        "mentions": e.mentions,
                        "salience": e.salience,
                        "in_title": e.in_title,
                        "first_offset": e.first_offset,
                        "tagger": ent_tagger,
                        "entity_key": identity.entity_key(e.entity),
                        "aliases": e.aliases,
                    }
                    for e in ents
                )
            if "topics" in kinds:
                self._topics(art, ents, rows, now)
        return rows

    def _entities(self, articles: list[dict]) -> dict[str, tuple]:
        """article_id -> (entities, status, reason, tagger id)."""
        out: dict[str, tuple] = {}
        by_language: dict[str, list[tuple[dict, str, int, int]]] = {}
        for art in articles:
            aid = art["article_id"]
            text = (art.get("text") or "")[: self.max_chars]
            title = art.get("title") or ""
            lang = language_code(art.get("language"))  # stored before codes were normalised
            if not text.strip() and not title.strip():
                out[aid] = ([], "skipped", "no text", None)
            elif not lang:
                out[aid] = ([], "skipped", "language unknown", None)
            elif lang not in self.models:
                out[aid] = self._places_only(art, lang, text, title)
            else:
                doc, title_len, offset = ent.document(title, text)
                by_language.setdefault(lang, []).append((art, doc, title_len, offset))
        for lang, group in by_language.items():
            tagger_id = self.entity_tagger(lang)
            nlp = ent.load_model(self.models[lang])
            texts = [g[1] for g in group]
            started = time.perf_counter()
            try:
                docs = list(nlp.pipe(texts, batch_size=self.batch_size))
            except Exception:
                docs = [None] * len(group)
            self.model_seconds += time.perf_counter() - started
            for (art, text, title_len, offset), doc in zip(group, docs, strict=True):
                aid = art["article_id"]
                try:
                    if doc is None:  # the batch failed: find the article that makes it fail
                        doc = nlp(text)
                    mentions = ent.mentions_from_doc(
                        doc, title_len=title_len, place_label=places.place_label
                    )
                    found = ent.build_entities(
                        mentions, title_len, offset, len(text), place_label=places.place_label
                    )
                    out[aid] = (found, "ok", None, tagger_id)
                except Exception as exc:  # a per-article failure is data
                    out[aid] = ([], "failed", f"{type(exc).__name__}: {exc}"[:500], tagger_id)
        return out

    def _places_only(self, art: dict, lang: str, text: str, title: str) -> tuple:
        """An article in a language with no model: the gazetteer's places only."""
        why = f"no entity model for language {lang!r} (see NEWSFLOW_NER_MODELS)"
        try:
            rows = places.scanned_entities(title, text, lang)
        except Exception as exc:  # a per-article failure is data
            return [], "failed", f"{type(exc).__name__}: {exc}"[:500], self.place_tagger
        found = [
            ent.Entity(
                entity=r["entity"],
                label=r["label"],
                mentions=r["mentions"],
                salience=r["salience"],
                in_title=r["in_title"],
                first_offset=r["first_offset"],
                forms=[r["entity"]],
                aliases=[],
            )
            for r in rows
        ]
        return found, "ok", f"places only: {why}", self.place_tagger

    @property
    def place_tagger(self) -> str:
        return f"{PLACE_TAGGER}/{places.gazetteer_version()}"

    def _topics(self, art: dict, ents: list, rows: TagRows, now: datetime) -> None:
        aid = art["article_id"]
        cats = [c for c in (art.get("feed_categories") or []) if c and c.strip()]
        seen = set()
        for cat in cats:
            cat = " ".join(cat.split())[:200]
            if cat.casefold() in seen:
                continue
            seen.add(cat.casefold())
            subject = category_topic(cat)
            rows.categories.append(
                {
                    "article_id": aid,
                    "category": cat,
                    "topic_code": subject.code if subject else None,
                    "topic": subject.label if subject else None,
                }
            )
        tagger_id = self.topic_tagger
        langs = self.classifier.languages
        lang = art.get("language")
        if not (art.get("text") or art.get("title")):
            rows.tagging.append(_status(aid, "topics", tagger_id, "skipped", "no text", 0, now))
            return
        if langs is not None and lang not in langs:
            reason = f"topic classifier {self.classifier.name} reads {', '.join(sorted(langs))}"
            reason += f", not {lang!r}" if lang else ", and the language is unknown"
            rows.tagging.append(_status(aid, "topics", tagger_id, "skipped", reason, 0, now))
            return
        try:
            doc = TopicInput(art.get("title") or "", art.get("text") or "", lang, ents, cats)
            scores = self.classifier.classify(doc)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:500]
            rows.tagging.append(_status(aid, "topics", tagger_id, "failed", reason, 0, now))
            return
        rows.tagging.append(_status(aid, "topics", tagger_id, "ok", None, len(scores), now))
        rows.topics.extend(
            {
                "article_id": aid,
                "topic_code": s.code,
                "topic": s.topic,
                "score": s.score,
                "evidence": [cue for cue, _ in s.evidence[:8]],
                "tagger": tagger_id,
            }
            for s in scores
        )


def _status(aid, kind, tagger, status, reason, items, now) -> dict:
    return {
        "article_id": aid,
        "kind": kind,
        "tagger": tagger,
        "status": status,
        "reason": reason,
        "items": items,
        "tagged_at": now,
    }


# -- worker processes ------------------------------------------------------------------------

_WORKER_TAGGER: Tagger | None = None


def _init_worker(settings: Settings) -> None:
    global _WORKER_TAGGER
    _WORKER_TAGGER = Tagger.from_settings(settings)
    _WORKER_TAGGER.check()


def _tag_in_worker(articles: list[dict], kinds: tuple[str, ...]) -> TagRows:
    assert _WORKER_TAGGER is not None
    return _WORKER_TAGGER.tag(articles, kinds)


class TagPool:
    """Tags batches on ``workers`` processes (one per CPU by default; 1 means in this process).

    A worker that dies (killed, out of memory) fails only the articles it held: they get a
    ``failed`` status row, and a fresh pool takes the next batch.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.workers = settings.tag_workers or os.cpu_count() or 1
        self.local = Tagger.from_settings(settings)
        self.local.check()  # a missing model is a configuration error: fail before any work
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers,
                mp_context=worker_context(),
                initializer=_init_worker,
                initargs=(self.settings,),
            )
        return self._executor

    def tag(self, articles: list[dict], kinds: Iterable[str] = KINDS) -> TagRows:
        kinds = tuple(kinds)
        if not articles:
            return TagRows()
        # A handful of articles is tagged here rather than in workers, unless the workers are
        # up already: then this process need not load a model of its own next to theirs.
        if self.workers <= 1 or (len(articles) < 4 and self._executor is None):
            return self.local.tag(articles, kinds)
        # Long articles cost more: deal them round-robin by length so the chunks are even.
        ordered = sorted(articles, key=lambda a: -len(a.get("text") or ""))
        n_chunks = min(len(ordered), self.workers * max(1, math.ceil(len(ordered) / 64)))
        chunks = [ordered[i::n_chunks] for i in range(n_chunks)]
        pool = self._pool()
        futures = [pool.submit(_tag_in_worker, chunk, kinds) for chunk in chunks]
        rows = TagRows()
        broken = False
        for chunk, fut in zip(chunks, futures, strict=True):
            try:
                rows.extend(fut.result())
            except concurrent.futures.process.BrokenProcessPool as exc:
                broken = True
                rows.extend(_failed_rows(chunk, kinds, f"tagging worker died: {exc}"))
        if broken:
            self.close()
        return rows

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> TagPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _failed_rows(articles: list[dict], kinds: tuple[str, ...], reason: str) -> TagRows:
    now = datetime.now(UTC)
    rows = TagRows()
    for art in articles:
        for kind in kinds:
            rows.tagging.append(_status(art["article_id"], kind, None, "failed", reason, 0, now))
    return rows


# -- the stage -------------------------------------------------------------------------------


def read_articles(run: RunDir, batch: str) -> list[dict]:
    path = run.path / "articles" / f"{batch}.parquet"
    return path.read_table(schema=ARTICLE_SCHEMA, columns=TAG_INPUT_COLUMNS).to_pylist()


def write_rows(run: RunDir, batch: str, rows: TagRows) -> None:
    # ``tagging/`` is written last: its presence marks the batch as tagged.
    for kind in ("entities", "topics", "categories", "tagging"):
        run.write(kind, batch, getattr(rows, kind), TAG_SCHEMAS[kind])


def tag_batch(run: RunDir, batch: str, pool: TagPool) -> TagCounts:
    """Stage: tag one staged article batch; write its tag files (idempotent per batch)."""
    started = time.monotonic()
    articles = read_articles(run, batch)
    rows = pool.tag(articles)
    write_rows(run, batch, rows)
    counts = TagCounts()
    counts.add(rows, len(articles))
    counts.seconds = time.monotonic() - started
    LOGGER.info(
        "tagged %d articles in %.1fs: %d entities, %d topics, %d skipped, %d failed",
        counts.articles,
        counts.seconds,
        counts.entities,
        counts.topics,
        counts.skipped,
        counts.failed,
    )
    return counts


def untagged_batches(run: RunDir) -> list[str]:
    tagged = {p.stem for p in run.files("tagging")}
    return [p.stem for p in run.files("articles") if p.stem not in tagged]


def kinds_for(tagger: str | None, topic_tagger: str = LexiconClassifier.name) -> tuple[str, ...]:
    """The kinds of rows a tagger name writes: 'spacy' entities, the topic classifier topics."""
    if tagger is None:
        return KINDS
    names = {ENTITY_TAGGER: ("entities",), topic_tagger: ("topics",)}
    if tagger not in names:
        raise ValueError(f"unknown tagger {tagger!r}; choose one of: {', '.join(sorted(names))}")
    return names[tagger]


def load_classifier(spec: str, threshold: float) -> TopicClassifier:
    """The topic classifier a setting names: '' for the default lexicon, else 'module:Class'
    (a class with ``name``, ``version``, ``languages`` and ``classify``, built with no
    arguments)."""
    if not spec:
        return LexiconClassifier(threshold=threshold)
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        classifier = cls()
    except Exception as exc:
        raise ConfigError(
            f"setting topic_classifier (NEWSFLOW_TOPIC_CLASSIFIER={spec!r}) cannot be loaded: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    needed = ("name", "version", "languages", "classify")
    missing = [a for a in needed if not hasattr(classifier, a)]
    if missing:
        raise ConfigError(
            f"setting topic_classifier: {spec} lacks {', '.join(missing)} (see TopicClassifier)"
        )
    return classifier
