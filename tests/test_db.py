"""The database layer, module by module: the engine (connecting, locks, migrations), the named
queries, the one definitions in sql/ (an article's day, feed health with its thresholds from the
settings table, trending), story clustering, retagging, search refresh and export.

These tests write rows with plain SQL into a real migrated database, so each definition is
checked against a case built for it, apart from the pipeline that normally fills the tables."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow.parquet as pq
import pytest
from newsflow.config import Settings
from newsflow.db import entities as entity_db
from newsflow.db import queries, retag, search
from newsflow.db import stories as story_db
from newsflow.db.engine import StoreError, migrations, transaction
from newsflow.db.export import export
from newsflow.db.store import Store
from newsflow.fetching.urls import article_id, feed_id

from tests.helpers import ROOT, with_settings

# An article's day (article_days.day), as a load writes it into article_entities.day
DAY = "cast(timezone('UTC', coalesce(a.published_at, a.first_seen_at)) as date)"

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def add_feed(
    con, url, *, failures=0, outcome="ok", items=5, last_new=None, added=None, active=True
):
    con.execute(
        "insert into feeds (feed_id, url, active, added_at, consecutive_failures, items_total,"
        " last_polled_at, last_outcome, last_new_item_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            feed_id(url),
            url,
            active,
            added or NOW - timedelta(days=30),
            failures,
            items,
            NOW - timedelta(hours=1),
            outcome,
            last_new,
        ],
    )
    return feed_id(url)


def add_article(con, url, fid, *, published=None, seen=None, text="", entities=()):
    aid = article_id(url)
    con.execute(
        "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
        " published_at, first_seen_at, loaded_at, word_count, extraction_status)"
        " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, ?, ?, 'ok')",
        [aid, fid, url, url, url.rsplit("/", 1)[-1], text, published, seen or NOW, NOW, 3],
    )
    for entity, label in entities:
        con.execute(  # with the article's day, as a load writes it (migration 013)
            "insert into article_entities (article_id, entity, label, mentions, salience,"
            " in_title, tagger, day) select article_id, ?, ?, 1, 0.5, false, 'spacy/test',"
            f" {DAY} from articles a where article_id = ?",
            [entity, label, aid],
        )
    entity_db.assign(con, [aid])  # as a load does
    return aid


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "news.sqlite") as s:
        yield s


# -- the engine ---------------------------------------------------------------------------------


def test_migrations_are_numbered_in_order_and_applied_once(store):
    versions = [v for v, _, _ in migrations()]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    assert store.schema_version() == versions[-1]
    assert store.migrate() == []  # a second time: nothing to apply


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n")
    with pytest.raises(StoreError, match=r"notes\.sqlite"):
        Store(path)
    assert path.read_text() == "these are my notes, not a database\n"  # nothing lost


def test_read_only_on_an_older_schema_says_how_to_migrate(tmp_path):
    path = tmp_path / "old.sqlite"
    with Store(path) as store:  # as if made by a newsflow that knew only the first migration
        store.con.execute("delete from schema_migrations where version > 1")
    with pytest.raises(StoreError, match=r"schema version 1.*newsflow ingest"):
        Store(path, read_only=True)


def test_a_locked_database_waits_then_names_the_file(tmp_path):
    path = tmp_path / "busy.sqlite"
    Store(path).close()
    holder = textwrap.dedent(
        f"""
        import sys, time
        from newsflow.db.store import Store
        store = Store({str(path)!r})
        print("locked", flush=True)
        time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        started = datetime.now(UTC)
        with pytest.raises(StoreError, match=r"busy\.sqlite is locked by another process"):
            Store(path, lock_wait=1.0)
        Store(path, read_only=True).close()  # a reader never waits for the writer
        assert (datetime.now(UTC) - started).total_seconds() >= 0.9  # it did wait
    finally:
        proc.kill()
        proc.wait()
    Store(path, lock_wait=5).close()  # free again once the holder is gone


# -- named queries ------------------------------------------------------------------------------


def test_a_query_that_does_not_exist_names_its_file():
    with pytest.raises(KeyError, match=r"no_such_query\.sql"):
        queries.text("report/no_such_query")


