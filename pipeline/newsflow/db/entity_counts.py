"""The counts identity reads, kept by each load (migration 015): ``entity_key_counts`` (per
key, spelling and label: articles, mentions, first and last day) and the counts of
``entities``. A load moves them by what its articles' rows add and what the rows it replaced
took away (``note_removed``), touching the keys and entities it named only; maintenance counts
them afresh (``count_keys``; ``entities._refresh``). ``newsflow.db.entities`` decides identity
with them.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter

import duckdb
import pyarrow as pa

from newsflow.db.engine import arrow, drop_temp, one
from newsflow.enrich import identity, places

__all__ = [
    "count_keys",
    "described",
    "has_counts",
    "has_table",
    "note_removed",
    "stats",
    "summaries",
]

SEEN = "coalesce(a.published_at, a.first_seen_at)"
DAY = f"cast(timezone('UTC', {SEEN}) as date)"


NAME_KEY = (
    "trim(regexp_replace(regexp_replace(lower(strip_accents(entity)), '[.''’]', '', 'g'),"
    " '[^a-z0-9]+', ' ', 'g'))"
)


def count_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Count every key afresh into ``entity_key_counts`` (migration 015; maintenance)."""
    con.execute("delete from entity_key_counts")
    # Per article first, then per key: two plain aggregates spill to disk under a memory
    # limit, where a count(distinct) holds every key's set of articles in memory.
    con.execute(
        "insert into entity_key_counts select entity_key, entity, label,"
        f" case when entity_key like '{identity.PLACE_KEY_PREFIX}%' then {NAME_KEY} end,"
        " count(*), sum(mentions), min(first_day), max(last_day)"
        " from (select entity_key, entity, label, article_id, sum(mentions) as mentions,"
        " min(day) as first_day, max(day) as last_day from article_entities"
        " where entity_key is not null group by all)"
        " group by entity_key, entity, label"
    )


