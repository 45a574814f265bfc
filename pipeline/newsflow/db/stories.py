"""Story clustering in the database: fingerprint the articles a load inserts and give each a
``story_id`` (the algorithm, MinHash signatures over word shingles and LSH bands, is
``newsflow.enrich.stories``; this module reads and writes its rows: ``articles.fingerprint``,
``articles.story_id`` and the band index ``article_bands``). Called by the load, inside its
transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa

from newsflow.db.engine import arrow, drop_temp, one
from newsflow.enrich import stories

__all__ = ["assign", "order_bands_by_day"]

_DAY = "cast(timezone('UTC', coalesce(a.published_at, a.first_seen_at)) as date)"


def order_bands_by_day(con: duckdb.DuckDBPyConnection) -> None:
    """Give every band row its article's day and store the rows in the order of their days
    (migration 015), so that a load's lookup reads the window's days only."""
    con.execute(
        "create or replace temp table bands_by_day as"
        f" select b.band_key, b.article_id, {_DAY} as day"
        " from article_bands b left join articles a using (article_id)"
    )
    try:
        con.execute("delete from article_bands")
        con.execute("insert into article_bands select * from bands_by_day order by day nulls first")
    finally:
        drop_temp(con, "bands_by_day")


def assign(
    con: duckdb.DuckDBPyConnection, article_ids: list[str], since: datetime | None = None
) -> int:
    """Fingerprint the articles this load inserted and give each a story_id (inside the
    load's transaction): near-identical texts share the story of the earliest one, already
    stored stories only grow. Their stories are looked for among the articles of
    ``stories.STORY_WINDOW_DAYS`` before the earliest of them. ``since``: none of them was
    first seen before it (else looked up). Returns how many joined a story with other
    articles."""
    if not article_ids:
        return 0
    with arrow(con, "story_ids", article_id=article_ids):
        rows = con.execute(
            "select article_id, text, coalesce(published_at, first_seen_at)"
            " from staged_articles where article_id in (select article_id from story_ids)"
        ).fetchall()
    new = [
        {"article_id": aid, "signature": stories.signature(text), "seen_at": seen}
        for aid, text, seen in rows
    ]
    days = {aid: _utc_day(seen) for aid, _, seen in rows}
    # Stored bands are in day order, articles in order of first sight: the window's rows are
    # read, not the store's. (An article dated after it was first seen, a feed's future
    # date, may fall outside the second bound and then not be found as a candidate.)
    window = min((d for d in days.values() if d), default=datetime.now(UTC).date())
    window -= timedelta(days=stories.STORY_WINDOW_DAYS)
    window_start = datetime(window.year, window.month, window.day, tzinfo=UTC)

    def lookup(keys: list[int]) -> list[dict]:
        if not keys:
            return []
        # Two steps: the band lookup names the few candidates, then only their rows are
        # read. (Joined in one statement, DuckDB hashed every article's 512-byte
        # fingerprint: docs/performance.md, "Why the code reads as it does".)
        with arrow(con, "wanted_bands", band_key=(keys, pa.int64())):
            candidates = [
                r[0]
                for r in con.execute(
                    "select distinct article_id from article_bands"
                    " where band_key in (select band_key from wanted_bands) and day >= ?",
                    [window],
                ).fetchall()
            ]
        if not candidates:
            return []
        with arrow(con, "candidate_stories", article_id=candidates):
            found = con.execute(
                "select article_id, story_id, fingerprint,"
                " coalesce(published_at, first_seen_at) from articles"
                " where article_id in (select article_id from candidate_stories)"
                " and story_id is not null and first_seen_at >= ?",
                [window_start],
            ).fetchall()
        return [
            {"article_id": r[0], "story_id": r[1], "signature": r[2], "seen_at": r[3]}
            for r in found
        ]

    assigned = stories.assign_stories(new, lookup)
    with arrow(
        con,
        "story_updates",
        article_id=[item["article_id"] for item in new],
        story_id=[assigned[item["article_id"]] for item in new],
        fingerprint=([item["signature"] for item in new], pa.binary()),
    ):
        # Only the rows first seen since the oldest of these: an UPDATE on the lake reads every
        # column of what it scans, and joined on article_id alone it read all the store's texts
        # (docs/performance.md, "Why the code reads as it does").
        if since is None:
            since = one(
                con.execute(
                    "select min(first_seen_at) from articles"
                    " where article_id in (select article_id from story_updates)"
                )
            )[0]
        con.execute(
            "update articles set story_id = u.story_id, fingerprint = u.fingerprint"
            " from story_updates u where articles.article_id = u.article_id"
            " and articles.first_seen_at >= ?",
            [since],
        )
    keys, owners, on = [], [], []
    for item in new:
        if item["signature"] is not None:
            for key in stories.band_keys(item["signature"]):
                keys.append(key)
                owners.append(item["article_id"])
                on.append(days[item["article_id"]])
    if keys:
        with arrow(
            con, "new_bands", band_key=(keys, pa.int64()), article_id=owners, day=(on, pa.date32())
        ):
            con.execute("insert into article_bands select band_key, article_id, day from new_bands")
    return sum(1 for aid, story in assigned.items() if story != aid)


def _utc_day(seen: datetime | None) -> date | None:
    if seen is None:
        return None
    return (seen.astimezone(UTC) if seen.tzinfo else seen).date()