def test_every_named_folder_lists_its_queries():
    assert "totals" in queries.names("report")
    assert "feed_check" in queries.names("ops")
    assert {"latest_articles", "top_entities"} <= set(queries.names("demo"))


def test_missing_ok_answers_nothing_on_a_database_without_the_views(tmp_path):
    con = duckdb.connect()
    assert (
        queries.rows(
            con,
            "report/totals",
            {"start": NOW.date(), "end": NOW.date(), "failing_after": 3},
            missing_ok=True,
        )
        == []
    )
    with pytest.raises(duckdb.CatalogException):
        queries.rows(
            con, "report/totals", {"start": NOW.date(), "end": NOW.date(), "failing_after": 3}
        )


# -- one definition each ------------------------------------------------------------------------


def test_an_articles_day_is_its_utc_day_in_any_session_time_zone(store):
    fid = add_feed(store.con, "https://a.example/feed")
    late = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # 9 March in Los Angeles
    add_article(store.con, "https://a.example/late", fid, published=late)
    add_article(
        store.con, "https://a.example/undated", fid, seen=datetime(2026, 3, 9, 23, 30, tzinfo=UTC)
    )
    store.con.execute("set TimeZone = 'America/Los_Angeles'")
    days = dict(
        store.query("select url, day from article_days join articles using (article_id)")[1]
    )
    assert days == {
        "https://a.example/late": datetime(2026, 3, 10).date(),
        "https://a.example/undated": datetime(2026, 3, 9).date(),
    }


def test_feed_health_reads_its_thresholds_from_the_settings(store):
    recent = NOW - timedelta(hours=2)
    add_feed(store.con, "https://ok.example/feed", last_new=recent)
    add_feed(
        store.con, "https://twice.example/feed", failures=2, outcome="http_error", last_new=recent
    )
    add_feed(store.con, "https://quiet.example/feed", last_new=NOW - timedelta(hours=30))
    add_feed(store.con, "https://gone.example/feed", active=False)

    def status(con, as_of, failing_after, silence_hours):
        rows = con.execute(
            "select url, status, silent from feed_health_at(?, ?, ?)",
            [as_of, failing_after, silence_hours],
        ).fetchall()
        return {url.split("/")[2].split(".")[0]: (st, silent) for url, st, silent in rows}

    defaults = status(store.con, NOW, 3, 48)
    assert defaults == {
        "ok": ("ok", False),
        "twice": ("erroring", False),  # the last poll failed, not yet 3 in a row
        "quiet": ("ok", False),  # 30 h without news is within 48
        "gone": ("removed", False),
    }
    strict = status(store.con, NOW, 2, 24)
    assert strict["twice"] == ("failing", False) and strict["quiet"] == ("silent", True)

    # The view: the thresholds every run records from its settings.
    def view():
        return {
            r["url"].split("/")[2].split(".")[0]: r["status"]
            for r in store.rows("select url, status from feed_health")
        }

    assert view()["twice"] == "erroring"
    store.record_settings(with_settings(Settings(), feed_failing_after=2, feed_silence_hours=24))
    assert store.rows("select name, value from settings order by name") == [
        {"name": "feed_failing_after", "value": 2.0},
        {"name": "feed_silence_hours", "value": 24.0},
    ]
    assert view()["twice"] == "failing"
    # maintenance asks the same definition, with its own thresholds
    check = store.feed_check(NOW, 3, 24)
    assert [(r["url"], r["needs_attention"]) for r in check] == [
        ("https://quiet.example/feed", True),
        ("https://twice.example/feed", False),  # erroring: not yet a problem
        ("https://ok.example/feed", False),
    ]


