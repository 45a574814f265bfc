"""Full-text search: a BM25 index over article titles and texts with DuckDB's ``fts`` extension.

The extension comes from the PyPI wheel ``duckdb-extension-fts`` (pinned to duckdb's version)
and is loaded from that wheel's file, never downloaded. Its index cannot live in the lake
(DuckLake tables take no fts index) nor be updated in place, so it is a DuckDB file of its own
beside the catalog (``LakeLocation.search_path``): a rebuild writes a new file from the lake's
snapshot and renames it into place, and a search attaches the file read-only, so readers never
wait for a rebuild. Searching does not use the extension's ``match_bm25`` macro (its body names
the catalog it was built in): ``search`` scores BM25 (k1 = 1.2, b = 0.75, as the macro) over the
index's tables itself. A rebuild costs about 0.5 ms per article (benchmarks/search.py); the
ingest load rebuilds after each run that added articles while the store holds at most
``search_rebuild_max_articles``; beyond that the daily maintenance does, and a search says how
many newer articles it misses.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from newsflow.db.engine import (
    StoreError,
    lake_of,
    load_for,
    rollback,
    sql_dir,
    sql_string,
)

INDEX_FILE = "index.duckdb"
INDEX_SCHEMA = "fts_main_docs"
# What the tokenizer drops (dots and anything not a letter, after lower-casing and accents):
# the index is built with it and a query is split with it.
IGNORE = r"(\.|[^a-z])+"
_counter = itertools.count(1)


class SearchUnavailable(StoreError):
    """The fts extension cannot be loaded or there is no index; the message says how to fix it."""


def load_extension(con: duckdb.DuckDBPyConnection) -> None:
    try:
        load_for(con, "fts")
    except StoreError as exc:
        raise SearchUnavailable(
            f"{exc}; full-text search needs the package duckdb-extension-fts=={duckdb.__version__}"
        ) from None


def index_path(con: duckdb.DuckDBPyConnection) -> Path:
    return lake_of(con).search_path / INDEX_FILE


def index_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return index_path(con).exists()


def build_index(con: duckdb.DuckDBPyConnection) -> tuple[Path, datetime, float]:
    """Write a new index of the articles the connection sees into a file beside the current
    one: (its path, the time of the snapshot it indexes, seconds taken). ``install_index``
    puts it in place."""
    started = time.perf_counter()
    load_extension(con)
    final = index_path(con)
    final.parent.mkdir(parents=True, exist_ok=True)
    building = final.with_name(f".{final.stem}-{os.getpid()}-{next(_counter)}.building.duckdb")
    building.unlink(missing_ok=True)
    alias = f"search_build_{os.getpid()}_{next(_counter)}"
    built_at = con.execute("select now()").fetchone()[0]
    con.execute(f"attach '{sql_string(str(building))}' as {alias}")
    try:
        con.execute(
            f"create table {alias}.main.docs as select article_id, title, text from articles"
            f" where loaded_at <= ?",
            [built_at],
        )
        con.execute(
            f"pragma create_fts_index('{alias}.main.docs', 'article_id', 'title', 'text', "
            f"stemmer = 'porter', stopwords = 'english', ignore = '{IGNORE}', "
            "strip_accents = 1, lower = 1, overwrite = 1)"
        )
        # The index's postings come out in no order, so every query scanned all of them. Sorted
        # by term, a query reads the few row groups of its terms: at 1M news-length articles, a
        # search takes 0.2-0.3 s instead of 1.5-1.9 s, for 10% more build time.
        con.execute(
            f"create or replace table {alias}.{INDEX_SCHEMA}.terms as"
            f" select * from {alias}.{INDEX_SCHEMA}.terms order by termid, docid"
        )
        con.execute(f"drop table {alias}.main.docs")  # the texts stay in the lake
        con.execute(
            f"create table {alias}.main.built as select ?::timestamptz as built_at", [built_at]
        )
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {alias}")
        building.unlink(missing_ok=True)
        raise
    con.execute(f"detach {alias}")
    return building, built_at, time.perf_counter() - started


def install_index(con: duckdb.DuckDBPyConnection, building: Path) -> None:
    """Rename a built index into place: searches that have the old one open keep reading it."""
    os.replace(building, index_path(con))
    building.with_name(building.name + ".wal").unlink(missing_ok=True)


def record_index(con: duckdb.DuckDBPyConnection, built_at: datetime) -> None:
    """Record (in the lake) when the index was built and how many articles it holds."""
    con.execute("delete from search_index_state")
    con.execute(
        "insert into search_index_state select ?, count(*) from articles where loaded_at <= ?",
        [built_at, built_at],
    )


def rebuild_index(con: duckdb.DuckDBPyConnection) -> float:
    """Rebuild the BM25 index over articles(title, text); returns the seconds it took.
    Records when it was built, so a search can say how many newer articles it does not see."""
    building, built_at, seconds = build_index(con)
    install_index(con, building)
    record_index(con, built_at)
    return seconds


def unindexed_articles(con: duckdb.DuckDBPyConnection) -> int:
    """Articles loaded after the index was last built (search does not see them yet)."""
    built = con.execute("select max(built_at) from search_index_state").fetchone()[0]
    if built is None or not index_exists(con):
        return con.execute("select count(*) from articles").fetchone()[0]
    return con.execute("select count(*) from articles where loaded_at > ?", [built]).fetchone()[0]


def refresh(con: duckdb.DuckDBPyConnection, max_articles: int | None = None) -> float | None:
    """Rebuild the full-text index and the derived tables; seconds taken, or None when the
    store holds more than ``max_articles`` (rebuilding is then left to maintenance). The new
    index is renamed into place before the lake records it, so a process killed in between
    leaves an index the lake calls stale (and the next load rebuilds), never the reverse."""
    if max_articles is not None:
        count = con.execute("select count(*) from articles").fetchone()[0]
        if count > max_articles:
            return None
    building, built_at, seconds = build_index(con)
    con.execute("begin")
    try:
        started = time.perf_counter()
        rebuild_derived(con)
        install_index(con, building)
        record_index(con, built_at)
        seconds += time.perf_counter() - started
        con.execute("commit")
    except BaseException:
        rollback(con)
        building.unlink(missing_ok=True)
        raise
    return seconds


def refresh_after_load(
    con: duckdb.DuckDBPyConnection, articles_loaded: int, max_articles: int | None = None
) -> float | None:
    """After a load: ``refresh`` when the load added articles, or when the index misses some (a
    process killed after its load committed, before it rebuilt the index; its retry loads
    nothing). Seconds, or None."""
    if not articles_loaded and not stale(con):
        return None
    return refresh(con, max_articles)


def stale(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether articles are missing from the search index (or there is none): e.g. a run
    loaded by a process that was killed before it rebuilt the index."""
    if not con.execute("select count(*) from articles").fetchone()[0]:
        return False
    return unindexed_articles(con) > 0


