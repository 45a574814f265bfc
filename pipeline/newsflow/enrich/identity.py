"""Entity identity across articles: which per-article entities are one thing.

Tagging settles what each article names (``newsflow.enrich.entities``); this module decides
which of those names, over the whole corpus, are the same entity. It works on *keys*, a name
with case, diacritics, punctuation and possessives taken out ("Nicolás Maduro's" and
"nicolas maduro" are one key), and joins keys into entities:

  * a person's middle initials do not make another person: "Donald J. Trump" is "Donald Trump";
  * a short form joins the full name it stands for when the evidence is unambiguous: a single
    word that the model calls a person ("Trump", "Hegseth") joins the one multi-word person
    name that ends with it (or begins with it, where an article paired the two: "Xi" and "Xi
    Jinping"; "Charles" alone is not Charles Simpson), when that name holds at least
    ``DOMINANCE`` of the articles of all such names seen within ``WINDOW_DAYS`` of the short
    form, or ``DWARFS`` times those of the next one (so "Trump" is Donald Trump while the
    corpus speaks of him, whatever headline fragments the model calls people, and "Kim",
    shared by Kim Jong Un and Kim Kardashian, stays itself); a name that some article paired
    with a longer one (it merged "Maduro" into "Nicolas Maduro", "NSC" into "National
    Security Council") joins it on the same terms;
  * a place-like key (mostly GPE, LOC, FAC) never joins a person ("Washington" the city is not
    George Washington), and a generational suffix is another person ("Donald Trump Jr.");
  * one label per entity, by a vote of all its mentions in the corpus, so one article's model
    error does not split it.

Pure functions over counts: the database side (``newsflow.db.entities``) feeds them and writes
what they decide. An entity's id is derived from the key it was first created for, so it is
the same in every store built from the same articles, and stays valid when the entity is later
merged into another (the store keeps a redirect).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

RESOLVER_VERSION = 1
WINDOW_DAYS = 60  # how far apart in time a short form and its full name may be named
DOMINANCE = 0.9  # the share of the candidates' articles the chosen full name must hold,
DWARFS = 10  # ... or this many times the articles of the next one (and MIN_DWARFING at least)
MIN_DWARFING = 5
PERSON_SHARE = 0.25  # a key is person-like when this share of its mentions say PERSON
PLACE_LABELS = {"GPE", "LOC", "FAC"}
# A key of a place the gazetteer resolved (newsflow.enrich.places): 'geo:<geonameid>'. Its
# identity is the gazetteer's ("U.S." and "United States" are one key; Georgia the country and
# the state are two), so these rules never move it. ``entity_key`` never makes a ':'.
PLACE_KEY_PREFIX = "geo:"

_DELETED = re.compile(r"[.'’`´]")
_THE = re.compile(r"^the\s+")
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")
_POSSESSIVE = re.compile(r"(?:['’]s|s['’])(?=\s|$)")
GENERATIONAL = {"jr", "sr", "ii", "iii", "iv"}
_ACRONYM = re.compile(r"^[A-Z][A-Z&.]{1,7}$")
_MINOR = {"of", "the", "and", "for", "de", "la", "du", "des", "on", "in", "&", "to", "at"}


def entity_key(name: str) -> str:
    """The name an entity is known by across articles: casefolded, without diacritics,
    possessives and punctuation ("Nicolás Maduro's" -> "nicolas maduro", "U.S." -> "us",
    "al-Assad" -> "al assad", "AT&T" -> "at and t", "Disney+" -> "disney plus")."""
    s = unicodedata.normalize("NFKD", name)
    s = "".join(ch for ch in s if not unicodedata.combining(ch))
    s = _POSSESSIVE.sub("", s.strip())
    s = s.replace("&", " and ").replace("+", " plus ")  # "Disney+" is not Disney
    s = _DELETED.sub("", s)
    s = _PUNCT.sub(" ", s)
    return _SPACES.sub(" ", s).strip().casefold()


def entity_id(key: str) -> str:
    """A stable id for the entity first created for ``key``: 'e' and 16 hex digits."""
    return "e" + hashlib.blake2b(key.encode("utf-8"), digest_size=8).hexdigest()


def is_acronym(name: str) -> bool:
    """'NSC', 'U.N.', 'AT&T': capitals only, two to eight of them."""
    return bool(_ACRONYM.match(name.strip())) and sum(c.isalpha() for c in name) >= 2


def initials(name: str) -> str:
    """'National Security Council' -> 'NSC' (minor words skipped); '' for one word."""
    words = [w for w in re.split(r"[\s\-]+", name) if w]
    kept = [w for w in words if w.casefold() not in _MINOR]
    if len(kept) < 2:
        return ""
    return "".join(w[0] for w in kept).upper()


def acronym_of(acronym: str, name: str) -> bool:
    """Whether ``acronym`` ('NSC', 'N.S.C.') abbreviates ``name``."""
    letters = "".join(c for c in acronym if c.isalpha()).upper()
    return len(letters) >= 2 and initials(name) == letters


def _tokens(key: str) -> list[str]:
    return key.split()


def without_middle_initials(key: str) -> str:
    """'donald j trump' -> 'donald trump'; keys of two words or fewer are unchanged."""
    toks = _tokens(key)
    if len(toks) < 3:
        return key
    kept = [toks[0], *(t for t in toks[1:-1] if len(t) > 1), toks[-1]]
    return " ".join(kept)


def contains_run(long: list[str], short: list[str]) -> bool:
    """``short`` is a run of ``long``'s words and not ``long`` without its generational
    suffix ("trump" is in "donald trump"; "donald trump" is not "donald trump jr")."""
    n = len(short)
    if n >= len(long):
        return False
    if long[-1] in GENERATIONAL and long[:-1] == short:
        return False
    if long[-1] in GENERATIONAL:
        long = long[:-1]
    return any(long[i : i + n] == short for i in range(len(long) - n + 1))


@dataclass
class KeyStats:
    """What the corpus says about one key."""

    key: str
    names: Counter = field(default_factory=Counter)  # spellings -> articles
    labels: Counter = field(default_factory=Counter)  # label -> mentions
    articles: int = 0
    first_day: date | None = None
    last_day: date | None = None

    def add(
        self, name: str, label: str, articles: int, mentions: int, first: date, last: date
    ) -> None:
        self.names[name] += articles
        self.labels[label] += mentions
        self.articles += articles
        self.first_day = first if self.first_day is None else min(self.first_day, first)
        self.last_day = last if self.last_day is None else max(self.last_day, last)

    @property
    def total_mentions(self) -> int:
        return sum(self.labels.values())

    @property
    def person_like(self) -> bool:
        total = self.total_mentions
        return total > 0 and self.labels.get("PERSON", 0) >= PERSON_SHARE * total

    @property
    def person(self) -> bool:
        return self.label == "PERSON"

    @property
    def place_like(self) -> bool:
        total = self.total_mentions
        place = sum(self.labels.get(lab, 0) for lab in PLACE_LABELS)
        return total > 0 and place > 0.5 * total

    @property
    def label(self) -> str:
        """The vote of all mentions; a tie goes to PERSON, then alphabetical order."""
        if not self.labels:
            return "ORG"
        return max(self.labels, key=lambda lab: (self.labels[lab], lab == "PERSON", lab))

    @property
    def name(self) -> str:
        # The commonest spelling; on a tie the one with more capitals, then the shortest.
        return max(
            self.names.items(),
            key=lambda kv: (kv[1], sum(c.isupper() for c in kv[0]), -len(kv[0]), kv[0]),
        )[0]

    def summary(self) -> KeySummary:
        """What ``resolve`` reads of this key, without the per-spelling and per-label
        counts (a few hundred bytes instead of a few kilobytes: the whole corpus's keys are
        held at once)."""
        place = self.key.startswith(PLACE_KEY_PREFIX)
        return KeySummary(
            self.key, self.articles, self.first_day, self.last_day, self.name,
            self.person_like, self.place_like, tuple(self.names) if place else (),
        )  # fmt: skip


@dataclass(slots=True, frozen=True)
class KeySummary:
    """A key's counts as ``resolve`` reads them (``KeyStats.summary``). ``names``: every
    spelling of a place key (the place-name rule reads them), none for other keys."""

    key: str
    articles: int
    first_day: date | None
    last_day: date | None
    name: str
    person_like: bool
    place_like: bool
    names: tuple[str, ...] = ()


Key = KeyStats | KeySummary


@dataclass
class Resolution:
    """Which key each key's entity is (the representative key), and how it was joined."""

    root: dict[str, str]  # key -> representative key
    how: dict[str, str]  # key -> 'name' | 'initials' | 'short-form' | 'paired'

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for key, root in self.root.items():
            out[root].append(key)
        return out


