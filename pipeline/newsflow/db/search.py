"""Full-text search: a BM25 index over article titles and texts with DuckDB's ``fts`` extension.

The extension comes from the PyPI wheel ``duckdb-extension-fts`` (pinned to duckdb's version)
and is loaded from that wheel's file, never downloaded. Its index cannot live in the lake
(DuckLake tables take no fts index) nor be updated in place, so it is a set of DuckDB files
beside the catalog (``LakeLocation.search_path``): **shards** of ``SHARD_ARTICLES`` articles
each, in the order they were loaded (``loaded_at``, then ``article_id``). A load appends to the
last shard only, so it rebuilds that one (at most ``SHARD_ARTICLES`` articles, about 0.7 ms
each): an article is searchable after the load that brought it, at any size. A shard is
rebuilt into a new file that is renamed into place, so a search holding the old one keeps
reading it; the lake's ``search_index_state`` records what each shard file holds.

Searching does not use the extension's ``match_bm25`` macro (its body names the catalog it was
built in): ``ranked`` scores BM25 (k1 = 1.2, b = 0.75, as the macro) over the shards' tables,
with the collection's statistics summed over all shards (documents, lengths, document
frequencies), so a score does not depend on which shard an article fell into.

A search costs about the same per file, so maintenance merges sealed shards into **segments**
(``compact``), size-tiered as in an LSM tree: each aligned block of 4, 16 or 64 sealed shards
becomes one file (``segment-v5-FIRST-LAST.duckdb``), so 1M articles are read from 6 files, not
40. Each shard's row in ``search_index_state`` names the file holding its index. A shard
rebuilt after it was merged (an upgraded text) gets its own file again; the segment then
skips that shard's documents (its statistics still count them until the next merge).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from dataclasses import dataclass
from datetime import datetime

import duckdb

from newsflow.db.engine import arrow, lake_of, one, sql_string
from newsflow.db.search_files import local_files
from newsflow.db.search_index import (  # noqa: F401 (the index API, as callers knew it)
    IGNORE,
    INDEX_SCHEMA,
    LEAD_CHARS,
    SEGMENT_BLOCKS,
    SEGMENT_FILE,
    SHARD_ARTICLES,
    SHARD_FILE,
    SearchUnavailable,
    Shard,
    compact,
    file_range,
    files_opened,
    load_extension,
    rebuild_derived,
    rebuild_index,
    refresh,
    refresh_after_load,
    shard_path,
    shards,
    stale,
    unindexed_articles,
)

_counter = itertools.count(1)  # names of the index files a search attaches


@dataclass
class Query:
    """A search query: its words (ranked by BM25, any of them), the words an article must have
    (``+word``, ``a AND b``, a phrase's words), those it must not (``-word``, ``NOT word``), and
    its quoted phrases (their words next to each other, in order)."""

    words: list[str]
    required: list[str]
    excluded: list[str]
    phrases: list[list[str]]

    @property
    def text(self) -> str:
        return " ".join(self.words)


_QUERY_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


def parse_query(query: str) -> Query:
    """The syntax of every search box: words rank (any of them); ``"a b"`` is a phrase;
    ``+word`` and ``a AND b`` require; ``-word`` and ``NOT word`` exclude; ``OR`` is what a
    space means already. Operators are upper-case (``and`` is a word, and a stopword)."""
    words: list[str] = []
    required: list[str] = []
    excluded: list[str] = []
    phrases: list[list[str]] = []
    negate = need_next = False
    last: list[str] = []  # the words of the previous term, for `a AND b`
    for m in _QUERY_TOKEN.finditer(query):
        phrase, token = m.group(1), m.group(2)
        if token in ("AND", "OR", "NOT"):
            if token == "NOT":
                negate = True
            elif token == "AND":
                required.extend(w for w in last if w not in required)
                need_next = True
            continue
        if phrase is not None:
            terms = re.findall(r"\w+", phrase.lower())
            if not terms:
                continue
        else:
            sign = token[0] if token[0] in "+-" and len(token) > 1 else ""
            terms = re.findall(r"\w+", (token[1:] if sign else token).lower())
            if not terms:
                continue
            negate = negate or sign == "-"
            need_next = need_next or sign == "+"
        if negate:
            excluded.extend(terms)
        else:
            words.extend(terms)
            if phrase is not None and len(terms) > 1:
                phrases.append(terms)
            if need_next or phrase is not None:
                required.extend(w for w in terms if w not in required)
        last = [] if negate else terms
        negate = need_next = False
    if not words:
        raise ValueError(
            f"the search query {query!r} has no word to look for (only exclusions or operators)"
        )
    return Query(words, required, excluded, phrases)


def _tokens_sql() -> str:
    """The CTEs of a query's stemmed words: tokens (ranked), req (required, with their raw
    word), excl (excluded); parameters: the three lists' texts, in that order."""
    stem = (
        "select distinct {raw} stem(unnest(string_split_regex(regexp_replace("
        f"lower(strip_accents(?::varchar)), '{IGNORE}', ' ', 'g'), '\\s+')), 'porter') as t"
    )
    return (
        f"tokens as ({stem.format(raw='')}),"
        f" req as (select w, stem(w, 'porter') as t from (select distinct unnest("
        f"string_split_regex(regexp_replace(lower(strip_accents(?::varchar)), '{IGNORE}', ' ',"
        " 'g'), '\\s+')) as w) where w <> ''),"
        f" excl as ({stem.format(raw='')})"
    )


