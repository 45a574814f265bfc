"""``newsflow export``: the public tables as Parquet or CSV files, partitioned by day.

    OUT_DIR/articles/day=2026-02-17/data_0.parquet
    OUT_DIR/article_entities/day=.../   (the day of the article they belong to)
    OUT_DIR/article_topics/day=.../
    OUT_DIR/article_categories/day=.../
    OUT_DIR/article_places/day=.../
    OUT_DIR/article_countries/day=.../
    OUT_DIR/feed_polls/day=.../         (the day of the poll)
    OUT_DIR/feeds/data_0.parquet        (the registry, not partitioned)

Hive-style ``day=`` folders: DuckDB, Spark, pandas/pyarrow and polars read them back with the
day as a column (e.g. ``read_parquet('OUT_DIR/articles/*/*.parquet', hive_partitioning=1)``).
Exporting again into the same folder replaces the days it writes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from newsflow.db.engine import one

# Every article's rows fall on its day as view article_days defines it (the UTC date of its
# publication, else of its first sight); a poll on the UTC date it ran.
_BY_ARTICLE = "select x.*, d.day from {} x join article_days d using (article_id)"
TABLES = {
    "articles": "select a.* exclude (fingerprint), d.day"
    " from articles a join article_days d using (article_id)",
    "article_entities": _BY_ARTICLE.format("article_entities"),
    "article_topics": _BY_ARTICLE.format("article_topics"),
    "article_categories": _BY_ARTICLE.format("article_categories"),
    "article_places": _BY_ARTICLE.format("article_places"),
    "article_countries": _BY_ARTICLE.format("article_countries"),
    "feed_polls": "select p.*, cast(timezone('UTC', p.polled_at) as date) as day from feed_polls p",
}
FORMATS = {"parquet": "format parquet, compression zstd", "csv": "format csv, header true"}


def export(con: duckdb.DuckDBPyConnection, out_dir: Path, fmt: str = "parquet", since=None) -> dict:
    """Write the tables under ``out_dir``; returns rows written per table."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose parquet or csv")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    since_day = since.date() if isinstance(since, datetime) else since
    written = {}
    for table, select in TABLES.items():
        view = f"export_{table}"
        # The day filter is a bound parameter; a temp view carries it into COPY.
        con.execute(
            f"create or replace temp table {view} as select * from ({select}) t"
            " where ? is null or t.day >= ?",
            [since_day, since_day],
        )
        count = one(con.execute(f"select count(*) from {view}"))[0]
        written[table] = count
        if count:
            target = _literal(out_dir / table)
            con.execute(
                f"copy {view} to '{target}'"
                f" ({FORMATS[fmt]}, partition_by (day), overwrite_or_ignore true)"
            )
        con.execute(f"drop table {view}")
    feeds = out_dir / "feeds"
    feeds.mkdir(exist_ok=True)
    ext = "parquet" if fmt == "parquet" else "csv"
    con.execute(f"copy feeds to '{_literal(feeds / f'data_0.{ext}')}' ({FORMATS[fmt]})")
    written["feeds"] = one(con.execute("select count(*) from feeds"))[0]
    return written


def _literal(path: Path) -> str:
    # COPY takes its file name as SQL text, not a parameter: quote it (it is the user's own
    # output path, never feed or page content).
    return str(path.resolve()).replace("'", "''")