def rebuild_derived(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute the tables derived from all articles that are too costly to compute at query
    time (``sql/derived/``: the entity pairs). Runs with the search index rebuild."""
    for path in sorted((sql_dir() / "derived").glob("*.sql")):
        con.execute(f"create or replace table {path.stem} as {path.read_text(encoding='utf-8')}")


@dataclass
class Hit:
    article_id: str
    score: float
    title: str | None
    feed: str | None
    published_at: datetime | None
    url: str
    snippet: str


def search(
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    since: datetime | None = None,
    entity: str | None = None,
    limit: int = 10,
) -> list[Hit]:
    """Articles ranked by BM25 for ``query``; optionally published since a date and naming an
    entity (its normalised name, any case)."""
    if not query.strip():
        raise ValueError("the search query is empty")
    load_extension(con)
    path = index_path(con)
    if not path.exists():
        raise SearchUnavailable(
            "the database has no search index yet; run `newsflow ingest` (it builds it after "
            "each load) or `newsflow search --rebuild`"
        )
    alias = f"search_{os.getpid()}_{next(_counter)}"
    con.execute(f"attach '{sql_string(str(path))}' as {alias} (read_only)")
    try:
        return ranked(con, f"{alias}.{INDEX_SCHEMA}", query, since, entity, limit)
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {alias}")


def ranked(con, fts: str, query: str, since, entity, limit) -> list[Hit]:
    """BM25 over the fts index schema ``fts`` (any connection whose default catalog has the
    articles and feeds: the lake, or a DuckDB file with the index built in it)."""
    where, params = ["true"], [query]
    if since is not None:
        where.append("coalesce(a.published_at, a.first_seen_at) >= ?")
        params.append(since)
    if entity:
        where.append(
            "exists (select 1 from article_entities e where e.article_id = a.article_id"
            " and lower(e.entity) = lower(?))"
        )
        params.append(entity)
    params.append(limit)
    # BM25 over the index's postings of the query's terms; the best `limit` first, from the
    # narrow columns; titles and texts of those only.
    rows = con.execute(
        f"""
        with tokens as (
            select distinct stem(unnest(string_split_regex(regexp_replace(
                lower(strip_accents(?::varchar)), '{IGNORE}', ' ', 'g'), '\\s+')), 'porter') as t
        ),
        qterms as (
            select p.docid, p.termid, d.df
            from {fts}.terms p join {fts}.dict d using (termid) join tokens on d.term = tokens.t
        ),
        tf as (select docid, termid, any_value(df) as df, count(*) as tf from qterms group by all),
        scores as (
            select docs.name as article_id,
                   sum(log(((st.num_docs - tf.df + 0.5) / (tf.df + 0.5)) + 1)
                       * (tf.tf * 2.2) / (tf.tf + 1.2 * (0.25 + 0.75 * docs.len / st.avgdl)))
                   as score
            from tf join {fts}.docs docs using (docid), {fts}.stats st
            group by docs.name
        ),
        ranked as (
            select a.article_id, s.score,
                   coalesce(a.published_at, a.first_seen_at) as published_at
            from scores s
            join articles a using (article_id)
            where {" and ".join(where)}
            order by s.score desc, published_at desc nulls last
            limit ?
        )
        select r.article_id, r.score, a.title, f.title as feed, r.published_at, a.url, a.text
        from ranked r
        join articles a using (article_id)
        left join feeds f using (feed_id)
        order by r.score desc, r.published_at desc nulls last
        """,
        params,
    ).fetchall()
    return [
        Hit(r[0], r[1], r[2], r[3], r[4], r[5], snippet(r[6] or r[2] or "", query)) for r in rows
    ]


def snippet(text: str, query: str, width: int = 220) -> str:
    """The passage of ``text`` around the first query word it contains."""
    flat = " ".join(text.split())
    words = [w for w in re.findall(r"\w+", query.lower()) if len(w) > 2] or [query.lower()]
    low = flat.lower()
    positions = [low.find(w) for w in words if low.find(w) >= 0]
    if not positions:
        return flat[:width] + ("…" if len(flat) > width else "")
    start = max(0, min(positions) - width // 3)
    start = flat.rfind(" ", 0, start) + 1 if start else 0
    end = min(len(flat), start + width)
    return ("…" if start else "") + flat[start:end].strip() + ("…" if end < len(flat) else "")
