"""Retagging in the database: which stored articles to tag again, and replacing one tagger's
rows for a batch of them in one transaction (``newsflow retag``, run/retag.py drives it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from newsflow.db import entities as entity_db
from newsflow.db import entity_counts
from newsflow.db import places as places_db
from newsflow.db.engine import arrow, drop_temp, one, transaction
from newsflow.rows import ENTITY_TAGGER_NAMES, TAG_SCHEMAS, TAG_TABLES, columns, tagger_name

__all__ = ["count_taggable", "replace_tags", "taggable_articles"]


def replace_tags(
    con: duckdb.DuckDBPyConnection,
    article_ids: Sequence[str],
    rows: dict[str, list[dict]],
    kinds: Sequence[str],
) -> dict[str, int]:
    """Replace the tag rows of ``kinds`` ('entities', 'topics') for these articles, in one
    transaction: only the rows of the taggers that produced ``rows`` are removed (by tagger
    name, any version), plus the status rows of those kinds. Returns rows removed per kind."""
    ids = list(article_ids)
    removed: dict[str, int] = {}
    try:
        with transaction(con):
            with arrow(con, "retag_batch", article_id=ids):
                con.execute(
                    "create or replace temp table retag_ids as select article_id from retag_batch"
                )
            in_batch = "article_id in (select article_id from retag_ids)"
            for kind in kinds:
                names = {
                    tagger_name(r["tagger"])
                    for r in rows.get("tagging", [])
                    if r["kind"] == kind and r["tagger"]
                }
                if kind == "entities" and names:  # a model now, or none any more: either replaces
                    names |= set(ENTITY_TAGGER_NAMES)
                taggers = sorted(names)
                table = TAG_TABLES[kind]
                by_taggers = (
                    f"{in_batch} and split_part(tagger, '/', 1) in (select unnest(?::varchar[]))"
                )
                if kind == "entities":  # what they counted, for assign to take away
                    entity_counts.note_removed(con, by_taggers, [taggers])
                removed[kind] = one(
                    con.execute(f"delete from {table} where {by_taggers}", [taggers])
                )[0]
                con.execute(f"delete from article_tagging where {in_batch} and kind = ?", [kind])
            if "topics" in kinds:
                con.execute(f"delete from article_categories where {in_batch}")
            write = list(kinds) + ["tagging"] + (["categories"] if "topics" in kinds else [])
            for kind in write:
                kind_rows = rows.get(kind, [])
                if kind == "tagging":
                    kind_rows = [r for r in kind_rows if r["kind"] in kinds]
                if not kind_rows:
                    continue
                table = pa.Table.from_pylist(kind_rows, schema=TAG_SCHEMAS[kind])
                con.register("new_tag_rows", table)
                try:
                    if kind == "entities":  # with the article's day (migration 013)
                        entity_db.insert_rows(con, "new_tag_rows", list(TAG_SCHEMAS[kind].names))
                        continue
                    cols = columns(TAG_SCHEMAS[kind])
                    con.execute(
                        f"insert into {TAG_TABLES[kind]} ({cols}) select {cols} from new_tag_rows"
                    )
                finally:
                    con.unregister("new_tag_rows")
            if "entities" in kinds:
                places_db.locate(con, ids)
                entity_db.assign(con, ids)
                places_db.link(con, ids)
    finally:
        drop_temp(con, "retag_ids", "removed_entity_rows")
    return removed


def _taggable_where(since: datetime | None, untagged: Sequence[str] | None) -> tuple[str, list]:
    conds: list[str] = []
    params: list[object] = []
    if since is not None:
        conds.append("coalesce(a.published_at, a.first_seen_at) >= ?")
        params.append(since)
    if untagged:
        conds.append(
            "(select count(distinct t.kind) from article_tagging t"
            " where t.article_id = a.article_id and t.kind in (select unnest(?::varchar[])))"
            " < ?"
        )
        params += [list(untagged), len(untagged)]
    return (" and ".join(conds) or "true"), params


def count_taggable(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None = None,
    untagged: Sequence[str] | None = None,
) -> int:
    where, params = _taggable_where(since, untagged)
    sql = f"select count(*) from articles a where {where}"
    return one(con.execute(sql, params))[0]


def taggable_articles(
    con: duckdb.DuckDBPyConnection,
    since: datetime | None,
    after: str,
    limit: int,
    untagged: Sequence[str] | None = None,
) -> list[dict]:
    """The next ``limit`` articles (by article_id, after ``after``) to tag."""
    where, params = _taggable_where(since, untagged)
    cur = con.execute(
        f"select a.article_id, a.title, a.text, a.language, a.feed_categories"
        f" from articles a where a.article_id > ? and {where}"
        f" order by a.article_id limit ?",
        [after, *params, limit],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]