def _must(x: str, q: Query, stopwords: str) -> str:
    """The filter of a shard's postings by a query's required and excluded words (none: '')."""
    cond = ""
    if q.required:
        cond += (
            f" and docid in (select t2.docid from {x}.terms t2 join {x}.dict d2 using (termid)"
            f" join req on d2.term = req.t group by t2.docid having count(distinct t2.termid) ="
            f" (select count(distinct t) from req where w not in (select sw from {stopwords})))"
        )
    if q.excluded:
        cond += (
            f" and docid not in (select t3.docid from {x}.terms t3 join {x}.dict d3"
            f" using (termid) join excl on d3.term = excl.t)"
        )
    return cond


def _has_phrase(text: str, phrase: list[str]) -> bool:
    words = re.findall(r"\w+", text.lower())
    n = len(phrase)
    return any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


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
    rows = [
        (shard, name or SHARD_FILE.format(shard), at)
        for shard, name, at in con.execute(
            "select shard, file, built_at from search_index_state where shard is not null"
            " order by shard"
        ).fetchall()
    ]
    holder = {shard: name for shard, name, _ in rows}
    built: dict[str, datetime | None] = {}  # each file's build (its shards' rows agree)
    for _, name, at in rows:
        built[name] = built.get(name) or at
    local = local_files(lake_of(con), built)  # copied from a bucket into this machine's cache
    names = [n for n in built if n in local]
    files = [local[n] for n in names]
    # A segment skips the shards it holds that a newer file of their own has replaced.
    skips = []
    for name in names:
        first, last = file_range(name) or (0, -1)
        skips.append([k for k in range(first, last + 1) if holder.get(k, name) != name])
    if not files and not one(con.execute("select count(*) from articles"))[0]:
        return []  # nothing stored, nothing to find
    if not files:
        raise SearchUnavailable(
            "the database has no search index yet; run `newsflow ingest` (it builds it after "
            "each load) or `newsflow search --rebuild`"
        )
    run = f"{os.getpid()}_{next(_counter)}"
    aliases = []
    try:
        for k, path in enumerate(files):
            alias = f"search_{run}_{k}"
            con.execute(f"attach '{sql_string(str(path))}' as {alias} (read_only)")
            aliases.append(alias)
        return ranked_over(con, [f"{a}.{INDEX_SCHEMA}" for a in aliases], query, since, entity,
                           limit, metas=[f"{a}.main.meta" for a in aliases],
                           skips=skips)  # fmt: skip
    finally:
        for alias in aliases:
            with contextlib.suppress(duckdb.Error):
                con.execute(f"detach {alias}")


def ranked(con, fts: str, query: str, since, entity, limit) -> list[Hit]:
    """BM25 over one fts index schema ``fts`` (e.g. of a DuckDB file with the index in it)."""
    return ranked_over(con, [fts], query, since, entity, limit)


