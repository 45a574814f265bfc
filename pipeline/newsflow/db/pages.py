"""The fetch queue: pages that did not arrive at their first attempt wait here (table
``page_fetches``, written by the load) until a later cycle takes them back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import duckdb

from newsflow.db.engine import arrow
from newsflow.db.reads import rows


def due_pages(con: duckdb.DuckDBPyConnection, now: datetime) -> list[dict]:
    """The pages the fetch queue gives back to a cycle, as staged items (ITEM_SCHEMA):
    pending ones first, oldest first, then the retries that are due."""
    return rows(
        con,
        """
        select a.article_id, a.feed_id, a.url, a.canonical_url, a.guid, a.title, a.authors,
            a.feed_categories as categories, a.summary,
            case when a.extraction_status = 'feed_content' then a.text end as content,
            a.published_at, a.first_seen_at, a.language as feed_language,
            q.state as queue_state, q.attempts as fetch_attempts
        from page_fetches q join articles a using (article_id)
        where q.state in ('pending', 'retrying')
          and (q.next_attempt_at is null or q.next_attempt_at <= ?)
        order by q.state = 'retrying', q.first_queued_at, q.article_id
        """,
        [now],
    )


def pending_pages(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Pages waiting in the fetch queue, per host: pending, retrying, the next attempt."""
    return rows(
        con,
        """
        select host, count(*) filter (state = 'pending') as pending,
            count(*) filter (state = 'retrying') as retrying,
            min(next_attempt_at) filter (state = 'retrying') as next_retry_at,
            arg_max(last_error, coalesce(last_attempt_at, first_queued_at)) as last_error
        from page_fetches where state in ('pending', 'retrying')
        group by host order by count(*) desc, host
        """,
    )


def known_article_ids(con: duckdb.DuckDBPyConnection, ids: Iterable[str]) -> set[str]:
    ids = list(set(ids))
    if not ids:
        return set()
    with arrow(con, "candidate_ids", article_id=ids):
        rows = con.execute(
            "select article_id from articles"
            " where article_id in (select article_id from candidate_ids)"
        ).fetchall()
    return {r[0] for r in rows}
