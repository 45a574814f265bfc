"""Reading the store: queries by text or by name (``sql/``), the check that keeps a person's
SQL to reading, an article and its tags, the store's totals and recent runs."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import datetime

import duckdb

from newsflow.db import queries
from newsflow.db.engine import StoreError, one

# What `newsflow sql` runs: queries (SELECT, WITH, FROM, VALUES, SHOW, DESCRIBE, SUMMARIZE,
# PRAGMA of a setting's value are all SELECT to DuckDB's parser), EXPLAIN of one, and CALL of a
# table function (e.g. ducklake_snapshots; against the read-only lake nothing can write).
_READING = {"SELECT", "EXPLAIN", "CALL"}


class ReadOnlyQuery(StoreError):
    """A statement given to ``newsflow sql`` would write or change something."""


def check_read_only(sql: str) -> None:
    """Raise ReadOnlyQuery unless every statement of ``sql`` only reads; a syntax error is
    left to the run, which names its position."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.ParserException:
        return  # the run names the syntax error and its position
    except duckdb.Error as exc:  # a PRAGMA expands when parsed: what it would run is unknown
        first = " ".join(sql.split())[:60]
        raise ReadOnlyQuery(
            f"read-only: cannot tell whether {first!r} only reads ({type(exc).__name__}:"
            f" {str(exc)[:200]}); only queries run here"
        ) from None
    for statement in statements:
        kind = statement.type.name
        text = statement.query.strip()
        if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs what it explains
            inner = re.sub(r"(?is)^\s*explain\s+(analy[sz]e\s+)?", "", text)
            with contextlib.suppress(duckdb.Error):
                if any(s.type.name not in _READING - {"EXPLAIN"}
                       for s in duckdb.extract_statements(inner)):  # fmt: skip
                    kind = "EXPLAIN of " + duckdb.extract_statements(inner)[0].type.name
        if kind not in _READING:
            first = " ".join(text.split())[:60]
            raise ReadOnlyQuery(
                f"read-only: {first!r} is a {kind} statement, and only queries run here (no"
                " INSERT, DELETE, COPY ... TO, EXPORT, INSTALL, LOAD, ATTACH, SET, CREATE); to"
                " save a result, use --format csv|json > FILE or `newsflow export`"
            )


def query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | dict | None = None
) -> tuple[list[str], list[tuple]]:
    cur = con.execute(sql, params) if params else con.execute(sql)
    if cur.description is None:
        return [], []
    return [d[0] for d in cur.description], cur.fetchall()


def read_query(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | dict | None = None
) -> tuple[list[str], list[tuple]]:
    """``query`` for SQL a person wrote (``newsflow sql``): only statements that read.
    The lake is attached read-only already; this also refuses what would write elsewhere
    or change the session (``COPY ... TO``, ``EXPORT``, ``INSTALL``/``LOAD``, ``ATTACH``,
    ``SET``, ``CREATE`` even of a temp table), with ReadOnlyQuery naming the statement."""
    check_read_only(sql)
    return query(con, sql, params)


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> list[dict]:
    cols, found = query(con, sql, params)
    return [dict(zip(cols, r)) for r in found]


def named(
    con: duckdb.DuckDBPyConnection, name: str, params: Sequence | dict | None = None
) -> tuple[list[str], list[tuple]]:
    """Columns and rows of the query ``sql/<name>.sql`` (db.queries)."""
    return query(con, queries.text(name), params)


def article(con: duckdb.DuckDBPyConnection, article_id: str) -> dict | None:
    """The stored article (id, title, text, language, feed_categories, url), or None."""
    cols, rows = named(con, "article/article", [article_id])
    return dict(zip(cols, rows[0])) if rows else None


def article_tags(
    con: duckdb.DuckDBPyConnection, article_id: str
) -> dict[str, tuple[list[str], list[tuple]]]:
    """An article's tags as stored: columns and rows of its entities, topics, publisher
    categories and tagging outcomes."""
    return {
        kind: named(con, f"article/{kind}", [article_id])
        for kind in ("entities", "topics", "categories", "tagging")
    }


def newest_article_time(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest article not dated in the future was published (else first seen)."""
    return named(con, "article/newest")[1][0][0]


def totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in the store: articles, entity rows, topic rows."""
    row = one(
        con.execute(
            "select (select count(*) from articles), (select count(*) from article_entities),"
            " (select count(*) from article_topics)"
        )
    )
    return {"articles": row[0], "entities": row[1], "topics": row[2]}


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[dict]:
    return rows(
        con,
        "select run_id, started_at, finished_at, status, feeds_polled, feeds_failed,"
        " items_new, articles_loaded, coalesce(articles_upgraded, 0) as articles_upgraded"
        " from runs order by started_at desc limit ?",
        [limit],
    )


def articles_by_status(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Articles in all, and per extraction status."""
    rows = con.execute("select extraction_status, count(*) from articles group by 1").fetchall()
    counts = {status: n for status, n in rows}
    return {"all": sum(counts.values()), **counts}


def run_failures(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict]:
    """The feeds whose poll in ``run_id`` failed: url, outcome, http_status, error."""
    return rows(
        con,
        "select f.url, p.outcome, p.http_status, p.error from feed_polls p"
        " join feeds f using (feed_id)"
        " where p.run_id = ? and p.outcome not in ('ok', 'not_modified') order by f.url",
        [run_id],
    )