def ranked_over(
    con,
    indexes: list[str],
    query: str,
    since,
    entity,
    limit,
    metas: list[str] | None = None,
    skips: list[list[int]] | None = None,
) -> list[Hit]:
    """Articles ranked by BM25 over the fts index schemas ``indexes`` (the shards), on a
    connection whose default catalog has the articles and feeds; the collection statistics are
    summed over all of them. With ``metas`` (each shard's table of titles, URLs, times and
    leads) and no filter, the ranking reads nothing from the lake but the feeds' names; the
    snippets come from the leads (the passage around the first query word in an article's
    first LEAD_CHARS characters, else its beginning). The query's syntax: ``parse_query``."""
    q = parse_query(query)
    stopwords = f"{indexes[0]}.stopwords"
    # A phrase is checked on the text: rank more candidates, keep those that have it.
    want = max(limit * 10, 100) if q.phrases else limit
    where, params = ["true"], []
    if since is not None:
        where.append("coalesce(a.published_at, a.first_seen_at) >= ?")
        params.append(since)
    if entity:
        # The entity by its name, an alias or its id (one entity across articles).
        where.append(
            "exists (select 1 from article_entities e join entities n using (entity_id)"
            " where e.article_id = a.article_id and (lower(n.name) = lower(?)"
            " or n.entity_id = ? or list_contains(list_transform(n.aliases, x -> lower(x)),"
            " lower(?))))"
        )
        params.extend([entity, entity, entity])
    dfs = " union all ".join(
        f"select d.term, d.df from {x}.dict d join tokens on d.term = tokens.t" for x in indexes
    )
    stats = " union all ".join(f"select num_docs, avgdl from {x}.stats" for x in indexes)
    # Per shard: term frequencies by integer ids first (the postings of the query's terms
    # only), the BM25 sum per document, and only then the document's name. Without a filter,
    # a shard's best `limit` are all that can reach the overall best `limit`.
    keep = "" if len(where) > 1 else "order by score desc limit ?"
    per_shard = " union all ".join(
        f"""(select docs.name as article_id, s.score
            from ({_bm25_scores(x, _must(x, q, stopwords))}) s
            join {x}.docs docs using (docid) {_skipping(metas, skips, k)} {keep})"""
        for k, x in enumerate(indexes)
    )
    keep_params = [] if len(where) > 1 else [want] * len(indexes)
    terms = [q.text, " ".join(q.required), " ".join(q.excluded)]
    if metas and len(where) == 1:
        hits = _ranked_from_shards(con, indexes, metas, q, dfs, stats, want, skips)
        return _with_phrases(con, hits, q, limit)
    # BM25 over the postings of the query's terms; the best `limit` first, from the narrow
    # columns; titles and texts of those only.
    rows = con.execute(
        f"""
        with {_tokens_sql()},
        df as (select term, sum(df) as df from ({dfs}) group by term),
        st as (
            select sum(num_docs) as num_docs, sum(num_docs * avgdl) / sum(num_docs) as avgdl
            from ({stats})
        ),
        scores as ({per_shard}),
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
        [*terms, *keep_params, *params, want],
    ).fetchall()
    hits = [
        Hit(r[0], r[1], r[2], r[3], r[4], r[5], snippet(r[6] or r[2] or "", q.text)) for r in rows
    ]
    texts = {r[0]: f"{r[2] or ''} {r[6] or ''}" for r in rows}
    return _with_phrases(con, hits, q, limit, texts)


def _with_phrases(con, hits: list[Hit], q: Query, limit: int, texts: dict | None = None):
    """The first ``limit`` hits that contain every phrase of ``q`` (title or text)."""
    if not q.phrases:
        return hits[:limit]
    if texts is None:
        with arrow(con, "phrase_ids", article_id=[h.article_id for h in hits]):
            texts = {
                aid: f"{title or ''} {text or ''}"
                for aid, title, text in con.execute(
                    "select article_id, title, text from articles"
                    " where article_id in (select article_id from phrase_ids)"
                ).fetchall()
            }
    kept = [h for h in hits if all(_has_phrase(texts.get(h.article_id, ""), p) for p in q.phrases)]
    return kept[:limit]


def _bm25_scores(x: str, must: str = "", skipped: str = "") -> str:
    """The BM25 score of every document of the fts index schema ``x`` that has a query term
    (docid, score), from the CTEs tokens, df and st; ``skipped``: a filter of its documents."""
    return f"""select tf.docid, sum(log(((st.num_docs - df.df + 0.5) / (df.df + 0.5)) + 1)
                   * (tf.tf * 2.2) / (tf.tf + 1.2 * (0.25 + 0.75 * docs.len / st.avgdl)))
                   as score
            from (select docid, termid, count(*) as tf from {x}.terms
                  where termid in (select d.termid from {x}.dict d
                                   join tokens on d.term = tokens.t) {must}
                  group by docid, termid) tf
            join {x}.dict d using (termid) join df on df.term = d.term
            join {x}.docs docs using (docid), st {skipped}
            group by tf.docid"""


def _skipping(metas: list[str] | None, skips: list[list[int]] | None, k: int) -> str:
    """The filter of a segment's documents of the shards it no longer holds (ints only)."""
    if not metas or not skips or not skips[k]:
        return ""
    skipped = ", ".join(str(int(n)) for n in skips[k])
    return f"where docs.name not in (select article_id from {metas[k]} where shard in ({skipped}))"


_ARTICLE_ID = re.compile(r"[0-9A-Za-z_-]+")


def _ranked_from_shards(con, indexes, metas, q: Query, dfs, stats, limit, skips=None) -> list[Hit]:
    skips = skips or [[] for _ in indexes]
    stopwords = f"{indexes[0]}.stopwords"
    # Per shard: every matching document's BM25 score by its integer id (scored_k), and the
    # ids of its best `limit` (ties at the last score kept, so that the order by publication
    # time among them is what it was); then the titles and leads of the overall best, each
    # read from its shard's meta by row (meta's rows are the index's documents in docid
    # order, checked by name). Joining every match's name to the leads (a scan of them all)
    # took two thirds of a search at 3M articles.
    scored, tops = [], []
    for k, x in enumerate(indexes):
        scored.append(
            f"scored_{k} as materialized"
            f" ({_bm25_scores(x, _must(x, q, stopwords), _skipping(metas, skips, k))})"
        )
        tops.append(
            f"""select {k} as shard, s.docid, docs.name, s.score
            from scored_{k} s join {x}.docs docs using (docid)
            where s.score >= (select coalesce(min(score), 0) from
                              (select score from scored_{k} order by score desc limit ?))"""
        )
    candidates = con.execute(
        f"""
        with {_tokens_sql()},
        df as (select term, sum(df) as df from ({dfs}) group by term),
        st as (
            select sum(num_docs) as num_docs, sum(num_docs * avgdl) / sum(num_docs) as avgdl
            from ({stats})
        ),
        {", ".join(scored)}
        {" union all ".join(tops)}
        """,
        [q.text, " ".join(q.required), " ".join(q.excluded), *[limit] * len(indexes)],
    ).fetchall()
    if not candidates:
        return []
    # The overall best `limit`, and every candidate tied with the last of them.
    candidates.sort(key=lambda c: -c[3])
    cut = candidates[min(limit, len(candidates)) - 1][3]
    candidates = [c for c in candidates if c[3] >= cut]
    found = {r[0]: r for r in _leads(con, metas, candidates)}
    scores = {name: score for _, _, name, score in candidates}
    rows = [(*found[name], scores[name]) for name in scores if name in found]
    # Best first; among equal scores, the newest first (no time last).
    rows.sort(key=lambda r: (-r[6], r[3] is None, -(r[3].timestamp() if r[3] else 0)))
    best = [(r[0], r[6], r[1], r[2], r[3], r[4], r[5]) for r in rows[:limit]]
    if not best:
        return []
    feeds = dict(
        con.execute(
            "select feed_id, title from feeds where feed_id in (select unnest(?::varchar[]))",
            [sorted({r[3] for r in best})],
        ).fetchall()
    )
    return [
        Hit(aid, score, title, feeds.get(fid), published, url, snippet(lead or title or "", q.text))
        for aid, score, title, fid, published, url, lead in best
    ]  # fmt: skip


def _leads(con, metas: list[str], candidates: list[tuple]) -> list[tuple]:
    """(article_id, title, feed_id, published, url, lead) of the candidates (shard, docid,
    name, score): each read from its shard's meta by row number (a lookup of one row, where a
    filter on the name reads the names of them all), kept when the row is the one named; a
    meta of another order is read by name."""
    cols = "article_id, title, feed_id, published, url, lead"
    by_row = " union all ".join(
        f"select {cols} from {metas[shard]} where rowid = {int(docid)}"
        for shard, docid, _, _ in candidates
    )
    found = [r for r in con.execute(by_row).fetchall()]
    have = {r[0] for r in found}
    missing = [(shard, name) for shard, _, name, _ in candidates if name not in have]
    if missing:
        by_name = " union all ".join(
            f"select {cols} from {metas[shard]} where article_id = '{name}'"
            for shard, name in missing
            if _ARTICLE_ID.fullmatch(name)  # (newsflow's ids are hex: inlined as constants)
        )
        found += con.execute(by_name).fetchall() if by_name else []
    names = {name for _, _, name, _ in candidates}
    return [r for r in found if r[0] in names]


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
