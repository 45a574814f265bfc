"""Places with identity: the gazetteer's resolution rules (newsflow.enrich.places) on entity
rows, the sample article with the real spaCy model, and the store (newsflow.db.places) over
real ingests: article_places, article_countries, one entity per place whatever the article
called it, two entities for two places of one name, the country view, retag and migration."""

from __future__ import annotations

import gzip
import os
from dataclasses import replace

import pytest
from newsflow.config import Settings
from newsflow.db import entities as entity_db
from newsflow.db import places as places_db
from newsflow.db.places import place_evidence
from newsflow.db.store import Store
from newsflow.demo.newsroom import Newsroom
from newsflow.enrich import entities as ent
from newsflow.enrich import places
from newsflow.enrich.evaluate import load_place_gold, score_places
from newsflow.run.cycle import run_cycle
from newsflow.run.retag import retag

from tests.helpers import FIXTURES
from tests.test_identity import SAMPLE, SAMPLE_PAGE, SUMMIT_PAGE, ingest, serve


def located(*rows) -> dict[str, tuple]:
    """entity -> (place name, feature, country) for rows (entity, label[, mentions])."""
    full = [(r[0], r[1], r[2] if len(r) > 2 else 1, False, 0.3) for r in rows]
    return {
        ap.entity: (ap.place.name, ap.place.feature, ap.place.country_code)
        for ap in places.locate(full)
    }


@pytest.mark.parametrize(
    "rows,entity,expected",
    [
        ([("Paris", "GPE")], "Paris", ("Paris", "city", "FR")),
        ([("Paris", "GPE"), ("Texas", "GPE")], "Paris", ("Paris", "city", "US")),
        ([("Georgia", "GPE")], "Georgia", ("Georgia", "country", "GE")),
        ([("Georgia", "GPE"), ("Atlanta", "GPE")], "Georgia", ("Georgia", "admin1", "US")),
        ([("Georgia", "GPE"), ("Tbilisi", "GPE"), ("Russia", "GPE")], "Georgia",
         ("Georgia", "country", "GE")),
        ([("U.S.", "GPE")], "U.S.", ("United States", "country", "US")),
        ([("Britain", "GPE")], "Britain", ("United Kingdom", "country", "GB")),
        ([("the Caribbean", "LOC")], "the Caribbean", ("Caribbean", "region", None)),
        ([("Europe", "LOC")], "Europe", ("Europe", "continent", None)),
        ([("Gaza", "GPE"), ("Israel", "GPE")], "Gaza", ("Gaza", "city", "PS")),
        ([("Gaza Strip", "LOC")], "Gaza Strip", ("Gaza Strip", "region", "PS")),
        ([("Washington", "GPE")], "Washington", ("Washington", "city", "US")),
        ([("Ontario", "GPE")], "Ontario", ("Ontario", "admin1", "CA")),
        # Many countries, few of them Spain's neighbours: still Barcelona, Spain.
        ([("Barcelona", "GPE"), ("Spain", "GPE", 4), ("Colombia", "GPE", 2),
          ("Brazil", "GPE"), ("France", "GPE", 3)], "Barcelona", ("Barcelona", "city", "ES")),
    ],
)  # fmt: skip
def test_a_place_resolves_by_its_kind_population_and_the_articles_other_places(
    rows, entity, expected
):
    assert located(*rows)[entity] == expected


def test_only_place_labels_with_a_gazetteer_name_resolve():
    found = located(("Paris", "PERSON"), ("Gotham", "GPE"), ("Apple", "ORG"), ("Lima", "GPE"))
    assert list(found) == ["Lima"]


def test_nationalities_count_for_their_country_most_populous_first():
    rows = [("Venezuelan", "NORP", 3, False, 0.5), ("Americans", "NORP", 1, False, 0.2)]
    assert [(cc) for _, cc, _ in places.nationalities(rows)] == ["VE", "US"]
    focus = places.countries_of_focus([], places.nationalities(rows))
    assert [cc for cc, _ in focus] == ["VE", "US"]
    assert sum(score for _, score in focus) == pytest.approx(1.0, abs=1e-3)


def test_every_name_of_one_place_is_one_key_and_two_places_of_one_name_two():
    g = places.gazetteer()
    keys = {places.locate([(n, "GPE", 1, False, 0.3)])[0].place.key for n in
            ("U.S.", "US", "United States", "USA", "America")}  # fmt: skip
    assert keys == {g.countries["US"].key}
    state = places.locate([("Georgia", "GPE", 1, False, 0.3), ("Atlanta", "GPE", 1, False, 0.3)])
    country = places.locate([("Georgia", "GPE", 1, False, 0.3)])
    assert state[0].place.key != country[0].place.key