def test_feed_health_catches_every_kind_of_death(store):
    def polls(fid, url, n, outcome="ok", status=200):
        for i in range(n):
            store.con.execute(
                "insert into feed_polls (poll_id, run_id, feed_id, url, polled_at, http_status,"
                " outcome, malformed, bytes, items_seen, items_new) values"
                " (?, 'run', ?, ?, ?, ?, ?, false, 0, 0, 0)",
                [f"{fid}-{i}", fid, url, NOW - timedelta(hours=i + 1), status, outcome],
            )

    gone = add_feed(
        store.con, "https://gone.example/feed", failures=1, outcome="http_error", items=0
    )
    store.con.execute("update feeds set last_status = 404 where feed_id = ?", [gone])
    polls(gone, "https://gone.example/feed", 1, "http_error", 404)
    page = add_feed(store.con, "https://page.example/", failures=1, outcome="parse_error", items=0)
    polls(page, "https://page.example/", 1, "parse_error")
    empty = add_feed(store.con, "https://empty.example/feed", items=0)
    polls(empty, "https://empty.example/feed", 3)
    young = add_feed(store.con, "https://young.example/feed", items=0)
    polls(young, "https://young.example/feed", 2)
    rows = {r["url"]: (r["status"], r["needs_attention"]) for r in store.feed_check(NOW, 3, 48)}
    assert rows == {
        "https://gone.example/feed": ("dead", True),  # 404 on its only poll
        "https://page.example/": ("dead", True),  # not a feed at all
        "https://empty.example/feed": ("never_worked", True),  # 3 polls, never an item
        "https://young.example/feed": ("ok", False),  # 2 polls: too early to say
    }


def test_trending_counts_an_entity_once_whatever_its_labels(store):
    fid = add_feed(store.con, "https://t.example/feed")
    day = datetime(2026, 3, 10, 9, tzinfo=UTC)
    with transaction(store.con):  # one commit, as a load makes
        for i in range(8):  # the baseline: 8 articles over the week before, Acme in one
            add_article(
                store.con,
                f"https://t.example/b{i}",
                fid,
                published=day - timedelta(days=1 + i % 7),
                entities=[("Acme", "ORG")] if i == 0 else [("Other", "ORG")],
            )
        labels = ["ORG", "ORG", "PERSON", "ORG"]  # one mislabelled mention
        for i, label in enumerate(labels):
            add_article(
                store.con, f"https://t.example/d{i}", fid, published=day,
                entities=[("Acme", label)],
            )  # fmt: skip
    rows = store.rows(
        "select entity, label, articles_today, n_today, articles_baseline, n_base, base_days, z"
        " from trending_entities_on(date '2026-03-10')"
    )
    assert len(rows) == 1  # one Acme, not an ORG Acme and a PERSON Acme
    acme = rows[0]
    assert (acme["entity"], acme["label"]) == ("Acme", "ORG")
    assert (acme["articles_today"], acme["n_today"], acme["articles_baseline"], acme["n_base"]) == (
        4,
        4,
        1,
        8,
    )
    assert acme["base_days"] == 7 and acme["z"] > 2
    # the view is the same macro at the newest day
    assert store.rows("select entity, z from trending_entities") == [
        {"entity": "Acme", "z": acme["z"]}
    ]


# -- stories, retag, search ---------------------------------------------------------------------

WIRE = (
    "The central bank raised its main interest rate by a quarter point on Tuesday, citing "
    "inflation that has stayed above its target for a third year, and signalled that further "
    "increases were possible if prices kept rising faster than wages across the region."
)


def test_story_assignment_joins_near_copies_and_keeps_others_apart(store):
    fid = add_feed(store.con, "https://s.example/feed")
    texts = {
        "a": WIRE,
        "b": WIRE + " Reporting by a staff writer.",
        "c": "An unrelated note about gardening in spring, tulips and soil.",
    }
    ids = {
        k: add_article(
            store.con,
            f"https://s.example/{k}",
            fid,
            published=NOW - timedelta(minutes=10 * i),
            text=t,
        )
        for i, (k, t) in enumerate(texts.items())
    }
    store.con.execute("create temp table staged_articles as select * from articles")
    joined = story_db.assign(store.con, list(ids.values()))
    stories = dict(store.query("select article_id, story_id from articles")[1])
    assert joined == 1
    assert stories[ids["a"]] == stories[ids["b"]] != stories[ids["c"]]
    assert stories[ids["c"]] == ids["c"]
    # the earliest member names the story: b was published 10 minutes before a
    assert stories[ids["a"]] == ids["b"]


