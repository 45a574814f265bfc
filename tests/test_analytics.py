"""The analyst's side against a database filled by a real ingest: every view and named query
returns rows with its documented columns; search, export and story clusters."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import duckdb
import pytest
from newsflow.cli import main
from newsflow.db.engine import sql_dir
from newsflow.db.search import search
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route, newsroom_feeds, newsroom_routes
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run.cycle import run_cycle

from tests.helpers import FIXTURES, ROOT, article_page, rss

SQL_README = (ROOT / "sql" / "README.md").read_text(encoding="utf-8")
SAMPLE = (FIXTURES / "samples" / "boat-strike-article.txt").read_text(encoding="utf-8")
PARAMS = {
    "since": "2000-01-01",
    "label": "any",
    "entity": "United States",
    "topic": "politics",
}


def edited_copy(text: str) -> list[str]:
    """A wire copy: same story, an outlet's own intro and outro, a few words changed."""
    paragraphs = [p for p in text.split("\n") if p.strip()]
    edited = [p.replace("Tuesday", "on Tuesday").replace("boasted", "bragged") for p in paragraphs]
    return ["(Wire) Reporting from Caracas and Washington.", *edited, "Copyright the wire."]


@pytest.fixture(scope="module")
def analytics_db(tmp_path_factory, model_name):
    """The sample newsroom, plus a wire story run by two more outlets under other URLs, plus a
    feed that was registered and never polled."""
    from newsflow.demo.newsroom import SiteServer

    tmp = tmp_path_factory.mktemp("analytics")
    with SiteServer() as site:
        site.routes.update(newsroom_routes(site.base_url))
        b = site.base_url
        title = "US strike on boat near Venezuela kills 11"
        for outlet in ("wire-a", "wire-b"):
            site.routes[f"/{outlet}/feed.xml"] = Route(
                rss(outlet, [{"link": f"{b}/{outlet}/boat.html", "title": title,
                              "date": "Wed, 18 Feb 2026 09:00:00 GMT" if outlet == "wire-a"
                              else "Wed, 18 Feb 2026 11:30:00 GMT"}]),
                content_type="application/rss+xml",
            )  # fmt: skip
            site.routes[f"/{outlet}/boat.html"] = Route(article_page(title, edited_copy(SAMPLE)))
        feeds = [
            *newsroom_feeds(b),
            FeedSpec(url=f"{b}/wire-a/feed.xml", name="Wire A"),
            FeedSpec(url=f"{b}/wire-b/feed.xml", name="Wire B"),
        ]
        from newsflow.config import Settings

        settings = Settings(
            data_dir=tmp / "data", allow_private=True, per_host_delay=0.0,
            per_host_concurrency=8, extract_workers=1, tag_workers=1,
        )  # fmt: skip
        with Store(settings.database) as store:
            summary = run_cycle(settings, store, feeds=feeds, include_not_due=True)
            assert summary.articles_loaded == 52
            store.upsert_feeds([FeedSpec(url="http://feeds.invalid/never.xml", name="Never")])
    return settings.database


def documented_view_columns() -> dict[str, list[str]]:
    views = {}
    for name, body in re.findall(
        r"^### `(\w+)`.*?\n(.*?)(?=^### |^## |\Z)", SQL_README, re.M | re.S
    ):
        cols = []
        for cell in re.findall(r"^\| (`[^|]+`) \|", body, re.M):
            cols += re.findall(r"`(\w+)`", cell)
        views[name] = cols
    return views


def documented_queries() -> dict[str, list[str]]:
    out = {}
    for row in re.findall(r"^\| `queries/(\w+)\.sql` \|.*\| (`.*`) \|$", SQL_README, re.M):
        out[row[0]] = re.findall(r"`(\w+)`", row[1])
    return out


VIEWS = sorted(p.stem for p in (sql_dir() / "views").glob("*.sql"))
QUERIES = sorted(p.stem for p in (sql_dir() / "queries").glob("*.sql"))


