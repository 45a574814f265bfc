"""The feed registry: feeds added, updated and deactivated from the feed list, their health
and status, which are due, and the thresholds the health views share (table ``settings``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from newsflow.db import queries
from newsflow.db.engine import arrow, one, transaction
from newsflow.db.reads import query, rows
from newsflow.fetching.feedlist import FeedSpec
from newsflow.fetching.urls import feed_id as make_feed_id
from newsflow.rows import DueFeed


def upsert_feeds(con: duckdb.DuckDBPyConnection, specs: Sequence[FeedSpec]) -> tuple[int, int]:
    """Add feeds or update their name, tags and language; one transaction. (added, updated)"""
    now = datetime.now(UTC)
    added = updated = 0
    with transaction(con):
        for spec in specs:
            fid = make_feed_id(spec.url)
            row = con.execute(
                "select title, tags, language, active from feeds where feed_id = ?", [fid]
            ).fetchone()
            if row is None:
                con.execute(
                    "insert into feeds (feed_id, url, title, tags, language, added_at)"
                    " values (?, ?, ?, ?, ?, ?)",
                    [fid, spec.url, spec.name, list(spec.tags), spec.language, now],
                )
                added += 1
                continue
            title = spec.name or row[0]
            tags = list(spec.tags) if spec.tags else row[1]
            language = spec.language or row[2]
            if (title, tags, language, row[3]) != (row[0], row[1], row[2], True):
                con.execute(
                    "update feeds set title = ?, tags = ?, language = ?, active = true,"
                    " removed_at = null where feed_id = ?",
                    [title, tags, language, fid],
                )
                updated += 1
    return added, updated


def deactivate_unlisted(con: duckdb.DuckDBPyConnection, specs: Sequence[FeedSpec]) -> list[str]:
    """Deactivate the active feeds that the feed list ``specs`` does not name (their polls
    and articles stay); their URLs."""
    listed = [make_feed_id(s.url) for s in specs]
    now = datetime.now(UTC)
    with transaction(con):
        urls = [
            r[0]
            for r in con.execute(
                "select url from feeds where active and feed_id not in"
                " (select unnest(?::varchar[])) order by url",
                [listed],
            ).fetchall()
        ]
        if urls:
            con.execute(
                "update feeds set active = false, removed_at = ?"
                " where active and feed_id not in (select unnest(?::varchar[]))",
                [now, listed],
            )
    return urls


def remove_feed(con: duckdb.DuckDBPyConnection, url: str) -> bool:
    """Deactivate a feed (its polls and articles stay). False when no active feed has it."""
    fid = make_feed_id(url)
    changed = one(
        con.execute(
            "update feeds set active = false, removed_at = ? where feed_id = ? and active",
            [datetime.now(UTC), fid],
        )
    )[0]
    return bool(changed)


def listed(con: duckdb.DuckDBPyConnection, include_removed: bool = False) -> list[dict]:
    where = "" if include_removed else "where active"
    return rows(
        con,
        f"select feed_id, url, title, tags, language, active, last_polled_at, last_outcome,"
        f" last_error, consecutive_failures, next_poll_at, items_total"
        f" from feeds {where} order by title nulls last, url",
    )


def active_feed_count(con: duckdb.DuckDBPyConnection) -> int:
    return one(con.execute("select count(*) from feeds where active"))[0]


def feed_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every registered feed, active or removed."""
    return {r[0] for r in con.execute("select feed_id from feeds").fetchall()}


def feed_check(
    con: duckdb.DuckDBPyConnection, now: datetime, failing_after: int, silence_hours: float
) -> list[dict]:
    """Every active feed with its health at ``now`` (status, needs_attention, last outcome
    and error, polls, items), those that need attention first: the one definition of feed
    health (``sql/views/feed_health.sql``) with these thresholds."""
    return queries.dicts(
        con,
        "ops/feed_check",
        {"as_of": now, "failing_after": failing_after, "silence_hours": silence_hours},
    )


def feed_status(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[tuple]]:
    """``newsflow status``'s feed table: each active feed's last poll, outcome, failures in a
    row, next poll, adaptive interval (minutes) and why, items, last error; then its pages
    of the last 7 days that could not be extracted (stored from the feed's text, or
    failed) and the commonest reason (e.g. robots.txt unreachable): a feed polls ``ok``
    while every one of its pages fails."""
    return query(
        con,
        """
        with pages as (
            select feed_id, count(*) as pages_failed, mode(extraction_error) as page_error
            from articles
            where extraction_status in ('feed_content', 'failed')
              and first_seen_at >= now() - interval 7 day
            group by feed_id
        )
        select coalesce(f.title, f.url) as feed, f.last_polled_at, f.last_outcome,
            f.consecutive_failures as failures, f.next_poll_at,
            round(f.poll_interval_s / 60, 1) as every_min, f.poll_interval_reason as why,
            f.items_total as items, f.last_error,
            coalesce(p.pages_failed, 0) as pages_failed_7d, p.page_error
        from feeds f left join pages p using (feed_id)
        where f.active
        order by f.consecutive_failures desc, coalesce(p.pages_failed, 0) desc, f.title
        """,
    )


def due_feeds(
    con: duckdb.DuckDBPyConnection, now: datetime, include_not_due: bool = False
) -> list[DueFeed]:
    cond = "" if include_not_due else "and (next_poll_at is null or next_poll_at <= ?)"
    params = [] if include_not_due else [now]
    rows = con.execute(
        f"select feed_id, url, etag, last_modified, language, last_polled_at,"
        f" poll_interval_s from feeds"
        f" where active {cond} order by next_poll_at nulls first, feed_id",
        params,
    ).fetchall()
    return [DueFeed(*r) for r in rows]


def waiting_feeds(con: duckdb.DuckDBPyConnection) -> dict:
    """Why active feeds were not polled: those simply not due yet, and those in backoff
    after failed polls (the last error of the one failing longest), each with the earliest
    time one is due again."""
    row = con.execute(
        """
        select count(*),
            count(*) filter (consecutive_failures = 0),
            min(next_poll_at) filter (consecutive_failures = 0),
            count(*) filter (consecutive_failures > 0),
            min(next_poll_at) filter (consecutive_failures > 0),
            arg_max(last_outcome || coalesce(': ' || last_error, ''), consecutive_failures)
                filter (consecutive_failures > 0)
        from feeds where active
        """
    ).fetchone()
    assert row is not None  # an aggregate: one row
    keys = ("active", "not_due", "next_due_at", "backoff", "backoff_until", "backoff_error")
    return dict(zip(keys, row))


def record_settings(con: duckdb.DuckDBPyConnection, settings) -> None:
    """Write the thresholds the views share with the rest of newsflow (table ``settings``:
    feed health's failures in a row and silence window) from ``settings``."""
    values = {
        "feed_failing_after": settings.feed_failing_after,
        "feed_silence_hours": settings.feed_silence_hours,
    }
    with arrow(
        con,
        "new_settings",
        setting=list(values),
        value=([float(v) for v in values.values()], pa.float64()),
    ):
        con.execute(
            "merge into settings using new_settings n on settings.name = n.setting"
            " when matched then update set value = n.value, updated_at = now()"
            " when not matched then insert values (n.setting, n.value, now())"
        )