def test_replace_tags_replaces_one_taggers_rows_only(store):
    fid = add_feed(store.con, "https://r.example/feed")
    aid = add_article(store.con, "https://r.example/x", fid, entities=[("Old Name", "PERSON")])
    store.con.execute(
        "insert into article_entities (article_id, entity, label, mentions, salience, in_title,"
        f" tagger, day) select article_id, 'Kept', 'ORG', 1, 0.1, false, 'other/1', {DAY}"
        " from articles a where article_id = ?",
        [aid],
    )
    assert retag.count_taggable(store.con) == 1
    assert retag.count_taggable(store.con, untagged=["entities"]) == 1  # no status row yet
    rows = {
        "entities": [
            {
                "article_id": aid,
                "entity": "New Name",
                "label": "PERSON",
                "mentions": 2,
                "salience": 0.9,
                "in_title": True,
                "first_offset": 0,
                "tagger": "spacy/test-2",
            }
        ],
        "tagging": [
            {
                "article_id": aid,
                "kind": "entities",
                "tagger": "spacy/test-2",
                "status": "ok",
                "reason": None,
                "items": 1,
                "tagged_at": NOW,
            }
        ],
    }
    removed = retag.replace_tags(store.con, [aid], rows, ["entities"])
    assert removed == {"entities": 1}
    assert sorted(store.query("select entity, tagger from article_entities")[1]) == [
        ("Kept", "other/1"),
        ("New Name", "spacy/test-2"),
    ]
    assert retag.count_taggable(store.con, untagged=["entities"]) == 0
    assert [a["article_id"] for a in retag.taggable_articles(store.con, None, "", 10)] == [aid]


def test_search_refresh_indexes_and_knows_when_it_is_stale(store):
    fid = add_feed(store.con, "https://q.example/feed")
    add_article(store.con, "https://q.example/rates", fid, text=WIRE)
    assert search.stale(store.con)  # articles, no index yet
    assert search.refresh(store.con, max_articles=0) is None  # too many: left to maintenance
    assert search.refresh(store.con) > 0
    assert not search.stale(store.con)
    hits = search.search(store.con, "interest rate")
    assert [h.url for h in hits] == ["https://q.example/rates"]
    later = NOW + timedelta(hours=1)
    store.con.execute(
        "insert into articles (article_id, feed_id, run_id, url, canonical_url, text, first_seen_at,"
        " loaded_at, word_count, extraction_status) values ('f' || repeat('0', 31), ?, 'run2',"
        " 'https://q.example/new', 'https://q.example/new', 'tulips', ?, ?, 1, 'ok')",
        [fid, later, datetime.now(UTC) + timedelta(hours=1)],
    )
    assert search.unindexed_articles(store.con) == 1 and search.stale(store.con)
    assert search.refresh_after_load(store.con, articles_loaded=0) is not None  # catches up


def test_export_puts_rows_on_their_utc_day(store, tmp_path):
    fid = add_feed(store.con, "https://e.example/feed")
    add_article(
        store.con,
        "https://e.example/late",
        fid,
        published=datetime(2026, 3, 10, 3, tzinfo=UTC),
        entities=[("Acme", "ORG")],
    )
    store.con.execute("set TimeZone = 'America/Los_Angeles'")
    written = export(store.con, tmp_path / "out")
    assert written["articles"] == 1 and written["article_entities"] == 1 and written["feeds"] == 1
    assert [p.name for p in (tmp_path / "out" / "articles").iterdir()] == ["day=2026-03-10"]
    assert [p.name for p in (tmp_path / "out" / "article_entities").iterdir()] == ["day=2026-03-10"]
    table = pq.read_table(
        next((tmp_path / "out" / "articles" / "day=2026-03-10").glob("*.parquet"))
    )
    assert "fingerprint" not in table.column_names and table.num_rows == 1
    assert export(store.con, tmp_path / "later", since=datetime(2026, 3, 11))["articles"] == 0
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        export(store.con, tmp_path / "x", fmt="xml")