@pytest.mark.slow  # builds the whole gazetteer (~8 s of CPU)
def test_the_gazetteer_read_from_its_cache_is_the_one_built(tmp_path, monkeypatch):
    """A process reads the built gazetteer from the user's cache instead of building it (a
    few seconds of CPU in every task that locates places): the same places by every name.
    A file anyone else could have written, or a broken one, is not read: it is built again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = places.Gazetteer.load()
    path = places.cache_file()
    assert path is not None and path.is_relative_to(tmp_path)
    places._write_cache(path, built)
    read = places._read_cache(path)
    assert read is not None and read.version == built.version
    assert len(read.by_key) == len(built.by_key) > 300_000 and set(read.by_key) == set(built.by_key)
    every_7th = list(built.by_key)[::7]  # 45,000 names: the same places, weights and order
    assert all(read.by_key[k] == built.by_key[k] for k in every_7th)
    assert read.by_place_key == built.by_place_key and read.postal == built.postal
    assert (read.countries, read.iso3, read.continent, read.neighbours) == (
        built.countries, built.iso3, built.continent, built.neighbours)  # fmt: skip
    assert (read.demonyms, read.celestial) == (built.demonyms, built.celestial)
    assert read.candidates("Paris, Texas") == built.candidates("Paris, Texas")
    # The countries a new store's reference table gets are the gazetteer's, without it.
    assert {c.place.country_code: c.place for c in places.countries()} == built.countries

    path.chmod(0o666)  # another user could have written it
    assert places._read_cache(path) is None
    path.chmod(0o600)
    path.write_bytes(path.read_bytes()[:1000])  # cut short
    assert places._read_cache(path) is None
    # Written anew; of other versions' files the newest are kept (another checkout may use
    # them), the oldest go.
    for n in range(places.CACHE_KEPT + 1):
        (old := path.parent / f"gazetteer-{n}.marshal").write_bytes(b"another version")
        os.utime(old, (1_000_000 + n, 1_000_000 + n))
    places._write_cache(path, built)
    assert sorted(f.name for f in path.parent.iterdir()) == sorted(
        [path.name] + [f"gazetteer-{n}.marshal" for n in (2, 3, 4)]
    )
    assert places._read_cache(path) is not None


def test_processes_starting_together_build_the_gazetteer_once(tmp_path, newsflow_cli):
    """The workers of a fresh install start with no cache: one builds, the others wait for it
    and read what it wrote (each building it would cost seconds of CPU apiece)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout);"
        " from newsflow.enrich import places; g = places.gazetteer();"
        " print('countries', len(g.countries))"
    )
    procs = [newsflow_cli.start(env=env, code=code) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all("countries 252" in out for out in outs), outs
    assert sum("built the gazetteer" in out for out in outs) == 1, outs
    assert len(list((tmp_path / "newsflow").glob("gazetteer-*.marshal"))) == 1


def test_the_sample_article_is_about_venezuela(model_name):
    nlp = ent.load_model(model_name)
    doc, title_len, offset = ent.document("", SAMPLE)
    found = ent.build_entities(ent.mentions_from_doc(nlp(doc)), title_len, offset, len(doc))
    rows = [(e.entity, e.label, e.mentions, e.in_title, e.salience) for e in found]
    resolved = places.locate(rows)
    by_name = {ap.entity: ap.place for ap in resolved}
    assert by_name["Venezuela"].country_code == "VE"
    assert (by_name["Caracas"].country_code, by_name["Caracas"].feature) == ("VE", "city")
    for name, cc in (("Brazil", "BR"), ("Mexico", "MX"), ("China", "CN"), ("Beijing", "CN")):
        assert by_name[name].country_code == cc, name
    # The Caribbean is a region: no country, so none wrong.
    assert by_name["Caribbean"].feature == "region" and by_name["Caribbean"].country_code is None
    focus = places.countries_of_focus(resolved, places.nationalities(rows))
    assert focus[0][0] == "VE"


# -- the store ---------------------------------------------------------------------------------

GEORGIA_STATE = (
    "Storms sweep Georgia",
    [
        "Heavy storms hit Georgia on Sunday, flooding streets in Atlanta and Savannah, the "
        "National Weather Service said. Officials in Georgia opened shelters overnight.",
        "Roads north of Atlanta were closed, and power was out for thousands of homes across "
        "the state, the utility said late on Sunday evening.",
    ],
)
GEORGIA_COUNTRY = (
    "Protests in Tbilisi",
    [
        "Thousands rallied in Tbilisi on Sunday against the government of Georgia, which "
        "critics accuse of drifting towards Russia. Police in Georgia detained dozens.",
        "Officials in Moscow said the protests were an internal matter, while diplomats in "
        "Brussels urged restraint from all sides through the week.",
    ],
)


def test_places_are_stored_with_identity_and_countries(tagged_settings, site):
    pages = {
        "boat": SAMPLE_PAGE,
        "summit": SUMMIT_PAGE,
        "storm": GEORGIA_STATE,
        "tbilisi": GEORGIA_COUNTRY,
    }
    ingest(tagged_settings, serve(site, pages))
    with Store(tagged_settings.database, read_only=True) as store:
        q = store.query
        # Georgia the state and Georgia the country: two entities, one name.
        georgia = q(
            "select a.url, p.feature, p.country_code, p.entity_id, n.name from article_places p"
            " join articles a using (article_id) join entities n using (entity_id)"
            " where p.entity = 'Georgia' order by a.url"
        )[1]
        assert [(r[1], r[2]) for r in georgia] == [("admin1", "US"), ("country", "GE")]
        assert georgia[0][3] != georgia[1][3] and georgia[0][4] == georgia[1][4] == "Georgia"
        # Every place row has its entity, whose key is the place's.
        assert q(
            "select count(*) from article_places p left join entity_keys k"
            " on k.entity_key = p.place_key where k.entity_id is distinct from p.entity_id"
        )[1] == [(0,)]
        # The sample is about Venezuela first.
        focus = q(
            "select c.country_code from article_countries c join articles a using (article_id)"
            " where a.url like '%boat%' order by c.score desc"
        )[1]
        assert focus[0] == ("VE",)
        assert (
            q(
                "select sum(score) from article_countries group by article_id"
                " having abs(sum(score) - 1) > 0.01"
            )[1]
            == []
        )
        # The country view answers, with names from the countries table.
        attention = dict(
            (r[0], r[1])
            for r in q("select country, sum(articles) from country_attention_daily group by 1")[1]
        )
        assert attention["Venezuela"] >= 1 and attention["Georgia"] >= 1
        assert attention["United States"] >= 2
        assert q("select count(*) from countries")[1][0][0] > 240


def test_retag_and_migration_rebuild_the_same_places(tagged_settings, site):
    ingest(tagged_settings, serve(site, {"storm": GEORGIA_STATE, "tbilisi": GEORGIA_COUNTRY}))

    def snapshot(store):
        return sorted(
            store.query(
                "select article_id, entity, place_key, entity_id, country_code, confidence"
                " from article_places"
            )[1]
        ) + sorted(store.query("select * from article_countries")[1])

    with Store(tagged_settings.database) as store:
        before = snapshot(store)
        assert before
    with Store(tagged_settings.database) as store:
        retag(tagged_settings, store, tagger="spacy")
        assert snapshot(store) == before
        # As the migration does for rows stored before it: keys back to names, no places.
        con = store.con
        con.execute("begin")
        con.execute("delete from article_places")
        con.execute("delete from article_countries")
        con.execute("update article_entities set entity_key = null where entity_key like 'geo:%'")
        places_db.locate_all(con)
        entity_db.resolve_all(con)
        con.execute("commit")
        assert snapshot(store) == before


# -- the gold set --------------------------------------------------------------------------------

GOLD = FIXTURES / "places_gold.tsv"


@pytest.mark.slow
def test_place_gold_set_country_accuracy(tmp_path):
    """The sample newsroom ingested for real, its places scored against the hand-labelled
    gold set (benchmarks/places.py prints the same figures)."""
    settings = replace(
        Settings(data_dir=tmp_path / "data"),
        allow_private=True,
        per_host_delay=0.0,
        per_host_concurrency=8,
    )
    with Newsroom(port=0) as newsroom, Store(settings.lake) as store:
        run_cycle(settings, store, feeds=newsroom.feeds, include_not_due=True)
        found, resolved = place_evidence(store.con)
    gold = load_place_gold(GOLD)
    assert len([g for g in gold if g[3] != "X"]) >= 200
    s = score_places(gold, found, resolved)
    assert s.found >= 220  # the model finds (nearly) every gold place
    # Floors: the figures measured when the set was made (0.961; 0 wrong countries, every
    # miss a place the gazetteer does not know).
    assert s.country_accuracy >= 0.96, s.misses
    assert all(got is None for _, _, _, got in s.misses), s.misses
    assert s.accuracy >= 0.96
    assert s.spurious <= 9


# -- other languages -----------------------------------------------------------------------------

PAGES = FIXTURES / "pages"


def test_french_pages_get_entities_and_german_pages_places_with_the_default_settings(
    tmp_path, model_name
):
    """Out of the box (politeness on, the default models: English and French), real pages:
    French ones are tagged by the French model, a German one (no German model) gets the
    places the gazetteer finds, and all of them countries of focus."""
    from newsflow.demo.newsroom import Route, SiteServer

    from tests.helpers import rss

    settings = replace(Settings(data_dir=tmp_path / "data"), allow_private=True)
    assert set(settings.ner_model_map) == {"en", "fr"}
    slugs = {
        "psl": "psl.eu.luniversite",
        "ag": "sauvonsluniversite.com.spip",
        "zeit": "zeit.de.zugverkehr",
    }
    with SiteServer() as site:
        b = site.base_url
        site.routes["/robots.txt"] = Route(b"", status=404, conditional=False)
        items = [
            {"link": f"{b}/p/{slug}.html", "title": slug, "date": "Mon, 01 Dec 2025 09:00:00 GMT"}
            for slug in slugs
        ]
        site.routes["/feed.xml"] = Route(rss("Pages", items), content_type="application/rss+xml")
        for slug, name in slugs.items():
            html = gzip.decompress((PAGES / f"{name}.html.gz").read_bytes())
            site.routes[f"/p/{slug}.html"] = Route(html)
        ingest(settings, f"{b}/feed.xml")
    with Store(settings.database, read_only=True) as store:
        q = store.query

        def of(slug: str, sql: str) -> list[tuple]:
            return q(
                sql.format(a=f"(select article_id from articles where url like '%/{slug}.html')")
            )[1]

        langs = dict(q("select regexp_extract(url, '/p/(\\w+)', 1), language from articles")[1])
        assert langs == {"psl": "fr", "ag": "fr", "zeit": "de"}
        # Every entity row the default load wrote carries its article's day (migration 013).
        assert q(
            "select count(*) filter (where e.day is distinct from d.day), count(*) > 0"
            " from article_entities e join article_days d using (article_id)"
        )[1] == [(0, True)]
        # French: the French model's entities, people among them.
        psl = of(
            "psl",
            "select tagger, status from article_tagging where article_id = {a} and kind = 'entities'",
        )
        assert psl == [(psl[0][0], "ok")] and psl[0][0].startswith("spacy/fr_core_news_md-3.8.0")
        people = {
            r[0]
            for r in of(
                "psl",
                "select entity from article_entities where article_id = {a} and label = 'PERSON'",
            )
        }
        assert "Alain Fuchs" in people
        assert of(
            "psl",
            "select country_code from article_countries where article_id = {a} order by score desc limit 1",
        ) == [("FR",)]
        ag = {
            r[0]: r[1]
            for r in of(
                "ag", "select entity, country_code from article_places where article_id = {a}"
            )
        }
        assert ag["Saint-Denis"] == ag["Créteil"] == ag["Paris"] == "FR"
        # German, no model: the gazetteer's places only, said so.
        tagging = of(
            "zeit",
            "select tagger, status, reason from article_tagging where article_id = {a} and kind = 'entities'",
        )
        assert tagging[0][0].startswith("gazetteer/") and tagging[0][1] == "ok"
        assert "places only: no entity model for language 'de'" in tagging[0][2]
        zeit = {
            r[0]: r[1]
            for r in of(
                "zeit", "select name, country_code from article_places where article_id = {a}"
            )
        }
        for name, cc in (
            ("Berlin", "DE"),
            ("Madrid", "ES"),
            ("Stockholm", "SE"),
            ("Germany", "DE"),
        ):
            assert zeit.get(name) == cc, (name, zeit)
        assert of(
            "zeit",
            "select count(*) from article_entities where article_id = {a} and label not in ('GPE', 'LOC')",
        ) == [(0,)]
        assert of(
            "zeit",
            "select country_code from article_countries where article_id = {a} order by score desc limit 1",
        ) == [("DE",)]
    # A model for the language later: a retag replaces the gazetteer's rows, never adds to them.
    with_de = replace(settings, ner_models=settings.ner_models + ",de:fr_core_news_md")
    with Store(settings.database) as store:
        retag(with_de, store, tagger="spacy")
    with Store(settings.database, read_only=True) as store:
        taggers = store.query(
            "select split_part(e.tagger, '/', 1), count(*) from article_entities e"
            " join articles a using (article_id) where a.url like '%/zeit.html' group by 1"
        )[1]
        assert [t for t, _ in taggers] == ["spacy"]