def test_every_view_and_query_is_documented():
    assert set(documented_view_columns()) == set(VIEWS)
    assert set(documented_queries()) == set(QUERIES)
    for path in (sql_dir() / "queries").glob("*.sql"):
        head = path.read_text(encoding="utf-8").split("\n", 3)
        assert (head[0].startswith("-- ") and "Parameters:" in "".join(head[:3])) or (
            "No parameters" in "".join(head[:3])
        ), path.name


@pytest.mark.parametrize("view", VIEWS)
def test_view_returns_rows_with_documented_columns(analytics_db, view):
    with Store(analytics_db, read_only=True) as store:
        cols, rows = store.query(f"select * from {view}")
    assert rows, f"{view} returned no rows"
    assert sorted(cols) == sorted(documented_view_columns()[view])


@pytest.mark.parametrize("query", QUERIES)
def test_named_query_answers_through_the_cli(analytics_db, query, capsys):
    path = sql_dir() / "queries" / f"{query}.sql"
    text = path.read_text(encoding="utf-8")
    wanted = sorted(set(re.findall(r"\$(\w+)", text)))
    args = ["sql", "--catalog", str(analytics_db), "-f", str(path), "--format", "json"]
    for name in wanted:
        args += ["--param", f"{name}={PARAMS[name]}"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows, f"{query} returned no rows"
    assert list(rows[0]) == documented_queries()[query]


def test_queries_bind_parameters_instead_of_pasting_them(analytics_db, capsys):
    path = sql_dir() / "queries" / "what_was_said_about.sql"
    hostile = "x'); drop table articles; --"
    assert (
        main(
            ["sql", "--catalog", str(analytics_db), "-f", str(path), "--param", f"entity={hostile}"]
        )
        == 0
    )
    with Store(analytics_db, read_only=True) as store:
        assert store.query("select count(*) from articles")[1][0][0] == 52


def test_search_finds_the_sample_article_first(analytics_db, capsys):
    with Store(analytics_db, read_only=True) as store:
        hits = search(store.con, "Venezuela")
        assert hits and "boat" in (hits[0].title or "").lower()
        assert "Venezuela" in hits[0].snippet
        # only articles naming an entity; only since a date
        named = search(store.con, "strike", entity="nicolas maduro")
        assert named and all("boat" in (h.title or "").lower() for h in named)
        assert search(store.con, "Venezuela", since=datetime(2030, 1, 1, tzinfo=UTC)) == []
    assert main(["search", "--catalog", str(analytics_db), "Venezuela", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(" 1. [") and "Venezuela" in out
    assert main(["search", "--catalog", str(analytics_db), "   "]) == 2


def test_search_without_index_says_how_to_build_it(tmp_path, settings, site, capsys):
    db = tmp_path / "plain.sqlite"
    with Store(db) as store:
        store.upsert_feeds([FeedSpec(url="http://example.org/feed.xml")])
        assert store.search("anything") == []  # nothing stored: nothing to find, no error
        store.con.execute(  # an article, and no index built for it (NEWSFLOW_SEARCH_INDEX=0)
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title,"
            " first_seen_at, loaded_at, text, word_count, extraction_status) values"
            " ('a', 'f', 'r', 'u', 'u', 'Anything at all', now(), now(), 'anything', 1, 'ok')"
        )
    code = main(["search", "--catalog", str(db), "anything"])
    assert code == 1
    assert "no search index yet" in capsys.readouterr().err
    assert main(["search", "--catalog", str(db), "anything", "--rebuild"]) == 0


def test_search_says_what_the_index_does_not_cover_yet(tmp_path, capsys):
    from newsflow.db.search import rebuild_index, unindexed_articles

    db = tmp_path / "big.sqlite"
    with Store(db) as store:
        assert store.refresh_search_index(max_articles=-1) is None  # too big: left to maintenance
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title,"
            " first_seen_at, loaded_at, text, word_count, extraction_status) values"
            " ('a', 'f', 'r', 'u', 'u', 'Volcano erupts', now(), now() - interval 1 hour,"
            " 'The volcano erupted.', 3, 'ok')"
        )
        rebuild_index(store.con)
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title,"
            " first_seen_at, loaded_at, text, word_count, extraction_status) values"
            " ('b', 'f', 'r', 'v', 'v', 'Volcano again', now(), now() + interval 1 hour,"
            " 'The volcano erupted again.', 4, 'ok')"
        )
        assert unindexed_articles(store.con) == 1
    assert main(["search", "--catalog", str(db), "volcano"]) == 0
    out, err = capsys.readouterr()
    assert "Volcano erupts" in out and "1 article(s) loaded since the index was built" in err


def test_export_by_day_reads_back(analytics_db, tmp_path, capsys):
    out = tmp_path / "export"
    assert main(["export", "--catalog", str(analytics_db), str(out)]) == 0
    days = sorted(p.name for p in (out / "articles").iterdir())
    assert days and all(re.fullmatch(r"day=\d{4}-\d{2}-\d{2}", d) for d in days)
    con = duckdb.connect()
    back = con.execute(
        f"select count(*), count(distinct day) from read_parquet('{out}/articles/*/*.parquet',"
        " hive_partitioning = 1)"
    ).fetchone()
    assert back == (52, len(days))
    entities = con.execute(
        f"select count(*) from read_parquet('{out}/article_entities/*/*.parquet')"
    ).fetchone()[0]
    with Store(analytics_db, read_only=True) as store:
        assert entities == store.query("select count(*) from article_entities")[1][0][0]
    csv_out = tmp_path / "csv"
    assert main(["export", "--catalog", str(analytics_db), "--format", "csv", "--since",
                 "2026-02-18", str(csv_out)]) == 0  # fmt: skip
    csv_days = sorted(p.name for p in (csv_out / "articles").iterdir())
    assert csv_days and all(d >= "day=2026-02-18" for d in csv_days)
    assert (csv_out / "feeds" / "data_0.csv").exists()


def test_report_command_writes_a_self_contained_page(analytics_db, tmp_path, capsys):
    out = tmp_path / "r" / "report.html"
    assert main(["report", "--catalog", str(analytics_db), "-o", str(out), "--days", "30"]) == 0
    assert "report written to" in capsys.readouterr().out
    page = out.read_text(encoding="utf-8")
    assert page.count("plotly") > 0 and "<script src=" not in page
    assert "Articles per day by topic" in page
    assert main(["report", "--catalog", str(analytics_db), "--days", "0"]) == 2


def test_wire_copies_share_a_story_and_unrelated_articles_do_not(analytics_db):
    with Store(analytics_db, read_only=True) as store:
        rows = store.rows(
            "select a.url, a.story_id, a.article_id, f.title as feed from articles a"
            " join feeds f using (feed_id) where a.url like '%boat%'"
        )
        stories = {r["story_id"] for r in rows}
        # the original and the two edited copies at other URLs: one story, first source first
        assert len(rows) == 3 and len(stories) == 1
        story = stories.pop()
        first = store.rows(
            "select f.title as feed from articles a join feeds f using (feed_id)"
            " where a.article_id = ?",
            [story],
        )[0]["feed"]
        assert first == "BBC News - World"  # published 2026-02-17, the wires on the 18th
        alone = store.query(
            "select count(*) from articles where url not like '%boat%' and story_id <> article_id"
        )[1][0][0]
        assert alone == 0
        clean = store.rows(
            "select articles, outlets from articles_clean where story_id = ?", [story]
        )
        assert clean == [{"articles": 3, "outlets": 3}]
        bands = store.query("select count(*) from article_bands")[1][0][0]
        fingerprinted = store.query("select count(*) from articles where fingerprint is not null")[
            1
        ][0][0]
        assert bands == 16 * fingerprinted


def test_sql_names_missing_and_unknown_parameters(analytics_db, capsys):
    path = str(sql_dir() / "queries" / "topic_trend.sql")
    assert main(["sql", "--catalog", str(analytics_db), "-f", path, "--param", "topic=sport"]) == 2
    assert "needs --param since=..." in capsys.readouterr().err
    code = main(["sql", "--catalog", str(analytics_db), "-f", path, "--param", "topic=sport",
                 "--param", "since=2026-01-01", "--param", "label=any"])  # fmt: skip
    assert code == 2 and "has no parameter label" in capsys.readouterr().err


# source_coverage's first definition (its ties of site names broken by name; no success rate
# for a feed without articles, where it said 0), computed over all articles at query time: the
# oracle of the period macro and of the materialised whole
# history (restricted to a period's articles by {where}).
COVERAGE_AT_QUERY_TIME = """
select f.feed_id, coalesce(f.title, f.url) as feed, f.url,
       mode(a.site_name order by a.site_name) as site,
       count(a.article_id) as articles,
       coalesce(list_sort(list_distinct(list(a.language) filter (where a.language is not null))),
                []::varchar[]) as languages,
       round(avg(case when a.extraction_status = 'ok' then 1.0 else 0.0 end)
             filter (where a.article_id is not null), 3) as extraction_success_rate,
       round(median(epoch(a.loaded_at - a.published_at) / 60.0)
             filter (where a.published_at is not null and a.loaded_at >= a.published_at), 1)
           as median_delay_minutes,
       min(a.first_seen_at) as first_article_at, max(a.first_seen_at) as last_article_at
from feeds f left join (select * from articles {where}) a using (feed_id)
group by all order by feed_id
"""


def test_source_coverage_over_a_period_and_over_the_whole_history(analytics_db):
    """source_coverage_between reads a period's articles by their day (article_days), every
    feed a row; the view source_coverage gives the whole history as the last load's rebuild
    counted it (as_of), a feed added since (Never) as a row without articles. (Articles
    without a publication time: tests/test_load_cost.py.)"""
    with Store(analytics_db, read_only=True) as store:
        days = [r[0] for r in store.query("select distinct day from article_days order by 1")[1]]
        assert len(days) >= 3
        # Periods that leave days out at either end.
        for first, last in ((days[1], days[-1]), (days[0], days[-2])):
            in_period = (
                "where article_id in (select article_id from article_days"
                f" where day between date '{first}' and date '{last}')"
            )
            want = store.query(COVERAGE_AT_QUERY_TIME.format(where=in_period))
            got = store.query(
                "select * from source_coverage_between(?, ?) order by feed_id", [first, last]
            )
            assert got == want, (first, last)
            counted = sum(r[4] for r in got[1])
            assert 0 < counted < store.query("select count(*) from articles")[1][0][0]

        whole = store.rows("select * from source_coverage order by feed_id")
        assert [tuple(r.values())[:-1] for r in whole] == store.query(
            COVERAGE_AT_QUERY_TIME.format(where="")
        )[1]
        never = [r for r in whole if r["feed"] == "Never"]
        assert never and never[0]["articles"] == 0 and never[0]["languages"] == []
        as_of = {r["as_of"] for r in whole}
        assert len(as_of) == 1 and as_of.pop() <= datetime.now(UTC)


def test_a_periods_stories_are_those_first_seen_in_it_with_all_their_members(analytics_db):
    """articles_clean_between(first_day, last_day): the stories whose earliest member is of
    those days, with their later members too; a story that began the day before is not one of
    the next day's, though its wire copies are of that day."""
    with Store(analytics_db, read_only=True) as store:
        days = [r[0] for r in store.query("select distinct day from article_days order by 1")[1]]
        for day in days:
            assert store.query(
                "select * from articles_clean_between(?, ?) order by all", [day, day]
            ) == store.query(
                "select * from articles_clean where utc_day(story_first_seen_at) = ? order by all",
                [day],
            )
        boat = "select articles, outlets from articles_clean_between(?, ?) where url like '%boat%'"
        began, copies = date(2026, 2, 17), date(2026, 2, 18)
        assert store.rows(boat, [began, began]) == [{"articles": 3, "outlets": 3}]
        assert store.rows(boat, [copies, copies]) == []
        assert store.query(
            "select count(*) from articles_between(?, ?) where url like '%boat%'", [copies, copies]
        )[1] == [(2,)]
