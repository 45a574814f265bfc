"""Full-text search: a BM25 index over article titles and texts with DuckDB's ``fts`` extension.

The extension comes from the PyPI wheel ``duckdb-extension-fts`` (pinned to duckdb's version)
and is loaded from that wheel's file: never downloaded at run time, and the store turns DuckDB's
auto-install off, so a missing extension fails at once with a message saying which package to
install. DuckDB's fts index cannot be updated in place, so ``rebuild_index`` rebuilds it, at
about 0.5 ms per article (benchmarks/search.py). The ingest load rebuilds it after each run
that added articles while the database holds at most ``search_rebuild_max_articles``; beyond
that the daily maintenance rebuilds it, and a search says how many newer articles it misses.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from newsflow.db.engine import rollback, sql_dir

INDEX_SCHEMA = "fts_main_articles"


class SearchUnavailable(RuntimeError):
    """The fts extension cannot be loaded; the message says how to fix it."""


def extension_path() -> Path:
    try:
        import duckdb_extension_fts
    except ImportError:
        raise SearchUnavailable(
            "full-text search needs the package duckdb-extension-fts==1.5.5 "
            "(pip install duckdb-extension-fts==1.5.5)"
        ) from None
    root = Path(duckdb_extension_fts.__file__).parent / "extensions"
    want = f"v{duckdb.__version__}"
    found = sorted(root.glob("*/fts.duckdb_extension"))
    for path in found:
        if path.parent.name == want:
            return path
    raise SearchUnavailable(
        f"duckdb-extension-fts has no build for duckdb {duckdb.__version__} "
        f"(found {[p.parent.name for p in found]}); install the matching version"
    )


def load_extension(con: duckdb.DuckDBPyConnection) -> None:
    path = extension_path()
    try:
        con.execute(f"load '{_sql_string(str(path))}'")
    except duckdb.Error as exc:
        raise SearchUnavailable(f"cannot load the fts extension from {path}: {exc}") from None


def _sql_string(value: str) -> str:
    return value.replace("'", "''")


def index_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.schemata where schema_name = ?",
            [INDEX_SCHEMA],
        ).fetchone()[0]
    )


def rebuild_index(con: duckdb.DuckDBPyConnection) -> float:
    """Rebuild the BM25 index over articles(title, text); returns the seconds it took.
    Records when it was built, so a search can say how many newer articles it does not see."""
    started = time.perf_counter()
    load_extension(con)
    built_at = con.execute("select now()").fetchone()[0]
    con.execute(
        "pragma create_fts_index('articles', 'article_id', 'title', 'text', "
        "stemmer = 'porter', stopwords = 'english', ignore = '(\\.|[^a-z])+', "
        "strip_accents = 1, lower = 1, overwrite = 1)"
    )
    # The index's postings come out in no order, so every query scanned all of them. Sorted by
    # term, a query reads the few row groups of its terms: at 1M news-length articles, a search
    # takes 0.2-0.3 s instead of 1.5-1.9 s, for 10% more build time (benchmarks/scale.py).
    con.execute(
        f"create or replace table {INDEX_SCHEMA}.terms as"
        f" select * from {INDEX_SCHEMA}.terms order by termid, docid"
    )
    con.execute("delete from search_index_state")
    con.execute(
        "insert into search_index_state select ?, count(*) from articles where loaded_at <= ?",
        [built_at, built_at],
    )
    return time.perf_counter() - started


def unindexed_articles(con: duckdb.DuckDBPyConnection) -> int:
    """Articles loaded after the index was last built (search does not see them yet)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_name = 'search_index_state'"
    ).fetchone()[0]
    if not exists:
        return con.execute("select count(*) from articles").fetchone()[0]
    return con.execute(
        "select count(*) from articles where loaded_at > (select max(built_at) from"
        " search_index_state)"
    ).fetchone()[0]


def refresh(con: duckdb.DuckDBPyConnection, max_articles: int | None = None) -> float | None:
    """Rebuild the full-text index and the derived tables, in one transaction (a process killed
    mid-rebuild leaves the old index, not half a new one); seconds taken, or None when the
    database holds more than ``max_articles`` (rebuilding is then left to maintenance)."""
    if max_articles is not None:
        count = con.execute("select count(*) from articles").fetchone()[0]
        if count > max_articles:
            return None
    con.execute("begin")
    try:
        seconds = rebuild_index(con)
        started = time.perf_counter()
        rebuild_derived(con)
        seconds += time.perf_counter() - started
        con.execute("commit")
    except BaseException:
        rollback(con)
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
    return not index_exists(con) or unindexed_articles(con) > 0


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
    if not index_exists(con):
        raise SearchUnavailable(
            "the database has no search index yet; run `newsflow ingest` (it builds it after "
            "each load) or `newsflow search --rebuild`"
        )
    where, params = ["score is not null"], [query]
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
    # The best `limit` first, from the narrow columns; titles and texts of those only.
    rows = con.execute(
        f"""
        with ranked as (
            select a.article_id, s.score,
                   coalesce(a.published_at, a.first_seen_at) as published_at
            from (select article_id, {INDEX_SCHEMA}.match_bm25(article_id, ?) as score
                  from articles) s
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