def has_counts(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether migration 015 made ``entity_key_counts`` (011 and 012 resolve before it)."""
    return has_table(con, "entity_key_counts")


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        one(
            con.execute(
                "select count(*) from ducklake_table_info(current_database()) where table_name = ?",
                [table],
            )
        )[0]
    )


def stats(con: duckdb.DuckDBPyConnection, keys: Sequence[str] | None) -> dict:
    """Corpus counts per key (of ``keys``, or all), from ``entity_key_counts``; a store
    before migration 015 counts its rows."""
    counted = has_counts(con)
    if counted:
        sql = (
            "select entity_key, entity, label, articles, mentions, first_day, last_day"
            " from entity_key_counts where true {where}"
        )
    else:
        sql = (  # (migration 011 resolves before 013 gave the rows their day)
            "select e.entity_key, e.entity, e.label, count(distinct e.article_id),"
            f" sum(e.mentions), min({DAY}), max({DAY})"
            " from article_entities e join articles a using (article_id)"
            " where e.entity_key is not null {where} group by all"
        )
    if keys is None:
        rows = con.execute(sql.format(where="")).fetchall()
    else:
        with arrow(con, "wanted_keys", entity_key=list(keys)):
            rows = con.execute(
                sql.format(where="and entity_key in (select entity_key from wanted_keys)")
                if counted
                else sql.format(where="and e.entity_key in (select entity_key from wanted_keys)")
            ).fetchall()
    rows.sort(key=itemgetter(0))
    return {key: _key_stats(key, group) for key, group in groupby(rows, itemgetter(0))}


def summaries(con: duckdb.DuckDBPyConnection) -> dict[str, identity.KeySummary]:
    """Every key's ``KeyStats.summary()``, the rows read a batch at a time in key order, so
    that only the summaries are held (maintenance resolves the whole corpus's keys)."""
    if not has_counts(con):  # (the migrations that resolve before 015 counted their rows)
        return {k: s.summary() for k, s in stats(con, None).items()}
    rows = _batched(
        con,
        "select entity_key, entity, label, articles, mentions, first_day, last_day"
        " from entity_key_counts order by entity_key",
    )
    return {key: _key_stats(key, group).summary() for key, group in groupby(rows, itemgetter(0))}


def _key_stats(key: str, rows: Iterable[tuple]) -> identity.KeyStats:
    """One key's statistics from its rows (key, spelling, label, articles, mentions, first
    day, last day, and any more columns)."""
    s = identity.KeyStats(key)
    for _, name, label, articles, mentions, first, last, *_ in rows:
        s.add(name, label, articles, int(mentions or 0), first, last)
    return s


def _batched(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[tuple]:
    """The rows of ``sql``, fetched ``PAGE_ROWS`` at a time (no other statement may run on
    ``con`` meanwhile: it would close the result)."""
    cur = con.execute(sql)
    while batch := cur.fetchmany(PAGE_ROWS):
        yield from batch


def note_removed(con: duckdb.DuckDBPyConnection, where: str, params: Sequence = ()) -> None:
    """Before the entity rows ``where`` selects are deleted (a requeued page's old rows, a
    retag's): keep what they counted, for the ``assign`` that follows in the same transaction
    to take it away from their keys and entities."""
    con.execute(
        "create temp table if not exists removed_entity_rows as select entity_key, entity,"
        " label, entity_id, article_id, mentions from article_entities limit 0"
    )
    con.execute(
        "insert into removed_entity_rows select entity_key, entity, label, entity_id,"
        f" article_id, mentions from article_entities where {where}",
        list(params),
    )


def add_key_delta(con: duckdb.DuckDBPyConnection, scope: str) -> None:
    """``entity_key_counts`` += the counts of these articles' rows − those of the removed
    rows, per key, spelling and label (the rows of the touched keys only are rewritten)."""
    con.execute(
        f"""
        create or replace temp table key_delta as
        select entity_key, entity, label, sum(articles) as articles, sum(mentions) as mentions,
               min(first_day) as first_day, max(last_day) as last_day
        from (
            select entity_key, entity, label, count(distinct article_id) as articles,
                   sum(mentions) as mentions, min(day) as first_day, max(day) as last_day
            from article_entities where entity_key is not null {scope} group by all
            union all
            select entity_key, entity, label, -count(distinct article_id), -sum(mentions),
                   null, null
            from removed_entity_rows where entity_key is not null group by all
        ) group by all
        """
    )
    con.execute(
        f"""
        create or replace temp table key_counts_now as
        select d.entity_key, d.entity, d.label,
               case when d.entity_key like '{identity.PLACE_KEY_PREFIX}%'
                    then {NAME_KEY.replace("entity", "d.entity")} end as name_key,
               coalesce(c.articles, 0) + d.articles as articles,
               coalesce(c.mentions, 0) + d.mentions as mentions,
               least(c.first_day, d.first_day) as first_day,
               greatest(c.last_day, d.last_day) as last_day
        from key_delta d left join entity_key_counts c
          on c.entity_key = d.entity_key and c.entity = d.entity and c.label = d.label
        """
    )
    try:
        con.execute(
            "delete from entity_key_counts where entity_key in (select entity_key from key_delta)"
            " and (entity_key, entity, label) in (select (entity_key, entity, label)"
            " from key_delta)"
        )
        con.execute("insert into entity_key_counts select * from key_counts_now where articles > 0")
    finally:
        drop_temp(con, "key_counts_now")


def move_entities(con: duckdb.DuckDBPyConnection, scope: str, since: datetime | None) -> None:
    """The ``entities`` rows of the entities these articles' rows name or the removed rows
    named: their name, label and aliases from their keys' counts, their articles and mentions
    moved by the difference, their first and last sighting widened by these articles'."""
    bound = "" if since is None else " and first_seen_at >= ?"
    con.execute(
        f"""
        create or replace temp table entity_delta as
        select entity_id, sum(articles) as articles, sum(mentions) as mentions,
               min(first_seen) as first_seen, max(last_seen) as last_seen
        from (
            select entity_id, count(distinct article_id) as articles,
                   sum(mentions) as mentions, min(a.seen) as first_seen,
                   max(a.seen) as last_seen
            from article_entities join (
                select article_id, {SEEN.replace("a.", "")} as seen from articles
                where article_id in (select article_id from assigned_ids){bound}
            ) a using (article_id)
            where entity_id is not null {scope}
            group by 1
            union all
            select entity_id, -count(distinct article_id), -sum(mentions), null, null
            from removed_entity_rows where entity_id is not null group by 1
        ) group by 1
        """,
        [] if since is None else [since],
    )
    members = con.execute(
        "select entity_id, entity_key, resolved_by from entity_keys"
        " where entity_id in (select entity_id from entity_delta)"
    ).fetchall()
    with described(con, members):
        con.execute(
            """
            create or replace temp table entities_now as
            select d.entity_id, n.entity_name, n.label, n.aliases,
                   least(o.first_seen_at, d.first_seen) as first_seen_at,
                   greatest(o.last_seen_at, d.last_seen) as last_seen_at,
                   coalesce(o.articles, 0) + d.articles as articles,
                   coalesce(o.mentions, 0) + d.mentions as mentions
            from entity_delta d join entity_names n using (entity_id)
            left join entities o using (entity_id)
            """
        )
    try:
        con.execute("delete from entities where entity_id in (select entity_id from entity_delta)")
        con.execute("insert into entities select * from entities_now where articles > 0")
    finally:
        drop_temp(con, "entities_now")


@contextlib.contextmanager
def described(
    con: duckdb.DuckDBPyConnection, members: list[tuple[str, str, str]], every: bool = False
) -> Iterator[int]:
    """The name, label and aliases of each entity of ``members`` (entity_id, key,
    resolved_by; ``every`` key of the store), from its keys' counts, as the Arrow table
    ``entity_names`` (entity_id, entity_name, label, aliases) for the block; an entity none of
    whose keys is counted any more is left out (its rows are gone). Yields how many."""
    if every and has_counts(con):
        with _described_all(con) as n:
            yield n
        return
    keys_of: dict[str, list[str]] = defaultdict(list)
    how = {}
    for eid, key, resolved_by in members:
        keys_of[eid].append(key)
        how[key] = resolved_by
    counts = stats(con, None if every else [k for _, k, _ in members])
    out = _Described()
    for eid, keys in keys_of.items():
        out.add(eid, {k: counts[k] for k in keys if k in counts}, how)
    with arrow(con, "entity_names", **out.columns()):
        yield len(out.ids)


class _Described:
    """Entities' names, labels and aliases as ``described`` makes them, gathered as columns."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.names: list[str] = []
        self.labels: list[str] = []
        self.aliases: list[list[str]] = []

    def add(self, eid: str, counts: dict[str, identity.KeyStats], how: dict[str, str]) -> None:
        """The entity ``eid`` made of the keys ``counts`` holds (none: it is left out)."""
        if not counts:
            return
        # Its full name, not a commoner short form that joined it (identity.resolve's choice).
        rep = max(counts, key=lambda k: (how[k] == "name", counts[k].articles, len(k), k))
        name, label, other = identity.entity_of(list(counts), counts, rep, place_name(rep))
        self.ids.append(eid)
        self.names.append(name)
        self.labels.append(label)
        self.aliases.append(other)

    def columns(self) -> dict:
        return {
            "entity_id": self.ids,
            "entity_name": self.names,
            "label": self.labels,
            "aliases": (self.aliases, pa.list_(pa.string())),
        }


PAGE_ROWS = 50_000  # key-count rows read at a time by the maintenance's batched paths
BATCH_ENTITIES = 20_000  # entities described per write


@contextlib.contextmanager
def _described_all(con: duckdb.DuckDBPyConnection) -> Iterator[int]:
    """``described`` for every entity of the store, as the temp table ``entity_names``: the
    keys' counts read in entity order a batch at a time, and written a batch of entities at a
    time, so that memory holds one batch, not the store's entities."""
    con.execute(
        "create or replace temp table entity_names"
        " (entity_id varchar, entity_name varchar, label varchar, aliases varchar[])"
    )
    total = 0

    def flush(out: _Described) -> _Described:
        nonlocal total
        if out.ids:
            with arrow(con, "described_batch", **out.columns()):
                con.execute("insert into entity_names select * from described_batch")
            total += len(out.ids)
        return _Described()

    # Numbered in entity order and read by number: a result being fetched would be closed by
    # the inserts in between.
    con.execute(
        "create or replace temp table entity_key_rows as select row_number() over"
        " (order by k.entity_id, k.entity_key) as n, k.entity_id, k.entity_key, c.entity,"
        " c.label, c.articles, c.mentions, c.first_day, c.last_day, k.resolved_by"
        " from entity_keys k"
        " join entity_key_counts c using (entity_key) order by n"
    )

    def rows() -> Iterator[tuple]:
        start, size = 0, PAGE_ROWS
        while page := con.execute(
            "select * exclude (n) from entity_key_rows where n > ? and n <= ? order by n",
            [start, start + size],
        ).fetchall():
            yield from page
            start += size

    try:
        out = _Described()
        for eid, members in groupby(rows(), itemgetter(0)):
            keys = [r[1:] for r in members]  # (key, spelling, ..., resolved_by)
            how = {r[0]: r[-1] for r in keys}
            out.add(eid, {k: _key_stats(k, g) for k, g in groupby(keys, itemgetter(0))}, how)
            if len(out.ids) >= BATCH_ENTITIES:
                out = flush(out)
        flush(out)
        yield total
    finally:
        drop_temp(con, "entity_names", "entity_key_rows")


def place_name(key: str) -> str | None:
    """A gazetteer place's own name ("United States" for the key of "U.S.")."""
    if not key.startswith(identity.PLACE_KEY_PREFIX):
        return None
    place = places.gazetteer().place(key)
    return place.name if place else None
