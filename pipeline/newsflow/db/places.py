"""Places in the database: ``article_places``, ``article_countries`` and the ``countries``
reference table (migration 012). The decisions are ``newsflow.enrich.places``'s; this module
gives them each article's place entities and writes what they decide.

* ``locate`` — inside a load (or a retag), before the entity ids are assigned: the GPE, LOC
  and FAC rows of these articles are resolved to gazetteer places; a resolved row's
  ``entity_key`` becomes the place's ('geo:<geonameid>'), so every name of one place is one
  entity and two places of one name are two ("Georgia" the country and the state).
* ``link`` — after ``entity_db.assign``: the places get their ``entity_id``.
* ``locate_all`` — the migration: every stored article.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from newsflow.db.engine import arrow, drop_temp, has_temp
from newsflow.db.entities import since_day
from newsflow.enrich import identity
from newsflow.enrich import places as gz

__all__ = ["fill_countries", "link", "locate", "locate_all", "place_evidence"]

LOGGER = logging.getLogger(__name__)

# An article's place rows: a requeued page that is upgraded loses them with its other tags.
TABLES = ("article_places", "article_countries")
_COLUMNS = (
    "article_id, entity, place_key, geonameid, name, feature, country_code, admin1, lat, lon,"
    " mentions, confidence"
)
_LABELS = ", ".join(f"'{lab}'" for lab in gz.PLACE_LABELS)
BATCH = 20_000  # articles per pass of ``locate_all``
_TYPES = {
    "geonameid": pa.int64(),
    "lat": pa.float64(),
    "lon": pa.float64(),
    "mentions": pa.int32(),
    "confidence": pa.float64(),
    "score": pa.float64(),
    "population": pa.int64(),
}


def _typed(cols: dict[str, list]) -> dict:
    return {k: (v, _TYPES[k]) if k in _TYPES else v for k, v in cols.items()}


def locate(
    con: duckdb.DuckDBPyConnection,
    article_ids: Sequence[str] | None,
    since: datetime | None = None,
    *,
    replace: bool = True,
) -> int:
    """(Re)write the places and countries of these articles (all when None) from their
    entity rows, inside the caller's transaction. Returns the place rows written. ``since``:
    none of them was first seen before it (``entity_db.since_day``); ``replace=False``: they
    have no place rows yet (a load's, whose requeued pages lost theirs), so none are looked
    for to be deleted, and their rows wait in a temp table for ``link`` to insert them with
    their entity (an UPDATE of the stored places would read them all)."""
    if article_ids is not None and not article_ids:
        return 0
    if article_ids is None:
        scope = ""
    else:
        with arrow(con, "place_batch", article_id=list(article_ids)):
            con.execute(
                "create or replace temp table place_ids as select article_id from place_batch"
            )
        scope = "and article_id in (select article_id from place_ids)"
    try:
        # Their entity rows only (stored in day order: the older days' files are skipped).
        entity_scope = scope + (since_day(con, "place_ids", since) if scope else "")
        rows = con.execute(
            "select article_id, entity, label, mentions, in_title, salience from article_entities"
            f" where label in ({_LABELS}, 'NORP') {entity_scope} order by article_id, entity"
        ).fetchall()
        by_article: dict[str, list[tuple]] = defaultdict(list)
        for aid, *row in rows:
            by_article[aid].append(tuple(row))
        gazetteer = gz.gazetteer() if by_article else None
        places: dict[str, list] = defaultdict(list)
        countries: dict[str, list] = defaultdict(list)
        keys: dict[str, list] = defaultdict(list)
        for aid, ents in by_article.items():
            found = gz.locate(ents, gazetteer)
            resolved = {ap.entity: ap.key for ap in found}
            for entity, label, *_ in ents:
                if label == "NORP":
                    continue
                keys["article_id"].append(aid)
                keys["entity"].append(entity)
                keys["entity_key"].append(
                    resolved.get(entity) or identity.entity_key(entity) or entity.casefold()
                )
            for ap in found:
                p = ap.place
                for col, value in (
                    ("article_id", aid),
                    ("entity", ap.entity),
                    ("place_key", ap.key),
                    ("geonameid", p.geonameid),
                    ("place_name", p.name),
                    ("feature", p.feature),
                    ("country_code", p.country_code),
                    ("admin1", p.admin1),
                    ("lat", p.lat),
                    ("lon", p.lon),
                    ("mentions", ap.mentions),
                    ("confidence", ap.confidence),
                ):
                    places[col].append(value)
            nationals = gz.nationalities(ents, gazetteer)
            for cc, score in gz.countries_of_focus(found, nationals):
                countries["article_id"].append(aid)
                countries["country_code"].append(cc)
                countries["score"].append(score)
        target = "where " + scope[4:] if scope else ""
        if replace:
            con.execute(f"delete from article_places {target}")
            con.execute(f"delete from article_countries {target}")
        if keys:
            with arrow(con, "place_entity_keys", **keys):
                con.execute(
                    "update article_entities set entity_key = k.entity_key"
                    " from place_entity_keys k where article_entities.article_id = k.article_id"
                    " and article_entities.entity = k.entity"
                    " and article_entities.entity_key is distinct from k.entity_key"
                    + " "
                    + entity_scope.replace("and article_id", "and article_entities.article_id")
                )
        if places:
            with arrow(con, "new_places", **_typed(places)):
                if replace:
                    con.execute(f"insert into article_places ({_COLUMNS}) select * from new_places")
                else:
                    con.execute("create or replace temp table located_places as from new_places")
        if countries:
            with arrow(con, "new_countries", **_typed(countries)):
                con.execute(
                    "insert into article_countries (article_id, country_code, score)"
                    " select * from new_countries"
                )
        return len(places.get("article_id", ()))
    finally:
        if article_ids is not None:
            drop_temp(con, "place_ids")


def link(con: duckdb.DuckDBPyConnection, article_ids: Sequence[str] | None = None) -> None:
    """Set ``article_places.entity_id`` from the entity keys (after ``entity_db.assign``)."""
    if article_ids is not None and not article_ids:
        return
    if has_temp(con, "located_places"):  # a load's new rows (locate(replace=False))
        try:
            con.execute(
                f"insert into article_places ({_COLUMNS}, entity_id) select p.*, k.entity_id"
                " from located_places p left join entity_keys k on k.entity_key = p.place_key"
            )
        finally:
            drop_temp(con, "located_places")
        return
    scope = ""
    if article_ids is not None:
        with arrow(con, "link_batch", article_id=list(article_ids)):
            con.execute(
                "create or replace temp table link_ids as select article_id from link_batch"
            )
        scope = " and article_places.article_id in (select article_id from link_ids)"
    try:
        con.execute(
            "update article_places set entity_id = k.entity_id from entity_keys k"
            " where k.entity_key = article_places.place_key"
            f" and article_places.entity_id is distinct from k.entity_id{scope}"
        )
    finally:
        if article_ids is not None:
            drop_temp(con, "link_ids")


def locate_all(con: duckdb.DuckDBPyConnection) -> int:
    """Every stored article's places (the migration), in batches of ``BATCH`` articles."""
    fill_countries(con)
    ids = [
        r[0]
        for r in con.execute(
            "select distinct article_id from article_entities"
            f" where label in ({_LABELS}, 'NORP')"
            " order by 1"
        ).fetchall()
    ]
    con.execute("delete from article_places")
    con.execute("delete from article_countries")
    total = 0
    for i in range(0, len(ids), BATCH):
        total += locate(con, ids[i : i + BATCH])
    LOGGER.info("places: %d place rows for %d articles", total, len(ids))
    return total


def fill_countries(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)write the ``countries`` reference table from the gazetteer's countries."""
    countries = sorted(gz.countries(), key=lambda c: c.place.country_code or "")
    codes = [c.place.country_code for c in countries]
    cols: dict[str, list] = defaultdict(list)
    for c in countries:
        p = c.place
        cols["country_code"].append(p.country_code)
        cols["country_name"].append(p.name)
        cols["iso3"].append(c.iso3)
        cols["continent"].append(c.continent)
        cols["population"].append(p.population)
        cols["geonameid"].append(p.geonameid)
        cols["lat"].append(p.lat)
        cols["lon"].append(p.lon)
    con.execute("delete from countries")
    with arrow(con, "new_country_rows", **_typed(cols)):
        con.execute(
            "insert into countries (country_code, name, iso3, continent, population, geonameid,"
            " lat, lon) select * from new_country_rows"
        )
    return len(codes)


PAGE_OF_URL = r"/articles/([^.?/]+)"  # the sample newsroom's page id in an article's URL


def place_evidence(
    con: duckdb.DuckDBPyConnection,
) -> tuple[set[tuple[str, str]], dict[tuple[str, str], str | None]]:
    """From a store of the sample newsroom: the (page, entity) pairs its model tagged with a
    place label and the country each resolved to (``score_places``'s inputs)."""
    found = {
        (p, e)
        for p, e in con.execute(
            "select regexp_extract(a.url, $re, 1), e.entity from article_entities e"
            " join articles a using (article_id) where e.label in ('GPE', 'LOC', 'FAC')",
            {"re": PAGE_OF_URL},
        ).fetchall()
    }
    resolved = {
        (p, e): cc
        for p, e, cc in con.execute(
            "select regexp_extract(a.url, $re, 1), p.entity, p.country_code from article_places p"
            " join articles a using (article_id)",
            {"re": PAGE_OF_URL},
        ).fetchall()
    }
    return found, resolved