def test_every_folder_code_reads_by_name_has_its_queries():
    folders = ["report", "ops", "demo", "article"]
    assert all(queries.names(f) for f in folders)
    for folder in folders:
        for name in queries.names(folder):
            assert queries.text(f"{folder}/{name}").strip(), f"sql/{folder}/{name}.sql is empty"
    assert (ROOT / "sql" / "report" / "README.md").exists()


def test_search_shards_rebuild_only_what_a_load_touched_and_score_as_one_index(store):
    fid = add_feed(store.con, "https://s.example/feed")
    words = ["volcano erupts near the coast", "central bank raises interest rate",
             "volcano ash closes airports", "election results are in",
             "storm hits the coast", "bank shares fall after the rate decision"]  # fmt: skip
    for i, text in enumerate(words):
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
            " first_seen_at, loaded_at, word_count, extraction_status)"
            " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, 5, 'ok')",
            [f"{i:032x}", fid, f"u{i}", f"u{i}", f"t{i}", text, NOW, NOW + timedelta(minutes=i)],
        )
    assert search.refresh(store.con, size=100) is not None  # one shard of all six
    one = {h.article_id: round(h.score, 9) for h in search.search(store.con, "volcano coast rate")}
    assert search.rebuild_index(store.con, size=2) > 0  # three shards of two
    files = sorted(p.name for p in store.lake.search_path.glob("shard-*.duckdb"))
    assert files == ["shard-v5-00000.duckdb", "shard-v5-00001.duckdb", "shard-v5-00002.duckdb"]
    sharded = {
        h.article_id: round(h.score, 9) for h in search.search(store.con, "volcano coast rate")
    }
    assert sharded == one and len(one) == 5  # the collection's statistics, summed over shards
    assert not search.stale(store.con, size=2)
    before = {p.name: p.stat().st_mtime_ns for p in store.lake.search_path.glob("shard-*")}
    # a load appends one article: only the last shard (now 3 of 2 -> a fourth) is built
    store.con.execute(
        "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
        " first_seen_at, loaded_at, word_count, extraction_status)"
        " values (?, ?, 'run2', 'u9', 'u9', 't9', 'tulips in the volcano garden', ?, ?, 5, 'ok')",
        ["9" * 32, fid, NOW, NOW + timedelta(hours=1)],
    )
    assert search.stale(store.con, size=2) and search.unindexed_articles(store.con, size=2) == 1
    search.refresh(store.con, size=2)
    after = {p.name: p.stat().st_mtime_ns for p in store.lake.search_path.glob("shard-*")}
    assert {k for k in after if after[k] != before.get(k)} == {"shard-v5-00003.duckdb"}
    assert "9" * 32 in [h.article_id for h in search.search(store.con, "tulips")]
    # an article whose text changed (a page that arrived later) rebuilds its own shard
    store.con.execute("update articles set text = 'gardens of orchids' where article_id = ?",
                      [f"{0:032x}"])  # fmt: skip
    assert not search.stale(store.con, size=2)  # same count, same times: only the load knows
    search.refresh(store.con, size=2, changed=[f"{0:032x}"])
    assert [h.article_id for h in search.search(store.con, "orchids")] == [f"{0:032x}"]
    again = {p.name: p.stat().st_mtime_ns for p in store.lake.search_path.glob("shard-*")}
    assert {k for k in again if again[k] != after[k]} == {"shard-v5-00000.duckdb"}


