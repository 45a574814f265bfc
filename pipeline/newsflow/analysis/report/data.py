"""What the report shows, read from the database: the period, and one function per chart.

Every query is a file of ``sql/report/`` run through the database layer (``newsflow.db.queries``);
those files read the shared definitions of ``sql/views/`` (the article's UTC day, trending, entity
pairs, feed health), so the report counts as the views do. A table, view or macro that does not
exist (an empty file, an older database) gives no rows: the chart then says "no data".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb

from newsflow.config import Settings
from newsflow.db import queries

NO_TOPIC = "no topic"
# Trending: the latest day against the TREND_BASELINE_DAYS days before it. An entity must be in
# at least TREND_MIN_ARTICLES articles of the latest day, and the baseline must have articles on
# at least TREND_MIN_BASELINE_DAYS days, else the chart falls back to the most mentioned.
TREND_BASELINE_DAYS = 7
TREND_MIN_ARTICLES = 3
TREND_MIN_BASELINE_DAYS = 3
TOP_ENTITIES = 15
# Co-occurrence: the pairs of entity_pairs_between (each article's 12 most salient entities, in
# 2+ articles together); the matrix shows the COOC_TOP_ENTITIES with the most co-occurrences.
COOC_PER_ARTICLE = 12
COOC_MIN_ARTICLES = 2
COOC_TOP_ENTITIES = 15


@dataclass(frozen=True)
class Period:
    """The report's UTC days, ``start`` to ``end`` (the day of ``now``), and feed health's
    thresholds (from the settings, as the views and maintenance use them)."""

    start: date
    end: date
    now: datetime
    days: int
    failing_after: int = 3
    silence_hours: float = 48.0


def period(days: int, now: datetime | None, settings: Settings | None = None) -> Period:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a positive whole number, not {days!r}")
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    else:
        now = now.astimezone(UTC)
    end = now.date()
    settings = settings or Settings()
    return Period(
        start=end - timedelta(days=days - 1),
        end=end,
        now=now,
        days=days,
        failing_after=settings.feed_failing_after,
        silence_hours=settings.feed_silence_hours,
    )


def _rows(con: duckdb.DuckDBPyConnection, name: str, params: dict | None = None) -> list[tuple]:
    return queries.rows(con, f"report/{name}", params or {}, missing_ok=True)


def totals(con: duckdb.DuckDBPyConnection, p: Period) -> dict[str, Any]:
    """The cards at the top: articles, entities, topics, feeds, runs."""
    cur = _rows(con, "totals", {"start": p.start, "end": p.end, "failing_after": p.failing_after})
    keys = [
        "database", "articles_total", "articles_period", "entities_period",
        "articles_with_entities", "articles_with_topic", "feeds_active", "feeds_failing",
        "runs", "last_run_at", "last_run_status",
    ]  # fmt: skip
    if not cur:
        row: dict[str, Any] = dict.fromkeys(keys, 0)
        row.update(database=None, last_run_at=None, last_run_status=None)
    else:
        row = dict(zip(keys, cur[0]))
    row["database"] = row["database"] or ":memory:"
    return row


def topics_by_day(con: duckdb.DuckDBPyConnection, p: Period) -> list[tuple]:
    """(day, topic_code, topic, articles) per UTC day and best topic of the period."""
    return _rows(con, "topics_by_day", {"start": p.start, "end": p.end, "no_topic": NO_TOPIC})


def trending_baseline(con: duckdb.DuckDBPyConnection, p: Period) -> tuple:
    """(latest day, its articles, the baseline's articles, baseline days with articles); the
    latest day is None when the period has no article."""
    rows = _rows(con, "trending_baseline", {"end": p.end, "baseline_days": TREND_BASELINE_DAYS})
    if not rows or rows[0][0] is None or rows[0][0] < p.start:
        return None, 0, 0, 0
    return rows[0]


def trending(con: duckdb.DuckDBPyConnection, p: Period) -> list[tuple]:
    """The entities that rose most on the latest day: (entity, label, latest, n_latest, base,
    n_base, share_latest, share_base, z)."""
    return _rows(
        con,
        "trending",
        {
            "end": p.end,
            "baseline_days": TREND_BASELINE_DAYS,
            "min_articles": TREND_MIN_ARTICLES,
            "top": TOP_ENTITIES,
        },
    )


def most_mentioned(con: duckdb.DuckDBPyConnection, p: Period) -> list[tuple]:
    """(entity, label, articles, mentions) of the entities in the most articles."""
    return _rows(con, "most_mentioned", {"start": p.start, "end": p.end, "top": TOP_ENTITIES})


def cooccurrence(con: duckdb.DuckDBPyConnection, p: Period) -> list[tuple]:
    """(entity_a, entity_b, articles, all pairs of the period) among the top entities."""
    return _rows(con, "cooccurrence", {"start": p.start, "end": p.end, "top": COOC_TOP_ENTITIES})


def feeds(con: duckdb.DuckDBPyConnection, p: Period) -> tuple[datetime, list[tuple]]:
    """The time the feed table is as of (the report's clock, or the last poll when later) and
    per feed: (feed, status, last_polled_at, last_outcome, last_status, last_error,
    consecutive_failures, items_total, hours_since_new_item, hours_since_poll)."""
    last = _rows(con, "last_poll")
    as_of = p.now
    if last and last[0][0] is not None and last[0][0] > as_of:
        as_of = last[0][0]
    params = {"as_of": as_of, "failing_after": p.failing_after, "silence_hours": p.silence_hours}
    return as_of, _rows(con, "feeds", params)


def countries(con: duckdb.DuckDBPyConnection, p: Period) -> list[tuple]:
    """(country_code, country, articles, share, score) of the countries the period's articles
    are about, most articles first."""
    return _rows(con, "countries", {"start": p.start, "end": p.end})
