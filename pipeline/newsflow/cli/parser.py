"""The ``newsflow`` argument parser: every command and option, each bound to its function in
``commands``. docs/cli.md is generated from it (scripts/cli_reference.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from newsflow import __version__
from newsflow.cli.commands import (
    cmd_demo,
    cmd_export,
    cmd_extract,
    cmd_feeds,
    cmd_ingest,
    cmd_maintain,
    cmd_migrate,
    cmd_newsroom,
    cmd_report,
    cmd_retag,
    cmd_search,
    cmd_sql,
    cmd_status,
    cmd_tags,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsflow",
        description="News feeds to a queryable DuckDB database.",
        epilog="Settings also come from NEWSFLOW_* environment variables (docs/settings.md).",
    )
    parser.add_argument("--version", action="version", version=f"newsflow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def db_args(p, default="$NEWSFLOW_CATALOG or <data-dir>/newsflow.sqlite"):
        p.add_argument(
            "--catalog",
            "--db",
            dest="db",
            metavar="CATALOG",
            help=f"the store's catalog: a SQLite file or postgres:dbname=... (default {default});"
            " data files per $NEWSFLOW_DATA_PATH",
        )
        p.add_argument(
            "--data-dir", metavar="DIR", help="data folder (default $NEWSFLOW_DATA_DIR or ./data)"
        )

    p = sub.add_parser("ingest", help="run one cycle: register, poll, fetch, extract, tag, load")
    db_args(p)
    p.add_argument(
        "--feeds", metavar="FILE", type=Path, help="feed list (YAML or OPML) to register first"
    )
    p.add_argument(
        "--allow-private",
        action="store_true",
        help="allow loopback/private addresses (also NEWSFLOW_ALLOW_PRIVATE=1)",
    )
    p.add_argument("--all", action="store_true", help="poll every active feed, due or not")
    p.add_argument(
        "--keep-unlisted",
        action="store_true",
        help="keep registered feeds the feed list does not name (default: the list is the"
        " source of truth, they are deactivated; NEWSFLOW_KEEP_UNLISTED_FEEDS=1)",
    )
    p.add_argument(
        "--no-tag", action="store_true", help="skip entity and topic tagging (NEWSFLOW_TAGGING=0)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "retag", help="re-tag stored articles, replacing one tagger's rows batch by batch"
    )
    db_args(p)
    p.add_argument(
        "--since", metavar="DATE", help="only articles published (else first seen) since DATE"
    )
    p.add_argument(
        "--tagger",
        metavar="NAME",
        help="re-run only this tagger (spacy: entities, iptc-lexicon: topics); default both",
    )
    p.add_argument(
        "--untagged", action="store_true", help="only articles that have no tags of that kind"
    )
    p.add_argument("--batch-size", type=int, default=500, metavar="N", help="articles per batch")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_retag)

    p = sub.add_parser("search", help="full-text search (BM25) over titles and texts")
    db_args(p)
    p.add_argument(
        "query",
        help='words to look for (any of them, ranked); "a phrase"; +word or a AND b: required;'
        " -word or NOT word: excluded",
    )
    p.add_argument("--since", metavar="DATE", help="only articles published since DATE")
    p.add_argument("--entity", metavar="NAME", help="only articles that name this entity")
    p.add_argument("--limit", type=int, default=10, metavar="N", help="at most N hits (10)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index first")
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="write the public tables as Parquet or CSV, by day")
    db_args(p)
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (created if missing)")
    p.add_argument(
        "--format", choices=["parquet", "csv"], default="parquet", help="file format (parquet)"
    )
    p.add_argument("--since", metavar="DATE", help="only days from DATE on")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="a self-contained HTML page of charts")
    db_args(p)
    p.add_argument("--days", type=int, default=14, metavar="N", help="period length (14)")
    p.add_argument(
        "-o", "--output", default="report.html", metavar="FILE", help="where (report.html)"
    )
    p.add_argument(
        "--as-of", metavar="DATE", help="end of the period (default: the newest article)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "maintain",
        help="retention of staged files, entity identity, the search index rebuild, CHECKPOINT,"
        " feed health",
    )
    db_args(p)
    p.add_argument("--retention-days", type=float, metavar="N", help="default: setting (7)")
    p.add_argument("--silence-hours", type=float, metavar="H", help="default: setting (48)")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser(
        "extract",
        help="fetch and extract one page (text, title, byline, date, language, description,"
        " image, keywords, entities, topics), storing nothing",
        description="Fetch one page as an ingest would (robots.txt honoured, private addresses"
        " refused unless --allow-private), extract it and tag it: what it prints is what"
        " ingesting the page stores. Touches no database. A local HTML file works too.",
    )
    p.add_argument("target", metavar="URL", help="the page's http(s) URL, or an HTML file")
    p.add_argument(
        "--allow-private",
        action="store_true",
        help="allow loopback/private addresses (also NEWSFLOW_ALLOW_PRIVATE=1)",
    )
    p.add_argument("--no-tag", action="store_true", help="skip entities and topics")
    p.add_argument("--format", choices=["text", "json"], default="text", help="output (text)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("tags", help="an article's entities, topics and tagging status")
    db_args(p)
    p.add_argument("article", help="article_id or the article's URL")
    p.add_argument(
        "--explain", action="store_true", help="show every topic's score and the cues behind it"
    )
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("feeds", help="manage the feed registry")
    fsub = p.add_subparsers(dest="feeds_action", metavar="ACTION")
    q = fsub.add_parser("list", help="list registered feeds")
    db_args(q)
    q.add_argument("--all", action="store_true", help="include removed feeds")
    q.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    q = fsub.add_parser(
        "discover",
        help="find a site's feeds from one of its pages (its <link rel=alternate>, else the"
        " usual feed paths), each checked to parse",
    )
    q.add_argument("url", help="a page of the site (or a feed)")
    q.add_argument(
        "--allow-private",
        action="store_true",
        help="allow loopback/private addresses (also NEWSFLOW_ALLOW_PRIVATE=1)",
    )
    q.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    q = fsub.add_parser("add", help="register one feed")
    db_args(q)
    q.add_argument("url", help="the feed's URL (RSS, Atom or JSON Feed)")
    q.add_argument("--name", help="a display name (default: the feed's title)")
    q.add_argument("--tag", action="append", help="a tag (repeatable)")
    q.add_argument("--language", help="language code, e.g. en")
    q = fsub.add_parser("remove", help="stop polling a feed (its articles stay)")
    db_args(q)
    q.add_argument("url", help="the feed's URL as registered")
    q = fsub.add_parser("import", help="register the feeds of a YAML or OPML file")
    db_args(q)
    q.add_argument("file", type=Path, help="a feed list (.yaml/.yml or .opml)")
    q = fsub.add_parser("export", help="write the registry as YAML or OPML")
    db_args(q)
    q.add_argument("--format", choices=["yaml", "opml"], default="yaml", help="file format (yaml)")
    q.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.set_defaults(func=cmd_feeds, feeds_action=None)

    p = sub.add_parser(
        "sql",
        help="run read-only SQL against the database",
        description="Run read-only SQL against the database: queries (SELECT, WITH, FROM, SHOW,"
        " DESCRIBE, SUMMARIZE), EXPLAIN of a query and CALL of a table function. A statement"
        " that writes or changes the session (COPY ... TO, EXPORT, INSTALL, LOAD, ATTACH, SET,"
        " CREATE, INSERT) is refused with exit 2 before anything runs; save a result with"
        " --format csv|json > FILE.",
    )
    db_args(p)
    p.add_argument("query", nargs="?", help="SQL text")
    p.add_argument("-f", "--file", metavar="FILE", help="read the SQL from a file")
    p.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="bind $KEY in the query (repeatable)"
    )
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    p.add_argument(
        "--as-of",
        metavar="RUN_ID",
        help="read the data as it was right after that run's load (time travel; runs of the"
        " last NEWSFLOW_SNAPSHOT_RETENTION_DAYS)",
    )
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("status", help="feed health and the last runs")
    db_args(p)
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output (table)"
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "demo", help="ingest the bundled sample newsroom into <data-dir>/demo.sqlite"
    )
    db_args(p, default="<data-dir>/demo.sqlite, whatever $NEWSFLOW_CATALOG says")
    p.add_argument("--port", type=int, default=0, help="newsroom port (default: a free one)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("migrate", help="copy a DuckDB-file database (newsflow 0.1) into a new lake")
    db_args(p)
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="FILE",
        help="the DuckDB file to copy (it is only read)",
    )
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("newsroom", help="serve the sample newsroom on 127.0.0.1 in the foreground")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (8765)")
    p.add_argument("--feeds-out", metavar="FILE", help="also write its feed list (YAML) here")
    p.set_defaults(func=cmd_newsroom)
    _verbose_everywhere(parser)
    return parser


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the command too (``newsflow ingest -v``), as the errors' "run with -v"
    invites; unset there, it leaves the count given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument(
                    "-v",
                    "--verbose",
                    action="count",
                    default=argparse.SUPPRESS,
                    help="log more (-vv: debug)",
                )
                _verbose_everywhere(sub)