def test_maintenance_merges_sealed_shards_into_segments_that_search_reads_as_one_index(store):
    """Size-tiered merging: aligned blocks of sealed shards become one file; a search over
    segments ranks as over one index; a text that changes later is served from its shard's own
    new file and the segment skips its old document; the next merge folds it back in."""
    fid = add_feed(store.con, "https://s.example/feed")
    texts = ["volcano erupts near the coast", "central bank raises interest rate",
             "volcano ash closes airports", "election results are in",
             "storm hits the coast", "bank shares fall after the rate decision",
             "coast guard rescues sailors", "rate cut expected", "volcano quiet again"]  # fmt: skip
    for i, text in enumerate(texts):
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
            " first_seen_at, loaded_at, word_count, extraction_status)"
            " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, 5, 'ok')",
            [f"{i:032x}", fid, f"u{i}", f"u{i}", f"t{i}", text, NOW, NOW + timedelta(minutes=i)],
        )
    query = "volcano coast rate"
    search.refresh(store.con, size=100)
    one = {h.article_id: round(h.score, 9) for h in search.search(store.con, query, limit=20)}
    search.rebuild_index(store.con, size=2)  # shards 0-3 full, 4 holds the ninth article
    assert search.compact(store.con, size=2, blocks=(4, 2)) == ["segment-v5-00000-00003.duckdb"]
    names = sorted(p.name for p in store.lake.search_path.glob("*.duckdb"))
    assert names == ["segment-v5-00000-00003.duckdb", "shard-v5-00004.duckdb"]
    assert store.search_files() == 2 and not search.stale(store.con, size=2)
    merged = {h.article_id: round(h.score, 9) for h in search.search(store.con, query, limit=20)}
    assert merged == one and len(one) == 8
    assert search.compact(store.con, size=2, blocks=(4, 2)) == []  # nothing new to merge
    # article 0 gets a new text: its shard gets a file of its own again, the segment skips it
    store.con.execute("update articles set text = 'gardens of orchids' where article_id = ?",
                      [f"{0:032x}"])  # fmt: skip
    search.refresh(store.con, size=2, changed=[f"{0:032x}"])
    assert store.search_files() == 3
    assert [h.article_id for h in search.search(store.con, "orchids")] == [f"{0:032x}"]
    assert f"{0:032x}" not in {h.article_id for h in search.search(store.con, "erupts coast")}
    hits = [h.article_id for h in search.search(store.con, query, limit=20)]
    assert len(hits) == len(set(hits)) == 7  # no article twice, the old text of 0 is gone
    hits = [h.article_id for h in search.search(store.con, query, limit=20, since=NOW)]
    assert len(hits) == len(set(hits)) == 7  # the filtered path skips it too
    # the next merge folds the shard back into its segment, and its file goes
    assert search.compact(store.con, size=2, blocks=(4, 2)) == ["segment-v5-00000-00003.duckdb"]
    assert sorted(p.name for p in store.lake.search_path.glob("*.duckdb")) == names
    assert [h.article_id for h in search.search(store.con, "orchids")] == [f"{0:032x}"]


def test_search_reads_the_leads_of_its_best_hits_only_and_keeps_ties_in_time_order(store):
    """A search scores every match by its integer id and reads titles and leads of the best
    only (by row number in each file's meta, checked by name): equal scores are ordered newest
    first across shards, and a meta in another order than the index is read by name."""
    fid = add_feed(store.con, "https://s.example/feed")
    for i in range(16):  # eight copies of one text (one score, eight times), eight others
        text = "volcano near the coast" if i % 2 == 0 else "harbour closed for the storm"
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
            " published_at, first_seen_at, loaded_at, word_count, extraction_status)"
            " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, ?, 4, 'ok')",
            [f"{i:032x}", fid, f"u{i}", f"u{i}", f"t{i}", text,
             NOW - timedelta(hours=(5 * i) % 16), NOW, NOW],
        )  # fmt: skip
    search.rebuild_index(store.con, size=6)  # three shards
    newest = sorted(range(0, 16, 2), key=lambda i: (5 * i) % 16)[:3]

    def hits():
        return [(h.article_id, h.title, h.snippet) for h in search.search(store.con, "volcano",
                                                                        limit=3)]  # fmt: skip

    first = hits()
    assert first == [(f"{i:032x}", f"t{i}", "volcano near the coast") for i in newest]
    for path in store.lake.search_path.glob("shard-*.duckdb"):
        with duckdb.connect(str(path)) as con:
            con.execute("create or replace table meta as select * from meta order by title desc")
    assert hits() == first