class _Union:
    def __init__(self, keys: Iterable[str]):
        self.parent = {k: k for k in keys}

    def find(self, k: str) -> str:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def join(self, short: str, full: str) -> None:
        a, b = self.find(short), self.find(full)
        if a != b:
            self.parent[a] = b


def _overlaps(a: Key, b: Key, window: timedelta) -> bool:
    if a.first_day is None or a.last_day is None or b.first_day is None or b.last_day is None:
        return True
    return b.last_day >= a.first_day - window and b.first_day <= a.last_day + window


def _dominant(short: Key, candidates: list[Key], window: timedelta, dominance: float) -> Key | None:
    scored = [(c.articles, c) for c in candidates if _overlaps(short, c, window)]
    total = sum(s for s, _ in scored)
    if not scored or total <= 0:
        return None
    best_score, best = max(scored, key=lambda sc: (sc[0], sc[1].key))
    if best_score >= dominance * total:
        return best
    # Or it dwarfs every other one: a model that tags headline fragments ("Trump Says",
    # "Trump State") as people must not keep "Trump" from Donald Trump.
    second = max((sc for sc, c in scored if c is not best), default=0)
    return best if best_score >= MIN_DWARFING and best_score >= DWARFS * second else None


def resolve(
    stats: Mapping[str, Key],
    pairs: Iterable[tuple[str, str, int]] = (),
    *,
    window_days: int = WINDOW_DAYS,
    dominance: float = DOMINANCE,
    only: Iterable[str] | None = None,
) -> Resolution:
    """Join keys into entities.

    ``stats``: every key to consider, with its corpus counts (``KeyStats``, or their
    ``summary()``). ``pairs``: (alias key, key,
    articles) — an article merged the alias into the key (a short form or an acronym into
    the full name). ``only``: resolve just these keys (the others are candidates they may
    join, and are not joined to anything themselves); all keys when None."""
    window = timedelta(days=window_days)
    union = _Union(stats)
    how = {k: "name" for k in stats}
    movable = set(stats) if only is None else {k for k in only if k in stats}
    movable = {k for k in movable if not k.startswith(PLACE_KEY_PREFIX)}

    # 1. Middle initials: "donald j trump" is "donald trump" when that is a person too.
    for key in sorted(movable):
        s = stats[key]
        plain = without_middle_initials(key)
        if plain != key and plain in stats and s.person_like and stats[plain].person_like:
            union.join(key, plain)
            how[key] = "initials"

    # 2. Short forms and paired names, shortest first so that chains settle in one pass.
    paired: dict[str, Counter] = defaultdict(Counter)
    for alias, key, n in pairs:
        if alias != key and alias in stats and key in stats and ":" not in key:
            paired[alias][key] += n
    by_token: dict[str, list[str]] = defaultdict(list)
    for key, s in stats.items():
        toks = _tokens(key)
        if len(toks) >= 2 and s.person_like and not s.place_like and ":" not in key:
            for tok in set(toks):
                by_token[tok].append(key)
    for key in sorted(movable, key=lambda k: (len(_tokens(k)), k)):
        s = stats[key]
        if how[key] == "initials":
            continue
        toks = _tokens(key)
        candidates: dict[str, Key] = {}
        if len(toks) == 1 and len(toks[0]) >= 3 and s.person_like and not s.place_like:
            for other in by_token.get(toks[0], ()):
                otoks = _tokens(other)
                if otoks[-1] in GENERATIONAL:
                    otoks = otoks[:-1]
                # A surname ("Trump", "Hegseth"); a first word only where an article paired
                # the two ("Xi" in "Xi Jinping"; "Charles" alone is not Charles Simpson).
                if contains_run(_tokens(other), toks) and (
                    otoks[-1] == toks[0] or other in paired.get(key, ())
                ):
                    candidates[other] = stats[other]
        joined_by = "short-form"
        if not candidates and paired.get(key) and (s.person_like or is_acronym(s.name)):
            # Only an article's own pairing (an acronym, a name merged in one article).
            candidates = {k: stats[k] for k in paired[key]}
            if s.place_like and not all(c.place_like for c in candidates.values()):
                continue
            joined_by = "paired"
        if not candidates:
            continue
        best = _dominant(s, list(candidates.values()), window, dominance)
        if best is None:
            continue
        if joined_by == "paired" and s.articles > best.articles and len(toks) > 1:
            continue  # the longer form is rare: keep the usual name as the entity's own
        union.join(key, best.key)
        how[key] = joined_by

    # 3. A name that is not a person's, spelt as a place the gazetteer resolved elsewhere
    #    ("• Israel" the model called an ORG, "JERUSALEM" in a dateline), joins that place
    #    when it is the only place of that name.
    places_named: dict[str, set[str]] = defaultdict(set)
    for key, s in stats.items():
        if key.startswith(PLACE_KEY_PREFIX):
            for name in s.names:
                places_named[_THE.sub("", entity_key(name))].add(key)
    for key in sorted(movable):
        s = stats[key]
        if how[key] != "name" or s.person_like or union.find(key) != key:
            continue
        target = places_named.get(_THE.sub("", key))
        if target and len(target) == 1:
            union.join(key, next(iter(target)))
            how[key] = "place-name"

    # The representative of a group is its key named in the most articles.
    members: dict[str, list[str]] = defaultdict(list)
    for key in stats:
        members[union.find(key)].append(key)
    root: dict[str, str] = {}
    for keys in members.values():
        # (a full name before the short forms that joined it, even when they are commoner)
        rep = max(keys, key=lambda k: (how[k] == "name", stats[k].articles, len(k), k))
        for k in keys:
            root[k] = rep
    return Resolution(root, how)


def entity_of(
    keys: list[str], stats: dict[str, KeyStats], rep: str, name: str | None = None
) -> tuple[str, str, list]:
    """The name, label and aliases of the entity made of ``keys`` (``rep`` is its
    representative): its name is ``name`` (a place's gazetteer name) or the representative's
    commonest spelling, its label the vote of all the group's mentions, its aliases every
    other spelling (most articles first, at most 20)."""
    labels: Counter = Counter()
    names: Counter = Counter()
    for k in keys:
        labels.update(stats[k].labels)
        names.update(stats[k].names)
    name = name or stats[rep].name
    label = max(labels, key=lambda lab: (labels[lab], lab == "PERSON", lab)) if labels else "ORG"
    aliases = [n for n, _ in sorted(names.items(), key=lambda kv: (-kv[1], kv[0])) if n != name]
    return name, label, aliases[:20]
