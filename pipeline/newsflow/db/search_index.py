"""The full-text index's files: shards built, refreshed after loads, merged into segments
(how and why: db/search.py's notes). Searching them is db/search.py."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from newsflow.db.engine import (
    StoreError,
    arrow,
    drop_temp,
    has_temp,
    lake_of,
    load_for,
    one,
    sql_dir,
    sql_string,
    transaction,
)
from newsflow.db.search_files import (
    SearchUnavailable,
    install,
    present,
    remove_others,
    stored_name,
)

SHARD_ARTICLES = 25_000
# v2: with the table `meta` (title, url, feed, time of each article), so that ranking needs
# nothing from the lake; v5: `meta` has each article's lead (its first LEAD_CHARS characters)
# and shard, so that an unfiltered search reads nothing from the lake at all (fetching the ten
# best texts from Parquet decompresses a column chunk per hit).
# Files of another version are stale, rebuilt by the next refresh.
SHARD_FILE = "shard-v5-{:05d}.duckdb"
SEGMENT_FILE = "segment-v5-{:05d}-{:05d}.duckdb"
_FILE_RANGE = re.compile(r"(?:shard|segment)-v5-(\d{5})(?:-(\d{5}))?\.duckdb")
LEAD_CHARS = 1000
PAIR_CHUNK_DAYS = 30  # days of articles whose entity pairs are counted at a time
# Block sizes of a segment, in shards, largest first: 64 shards are 1.6M articles.
SEGMENT_BLOCKS = (64, 16, 4)
INDEX_SCHEMA = "fts_main_docs"
# What the tokenizer drops (dots and anything not a letter, after lower-casing and accents):
# the index is built with it and a query is split with it.
IGNORE = r"(\.|[^a-z])+"
_counter = itertools.count(1)


def load_extension(con: duckdb.DuckDBPyConnection) -> None:
    try:
        load_for(con, "fts")
    except StoreError as exc:
        raise SearchUnavailable(
            f"{exc}; full-text search needs the package duckdb-extension-fts=={duckdb.__version__}"
        ) from None


def shard_path(con: duckdb.DuckDBPyConnection, shard: int) -> Path:
    return lake_of(con).search_path / SHARD_FILE.format(shard)


def file_range(name: str) -> tuple[int, int] | None:
    """The first and last shard a shard or segment file holds, from its name."""
    m = _FILE_RANGE.fullmatch(name)
    if not m:
        return None
    first = int(m.group(1))
    return first, int(m.group(2)) if m.group(2) else first


def _ranks(size: int) -> str:
    """Every article with its shard: its place in the order of loading, by ``size``."""
    return (
        "select article_id, loaded_at,"
        f" ((row_number() over (order by loaded_at, article_id)) - 1) // {int(size)} as shard"
        " from articles"
    )


@dataclass
class Shard:
    shard: int
    articles: int  # articles the lake has in it now
    last_loaded_at: datetime | None
    indexed: int  # articles its file holds (0: no file)
    stale: bool
    file: str | None = None  # the file holding its index: its own, or a segment
    built_at: datetime | None = None  # when that file was built


def shards(
    con: duckdb.DuckDBPyConnection,
    size: int = SHARD_ARTICLES,
    changed: Sequence[str] = (),
) -> list[Shard]:
    """Each shard as the lake has it and as its file holds it; stale when they differ, when the
    file is missing, or when it holds an article of ``changed`` (a new text, e.g. upgraded)."""
    now = con.execute(
        f"select shard, count(*), max(loaded_at) from ({_ranks(size)}) group by shard"
        " order by shard"
    ).fetchall()
    state = {
        r[0]: r[1:]
        for r in con.execute(
            "select shard, articles, last_loaded_at, coalesce(file, ''), built_at"
            " from search_index_state where shard is not null"
        ).fetchall()
    }
    lake = lake_of(con)
    there = present(lake)
    touched: set[int] = set()
    if changed:
        with arrow(con, "changed_ids", article_id=list(changed)):
            touched = {
                r[0]
                for r in con.execute(
                    f"select distinct shard from ({_ranks(size)})"
                    " where article_id in (select article_id from changed_ids)"
                ).fetchall()
            }
    found = []
    for shard, articles, last in now:
        have = state.get(shard)
        file = (have[2] or SHARD_FILE.format(shard)) if have else None
        # a file of another version (its name does not parse) is stale, whatever it holds
        built = have[3] if have else None
        exists = (
            file is not None
            and file_range(file) is not None
            and stored_name(lake, file, built) in there
        )
        indexed = have[0] if have and exists else 0
        stale = (
            have is None or not exists or tuple(have[:2]) != (articles, last) or shard in touched
        )
        found.append(Shard(shard, articles, last, indexed, stale, file if exists else None, built))
    return found


def _build_shard(
    con: duckdb.DuckDBPyConnection, shard: int, size: int, last: int | None = None
) -> Path:
    """Write the index of one shard (or of the segment of shards ``shard``..``last``) into a
    new file beside the one it replaces; its path."""
    last = shard if last is None else last
    name = SHARD_FILE.format(shard) if last == shard else SEGMENT_FILE.format(shard, last)
    final = lake_of(con).search_path / name
    final.parent.mkdir(parents=True, exist_ok=True)
    building = final.with_name(f".{final.stem}-{os.getpid()}-{next(_counter)}.building.duckdb")
    building.unlink(missing_ok=True)
    alias = f"search_build_{os.getpid()}_{next(_counter)}"
    con.execute(f"attach '{sql_string(str(building))}' as {alias}")
    try:
        con.execute(
            f"create table {alias}.main.docs as select a.article_id, a.title, a.text, a.url,"
            f" a.feed_id, coalesce(a.published_at, a.first_seen_at) as published,"
            f" r.shard"
            f" from articles a join ({_ranks(size)}) r using (article_id)"
            f" where r.shard between ? and ?",
            [shard, last],
        )
        con.execute(
            f"pragma create_fts_index('{alias}.main.docs', 'article_id', 'title', 'text', "
            f"stemmer = 'porter', stopwords = 'english', ignore = '{IGNORE}', "
            "strip_accents = 1, lower = 1, overwrite = 1)"
        )
        # The index's postings come out in no order, so every query scanned all of them. Sorted
        # by term, a query reads the few row groups of its terms.
        con.execute(
            f"create or replace table {alias}.{INDEX_SCHEMA}.terms as"
            f" select * from {alias}.{INDEX_SCHEMA}.terms order by termid, docid"
        )
        con.execute(
            f"create table {alias}.main.meta as"
            f" select article_id, title, url, feed_id, published, shard,"
            f" left(text, {LEAD_CHARS}) as lead"
            f" from {alias}.main.docs"
        )
        con.execute(f"drop table {alias}.main.docs")  # the texts stay in the lake
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute(f"detach {alias}")
        building.unlink(missing_ok=True)
        raise
    con.execute(f"detach {alias}")
    return building


def _install(
    con, built: dict[str, Path], assigned: dict[int, str], wanted: Iterable[Shard]
) -> set[str]:
    """Put built files in place (search_files.install: renamed into the folder, or uploaded
    to the bucket), record in the lake which file holds each shard and when it was built
    (``assigned``: the ones that changed; a fresh shard keeps its file and time, a stale one
    not rebuilt loses its row). The stored names of the files the lake names now: the caller
    deletes the others once this is committed (a search that read the state before the
    commit still finds the files it names)."""
    wanted = list(wanted)
    lake = lake_of(con)
    now = datetime.now(UTC)
    install(lake, built, now)
    con.execute("delete from search_index_state")
    keep = set()
    for s in wanted:
        file = assigned.get(s.shard) or (None if s.stale else s.file)
        if file:
            built_at = now if s.shard in assigned else s.built_at
            keep.add(stored_name(lake, file, built_at))
            con.execute(
                "insert into search_index_state (built_at, articles, shard, last_loaded_at, file)"
                " values (?, ?, ?, ?, ?)",
                [built_at, s.articles, s.shard, s.last_loaded_at, file],
            )
    return keep


def refresh(
    con: duckdb.DuckDBPyConnection,
    max_articles: int | None = None,
    *,
    changed: Sequence[str] = (),
    size: int = SHARD_ARTICLES,
) -> float | None:
    """Rebuild the stale search shards, and the derived tables while the store holds at most
    ``max_articles`` (None: always; they are computed over every article, so at scale they are
    left to maintenance). Seconds taken, or None when nothing was rebuilt because the stale
    shards hold more than ``max_articles`` (left to maintenance, as after a migration).
    Shard files are renamed into place before the lake records them, so a process killed in
    between leaves shards the lake calls stale (the next load rebuilds them), never the
    reverse."""
    started = time.perf_counter()
    load_extension(con)
    current = shards(con, size, changed)
    stale = [s for s in current if s.stale]
    total = sum(s.articles for s in current)
    if max_articles is not None and sum(s.articles for s in stale) > max_articles:
        return None
    built: dict[str, Path] = {}
    derive = max_articles is None or total <= max_articles
    try:
        for s in stale:
            built[SHARD_FILE.format(s.shard)] = _build_shard(con, s.shard, size)
        if derive:
            count_pair_parts(con)  # (before the transaction: see there)
        with transaction(con):
            if derive:
                rebuild_derived(con)
            assigned = {s.shard: SHARD_FILE.format(s.shard) for s in stale}
            keep = _install(con, built, assigned, current)
        remove_others(lake_of(con), keep)
    finally:
        drop_temp(con, "entity_pair_parts_all")
        for path in built.values():
            path.unlink(missing_ok=True)
    return time.perf_counter() - started


def compact(
    con: duckdb.DuckDBPyConnection,
    size: int = SHARD_ARTICLES,
    blocks: Sequence[int] = SEGMENT_BLOCKS,
) -> list[str]:
    """Merge sealed shards into segments (maintenance): every aligned block of ``blocks[i]``
    shards, all sealed (full, fresh, not the last shard) and not yet in one file of that
    size or larger, is indexed into one segment file. The names of the files built."""
    load_extension(con)
    current = shards(con, size)
    if not current:
        return []
    last = current[-1].shard
    sealed = {s.shard: s for s in current if not s.stale and s.shard < last and s.articles == size}

    def span(s: Shard) -> int:
        r = file_range(s.file or "")
        return r[1] - r[0] + 1 if r else 1

    plan: list[tuple[int, int]] = []
    taken: set[int] = set()
    for block in sorted(blocks, reverse=True):
        for first in range(0, last, block):
            members = range(first, first + block)
            if taken & set(members) or not all(k in sealed for k in members):
                continue
            taken |= set(members)
            if not all(span(sealed[k]) >= block for k in members):
                plan.append((first, first + block - 1))
    built: dict[str, Path] = {}
    assigned: dict[int, str] = {}
    try:
        for first, end in plan:
            name = SEGMENT_FILE.format(first, end)
            built[name] = _build_shard(con, first, size, end)
            assigned |= dict.fromkeys(range(first, end + 1), name)
        if built:
            with transaction(con):
                keep = _install(con, built, assigned, current)
            remove_others(lake_of(con), keep)
    finally:
        for path in built.values():
            path.unlink(missing_ok=True)
    return list(built)


def rebuild_index(con: duckdb.DuckDBPyConnection, size: int = SHARD_ARTICLES) -> float:
    """Rebuild every shard of the index (and the derived tables); seconds taken."""
    started = time.perf_counter()
    remove_others(lake_of(con), set())
    refresh(con, size=size)
    return time.perf_counter() - started


def unindexed_articles(con: duckdb.DuckDBPyConnection, size: int = SHARD_ARTICLES) -> int:
    """Articles the search does not see yet (loaded after their shard was last built)."""
    return sum(max(0, s.articles - s.indexed) for s in shards(con, size))


def refresh_after_load(
    con: duckdb.DuckDBPyConnection,
    articles_loaded: int,
    max_articles: int | None = None,
    changed: Sequence[str] = (),
) -> float | None:
    """After a load: ``refresh`` when the load added or changed articles, or when a shard is
    stale (a process killed after its load committed, before it rebuilt the index; its retry
    loads nothing). Seconds, or None."""
    if not articles_loaded and not changed and not stale(con):
        return None
    return refresh(con, max_articles, changed=changed)


def stale(con: duckdb.DuckDBPyConnection, size: int = SHARD_ARTICLES) -> bool:
    """Whether a shard misses articles or has none built (e.g. a run loaded by a process that
    was killed before it rebuilt the index)."""
    return any(s.stale for s in shards(con, size))


def files_opened(con: duckdb.DuckDBPyConnection) -> int:
    """How many files a search opens."""
    return one(
        con.execute("select count(distinct coalesce(file, shard::varchar)) from search_index_state")
    )[0]


def count_pair_parts(con: duckdb.DuckDBPyConnection, chunk_days: int = PAIR_CHUNK_DAYS) -> None:
    """The entity pairs' parts of all articles, counted ``chunk_days`` of articles at a time
    into the temp table ``entity_pair_parts_all`` (each count holds a month's articles in
    memory). Outside a transaction, so that the table spills to disk under a memory limit
    (a temp table's rows appended in an open transaction stay in memory)."""
    con.execute(
        "create or replace temp table entity_pair_parts_all"
        " (part varchar, id_a varchar, id_b varchar, articles bigint)"
    )
    first, last = one(con.execute("select min(day), max(day) from article_days"))
    while first is not None and first <= last:
        end = min(first + timedelta(days=chunk_days - 1), last)
        con.execute(
            "insert into entity_pair_parts_all select * from entity_pair_parts(?, ?)",
            [first, end],
        )
        first = end + timedelta(days=1)


def rebuild_derived(con: duckdb.DuckDBPyConnection, only: set[str] | None = None) -> None:
    """Recompute the tables derived from all articles that are too costly to compute at query
    time (``sql/derived/``: the entity pairs, summed from ``count_pair_parts``'s parts, counted
    here unless the caller counted them before its transaction; each feed's whole-history
    coverage), or ``only`` those named. Runs with the search index rebuild."""
    paths = [
        p for p in sorted((sql_dir() / "derived").glob("*.sql")) if only is None or p.stem in only
    ]
    try:
        if "entity_pairs" in {p.stem for p in paths} and not has_temp(con, "entity_pair_parts_all"):
            count_pair_parts(con)
        for path in paths:
            sql = path.read_text(encoding="utf-8")
            con.execute(f"create or replace table {path.stem} as {sql}")
    finally:
        drop_temp(con, "entity_pair_parts_all")