def test_search_files_of_an_older_version_are_rebuilt_not_read(store):
    fid = add_feed(store.con, "https://s.example/feed")
    store.con.execute(
        "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
        " first_seen_at, loaded_at, word_count, extraction_status)"
        " values (?, ?, 'run', 'u', 'u', 't', 'volcano erupts', ?, ?, 2, 'ok')",
        ["0" * 32, fid, NOW, NOW],
    )
    search.refresh(store.con)
    folder = store.lake.search_path
    [current] = [p.name for p in folder.glob("*.duckdb")]
    old = current.replace(search.SHARD_FILE.split("-")[1], "v1")  # e.g. shard-v1-00000.duckdb
    (folder / current).rename(folder / old)
    store.con.execute("update search_index_state set file = ?", [old])
    assert search.stale(store.con)
    search.refresh(store.con)
    assert sorted(p.name for p in folder.glob("*.duckdb")) == [current]
    assert [h.article_id for h in search.search(store.con, "volcano")] == ["0" * 32]


@pytest.mark.parametrize(
    ("query", "words", "required", "excluded", "phrases"),
    [
        ("boat strike", ["boat", "strike"], [], [], []),
        ('"boat strike"', ["boat", "strike"], ["boat", "strike"], [], [["boat", "strike"]]),
        ("boat AND NOT venezuela", ["boat"], ["boat"], ["venezuela"], []),
        ("boat -venezuela", ["boat"], [], ["venezuela"], []),
        ("+boat festival", ["boat", "festival"], ["boat"], [], []),
        ("boat AND festival OR light", ["boat", "festival", "light"], ["boat", "festival"], [], []),
        ("boat and festival", ["boat", "and", "festival"], [], [], []),  # lower case: words
        ('NOT "boat strike" coast', ["coast"], [], ["boat", "strike"], []),
        ("covid-19", ["covid", "19"], [], [], []),
    ],
)  # fmt: skip
def test_the_search_syntax_means_what_it_means_everywhere(
    query, words, required, excluded, phrases
):
    q = search.parse_query(query)
    assert (q.words, q.required, q.excluded, q.phrases) == (words, required, excluded, phrases)


@pytest.mark.parametrize("query", ["NOT boat", "-boat", "AND OR", '""'])
def test_a_query_with_nothing_to_look_for_is_refused_naming_it(query):
    with pytest.raises(ValueError, match="has no word to look for"):
        search.parse_query(query)


@pytest.mark.parametrize("merged", [False, True])
def test_phrases_required_and_excluded_words_filter_the_ranking(store, merged):
    fid = add_feed(store.con, "https://s.example/feed")
    texts = ["a boat strike in the caribbean", "a strike on a boat at sea",
             "the boat festival of lights", "a general strike closes the port",
             "boat sinks near the coast", "coast guard and the strike"]  # fmt: skip
    for i, text in enumerate(texts):
        store.con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
            " first_seen_at, loaded_at, word_count, extraction_status)"
            " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, 5, 'ok')",
            [f"{i:032x}", fid, f"u{i}", f"u{i}", f"t{i}", text, NOW, NOW + timedelta(minutes=i)],
        )
    search.rebuild_index(store.con, size=2)
    if merged:
        search.compact(store.con, size=2, blocks=(2,))

    def found(query, **kw):
        return {int(h.article_id, 16) for h in search.search(store.con, query, limit=10, **kw)}

    for kw in ({}, {"since": NOW}):  # the unfiltered path and the filtered one
        assert found("boat strike", **kw) == {0, 1, 2, 3, 4, 5}
        assert found('"boat strike"', **kw) == {0}
        assert found('"strike on a boat"', **kw) == {1}
        assert found("boat AND strike", **kw) == {0, 1}
        assert found("+boat strike", **kw) == {0, 1, 2, 4}
        assert found("boat AND NOT strike", **kw) == {2, 4}
        assert found("boat -strike -coast", **kw) == {2}
        assert found("strike -boat", **kw) == {3, 5}
        assert found("the AND boat", **kw) == {0, 1, 2, 4}  # a stopword requires nothing
        assert found("boat AND xylophone", **kw) == set()
