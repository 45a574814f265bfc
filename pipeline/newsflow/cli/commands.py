"""One function per ``newsflow`` command: read the arguments, call the library, print the result
(``output``). No SQL and no pipeline logic here: that lives in the database layer and the run."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from newsflow.cli.output import (
    ProgressLine,
    UsageError,
    format_table,
    json_default,
    render,
    summary_text,
)
from newsflow.config import LakeLocation, Settings, load_settings
from newsflow.db import queries
from newsflow.db.engine import StoreError
from newsflow.db.store import ReadOnlyQuery, Store, store_exists
from newsflow.fetching.feedlist import FeedSpec, load_feed_file, to_opml, to_yaml
from newsflow.fetching.urls import InvalidURL, validate_http_url

LOGGER = logging.getLogger("newsflow")


def _settings(args) -> Settings:
    settings = load_settings()
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "db", None):
        overrides["catalog"] = args.db
    if getattr(args, "allow_private", False):
        overrides["allow_private"] = True
    if getattr(args, "keep_unlisted", False):
        overrides["keep_unlisted_feeds"] = True
    if getattr(args, "no_tag", False):
        overrides["tagging"] = False
    return settings.with_overrides(**overrides)


def _existing_database(settings: Settings) -> LakeLocation:
    """The store a command over stored articles works on; it must exist."""
    lake = settings.lake
    demo = LakeLocation.of(settings.data_dir / DEMO_DB_NAME)
    if settings.catalog is None and not store_exists(lake) and store_exists(demo):
        # Right after `make demo` the only store is the demo's: use that one, and say so.
        print(
            f"newsflow: using {demo.catalog} (no {lake.catalog} yet; --catalog chooses)",
            file=sys.stderr,
        )
        return demo
    if not store_exists(lake):
        raise StoreError(f"no database at {lake.shown}; run `newsflow ingest` to create it")
    return lake


def _open(args, read_only: bool = False) -> Store:
    settings = _settings(args)
    if read_only:
        lake = _existing_database(settings)
        run_id = getattr(args, "as_of", None)
        if run_id:  # time travel: the data as the load of that run left it
            with Store(lake, read_only=True) as store:
                snapshot = store.snapshot_of_run(run_id)
            return Store(lake, read_only=True, snapshot=snapshot)
        return Store(lake, read_only=True)
    return Store(settings.lake)


def cmd_ingest(args) -> int:
    from newsflow.run.cycle import run_cycle

    settings = _settings(args)
    feeds_file = args.feeds or settings.feeds_file
    # Validate the feed list before the database is even opened.
    feeds = load_feed_file(feeds_file) if feeds_file else None
    if feeds is None:
        _require_registered_feeds(settings)
    with Store(settings.lake) as store:
        summary = run_cycle(
            settings,
            store,
            feeds=feeds,
            trigger="cli",
            include_not_due=args.all,
            progress=ProgressLine(sys.stderr.isatty() and not args.json),
        )
    data = summary.as_dict()
    print(json.dumps(data, indent=1, default=json_default) if args.json else summary_text(data))
    return 0


def _require_registered_feeds(settings: Settings) -> None:
    """An ingest with no feed list must have feeds in the registry: else say how to get some
    (and create no database)."""
    if store_exists(settings.lake):
        # Opened for writing like the ingest itself: a database of an older schema is migrated
        # here, as the ingest would, instead of refused as a read-only open refuses it.
        with Store(settings.lake, lock_wait=settings.load_lock_wait) as store:
            if store.active_feed_count():
                return
        where = f"{settings.database} has no active feed"
    else:
        where = f"there is no database at {settings.database} yet"
    raise UsageError(
        f"nothing to ingest: {where} and no feed list was given; pass --feeds FILE (YAML or"
        " OPML), set NEWSFLOW_FEEDS, or add one with `newsflow feeds add URL`"
        " (`newsflow demo` ingests a bundled sample newsroom)"
    )


def cmd_feeds(args) -> int:
    action = args.feeds_action
    if action == "list":
        with _open(args, read_only=True) as store:
            feeds = store.feeds(include_removed=args.all)
        cols = [
            "url",
            "title",
            "tags",
            "language",
            "active",
            "last_polled_at",
            "last_outcome",
            "consecutive_failures",
            "items_total",
        ]
        if args.format == "table":
            cols = ["url", "title", "tags", "last_polled_at", "last_outcome", "items_total"]
            if args.all:  # removed feeds too: say which are which
                cols.insert(3, "active")
        print(render(cols, [tuple(f[c] for c in cols) for f in feeds], args.format))
        return 0
    if action == "discover":
        from newsflow.fetching.discover import DiscoveryError, discover

        try:
            url = validate_http_url(args.url)
        except InvalidURL as exc:
            raise UsageError(f"feeds discover: invalid URL {args.url!r}: {exc}") from None
        try:
            found = discover(url, _settings(args))
        except DiscoveryError as exc:
            print(f"newsflow: feeds discover: {exc}", file=sys.stderr)
            return 1
        cols = ["url", "title", "items", "found_by"]
        rows = [(f.url, f.title, f.items, f.how) for f in found]
        if args.format != "table":
            print(render(cols, rows, args.format))
        elif not found:
            print(f"no feed found for {url} (no <link rel=alternate> to a feed, none at the"
                  " usual paths)")  # fmt: skip
        else:
            print(render(cols, rows, "table"))
            print(f"add one with: newsflow feeds add {found[0].url}")
        return 0 if found else 1
    if action == "add":
        try:
            url = validate_http_url(args.url)
        except InvalidURL as exc:
            raise UsageError(f"feeds add: invalid URL {args.url!r}: {exc}") from None
        spec = FeedSpec(url=url, name=args.name, tags=tuple(args.tag or ()), language=args.language)
        with _open(args) as store:
            added, updated = store.upsert_feeds([spec])
        print(f"{'added' if added else 'updated' if updated else 'unchanged'}: {url}")
        return 0
    if action == "remove":
        with _open(args) as store:
            removed = store.remove_feed(args.url)
        if not removed:
            raise UsageError(f"feeds remove: no active feed with URL {args.url}")
        print(f"removed: {args.url} (its polls and articles are kept)")
        return 0
    if action == "import":
        specs = load_feed_file(args.file)
        with _open(args) as store:
            added, updated = store.upsert_feeds(specs)
        print(
            f"imported {args.file}: {added} added, {updated} updated, "
            f"{len(specs) - added - updated} unchanged"
        )
        return 0
    if action == "export":
        with _open(args, read_only=True) as store:
            feeds = store.feeds()
        text = to_opml(feeds) if args.format == "opml" else to_yaml(feeds)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"exported {len(feeds)} feeds to {args.output}")
        else:
            sys.stdout.write(text)
        return 0
    raise UsageError("feeds: choose one of list, add, remove, import, export")


_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def cmd_sql(args) -> int:
    if bool(args.query) == bool(args.file):
        raise UsageError("sql: give either a QUERY or -f FILE, not both or neither")
    if args.file:
        try:
            query = Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"sql: cannot read {args.file}: {exc.strerror or exc}") from None
    else:
        query = args.query
    params = {}
    for raw in args.param or []:
        m = _PARAM.match(raw)
        if not m:
            raise UsageError(f"sql: --param {raw!r} is not of the form key=value")
        params[m.group(1)] = m.group(2)
    # Name the parameters a query takes (the $names outside comments and strings) before
    # DuckDB's generic "argument/count mismatch".
    code = re.sub(r"--[^\n]*|'(?:[^']|'')*'", " ", query)
    wanted = sorted(set(re.findall(r"\$([A-Za-z_]\w*)", code)))
    if params or wanted:
        missing = [w for w in wanted if w not in params]
        extra = [p for p in params if p not in wanted]
        takes = ", ".join(wanted) or "none"
        if missing:
            raise UsageError(
                "sql: the query needs "
                + " ".join(f"--param {w}=..." for w in missing)
                + f" (its parameters: {takes})"
            )
        if extra:
            raise UsageError(
                f"sql: the query has no parameter {', '.join(extra)} (its parameters: {takes})"
            )
    with _open(args, read_only=True) as store:
        try:
            cols, rows = store.read_query(query, params or None)
        except ReadOnlyQuery as exc:
            raise UsageError(f"sql: {exc}") from None
        except duckdb.Error as exc:
            raise UsageError(f"sql: {type(exc).__name__}: {exc}") from None
    if cols:
        print(render(cols, rows, args.format))
    return 0


def cmd_status(args) -> int:
    with _open(args, read_only=True) as store:
        cols, rows = store.feed_status()
        waiting = store.pending_pages()
        runs = store.recent_runs(5)
        totals = store.articles_by_status()
    rcols = [
        "run_id",
        "started_at",
        "status",
        "feeds_polled",
        "feeds_failed",
        "items_new",
        "articles_loaded",
        "articles_upgraded",
    ]
    if args.format == "json":  # one document, for jq and json.load
        document = {
            "database": str(store.path),
            "articles": totals,
            "feeds": [dict(zip(cols, r)) for r in rows],
            "pages_waiting": waiting,
            "runs": [{c: r[c] for c in rcols} for r in runs],
        }
        print(json.dumps(document, indent=1, default=json_default))
        return 0
    print(
        f"database {store.path}: {totals['all']} articles "
        f"({totals.get('ok', 0)} extracted, {totals.get('feed_content', 0)} feed content, "
        f"{totals.get('failed', 0)} failed"
        + (f", {totals['pending']} pending" if totals.get("pending") else "")
        + ")\n"
    )
    print("feeds")
    print(render(cols, rows, args.format))
    print("\npages waiting to be fetched (per host)")
    if waiting:
        wcols = ["host", "pending", "retrying", "next_retry_at", "last_error"]
        print(render(wcols, [tuple(w[c] for c in wcols) for w in waiting], args.format))
    else:
        print("none: every page is fetched, or failed for good")
    print("\nlast runs")
    print(render(rcols, [tuple(r[c] for c in rcols) for r in runs], args.format))
    return 0


def _parse_since(value: str | None, option: str = "--since") -> datetime | None:
    """The date or time an option gives (UTC unless it says otherwise); the error names it."""
    if value is None:
        return None
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not a date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def cmd_retag(args) -> int:
    from newsflow.enrich.tag import kinds_for, load_classifier
    from newsflow.run.retag import retag

    settings = _settings(args)
    since = _parse_since(args.since)
    try:
        classifier = load_classifier(settings.topic_classifier, settings.topic_threshold)
        kinds_for(args.tagger, classifier.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.batch_size <= 0:
        raise UsageError(f"--batch-size must be positive, got {args.batch_size}")
    with Store(_existing_database(settings)) as store:
        summary = retag(
            settings,
            store,
            since=since,
            tagger=args.tagger,
            untagged=args.untagged,
            batch_size=args.batch_size,
            progress=ProgressLine(sys.stderr.isatty() and not args.json),
        )
    data = summary.as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    w, r = data["rows_written"], data["rows_replaced"]
    print(
        f"re-tagged {data['articles']} articles in {data['batches']} batch(es) "
        f"({data['elapsed_s']:.1f}s)"
    )
    for kind in ("entities", "topics"):
        if kind in r:
            print(f"  {kind:<9} {r[kind]} rows replaced by {w[kind]}")
    if w["skipped"] or w["failed"]:
        print(f"  {w['skipped']} skipped, {w['failed']} failed (see article_tagging)")
    return 0


def _article_id(store: Store, ref: str) -> str:
    from newsflow.fetching.urls import article_id, canonicalize

    if re.fullmatch(r"[0-9a-f]{32}", ref):
        return ref
    try:
        aid = article_id(canonicalize(ref))
    except InvalidURL:
        raise UsageError(f"{ref!r} is neither an article_id nor an article URL") from None
    if store.article(aid) is None:
        raise UsageError(f"no stored article has the URL {ref}")
    return aid


def cmd_extract(args) -> int:
    from newsflow.run.extract_one import ExtractError, extract

    settings = _settings(args)
    try:
        art = extract(args.target, settings, tag=not args.no_tag)
    except ExtractError as exc:
        print(f"newsflow: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(art, default=json_default, ensure_ascii=False, indent=2))
        return 0 if art["extraction_status"] == "ok" else 1
    fields = ["url", "final_url", "title", "authors", "published_at", "language", "site_name",
              "description", "top_image", "keywords", "word_count", "extraction_status",
              "extraction_error"]  # fmt: skip
    width = max(map(len, fields))
    for name in fields:
        value = art.get(name)
        if value in (None, [], ""):
            continue
        shown = ", ".join(value) if isinstance(value, list) else value
        print(f"{name:<{width}}  {shown}")
    if art["entities"]:
        names = [f"{e['entity']} ({e['label']}, {e['mentions']})" for e in art["entities"][:25]]
        print(f"{'entities':<{width}}  " + "; ".join(names))
    if art["topics"]:
        topics = [f"{t['topic']} ({t['score']:.2f})" for t in art["topics"]]
        print(f"{'topics':<{width}}  " + "; ".join(topics))
    if art["text"]:
        print()
        print(art["text"])
    return 0 if art["extraction_status"] == "ok" else 1


def cmd_tags(args) -> int:
    with _open(args, read_only=True) as store:
        aid = _article_id(store, args.article)
        art = store.article(aid)
        if art is None:
            raise UsageError(f"no stored article has the article_id {aid}")
        tags = store.article_tags(aid)
    if args.format == "json" and not args.explain:  # one document, for jq and json.load
        document = {
            "article_id": aid,
            "url": art["url"],
            "title": art["title"],
            "language": art["language"],
            **{kind: [dict(zip(c, r)) for r in rows] for kind, (c, rows) in tags.items()},
        }
        print(json.dumps(document, indent=1, default=json_default))
        return 0
    print(f"{art['title'] or '(no title)'}\n{art['url']}  [{aid}, language {art['language']}]")
    for heading, kind in (
        ("entities", "entities"),
        ("topics", "topics"),
        ("publisher categories", "categories"),
        ("tagging", "tagging"),
    ):
        cols, rows = tags[kind]
        print(f"\n{heading}")
        print(render(cols, rows, args.format) if rows else "  (none)")
    if args.explain:
        from types import SimpleNamespace

        from newsflow.enrich.tag import load_classifier
        from newsflow.enrich.topics import TopicInput, explain

        settings = _settings(args)
        classifier = load_classifier(settings.topic_classifier, settings.topic_threshold)
        ecols, erows = tags["entities"]
        doc = TopicInput(
            art["title"] or "",
            art["text"] or "",
            art["language"],
            [SimpleNamespace(**dict(zip(ecols, r))) for r in erows],
            list(art["feed_categories"] or []),
        )
        why = explain(classifier, doc)
        print(f"\nwhy ({why.classifier}{': ' + why.rule if why.rule else ''})")
        for kept, sc in why.scores:
            cues = ", ".join(f"{cue} {weight:g}" for cue, weight in sc.evidence[:10])
            print(f" {'*' if kept else ' '} {sc.score:.3f}  {sc.topic}: {cues}")
    return 0


def cmd_report(args) -> int:
    from newsflow.analysis.report import write_report

    if args.days < 1:
        raise UsageError(f"--days must be at least 1, got {args.days}")
    as_of = _parse_since(args.as_of, "--as-of")
    with _open(args, read_only=True) as store:
        if as_of is None:
            # The period ends with the newest article, so a store that stopped ingesting
            # still gets a report of its last days.
            as_of = store.newest_article_time()
        summary = write_report(store.con, Path(args.output), days=args.days, now=as_of)
    period = summary.get("period") or {}
    print(
        f"report written to {args.output} ({summary['bytes']:,} bytes, self-contained): "
        f"{summary.get('articles', 0)} articles, {period.get('start')} to {period.get('end')}"
    )
    return 0


def cmd_maintain(args) -> int:
    from datetime import timedelta

    from newsflow.run import tasks

    settings = _settings(args)
    if args.silence_hours is not None:
        if args.silence_hours <= 0:
            raise UsageError(f"--silence-hours must be positive, got {args.silence_hours}")
        settings = replace(settings, feed_silence_hours=args.silence_hours)
    lake = _existing_database(settings)
    settings = replace(settings, catalog=lake.catalog, data_path=lake.data_path)
    retention = None
    if args.retention_days is not None:
        if args.retention_days < 0:
            raise UsageError(f"--retention-days must not be negative, got {args.retention_days}")
        retention = timedelta(days=args.retention_days)
    print(f"retention  {tasks.remove_stale_runs(settings, retention).summary()}")
    print(f"entities   {tasks.resolve_entities(settings).summary()}")
    print(f"search     {tasks.rebuild_search(settings).summary()}")
    print(f"lake       {tasks.tidy_lake(settings).summary()}")
    report = tasks.feed_health(settings)
    print("feeds      " + report.describe())
    return 0 if report.healthy else 3


def cmd_search(args) -> int:
    from newsflow.db.search import SearchUnavailable, search, unindexed_articles

    since = _parse_since(args.since)
    if args.limit <= 0:
        raise UsageError(f"--limit must be positive, got {args.limit}")
    if args.rebuild:
        settings = _settings(args)
        with Store(_existing_database(settings)) as store:
            seconds = store.refresh_search_index()
        print(f"search index rebuilt in {seconds:.2f}s", file=sys.stderr)
    with _open(args, read_only=True) as store:
        try:
            hits = search(store.con, args.query, since=since, entity=args.entity, limit=args.limit)
            unindexed = unindexed_articles(store.con)
        except SearchUnavailable as exc:
            raise StoreError(str(exc)) from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.format != "table":
        cols = ["score", "published_at", "feed", "title", "url", "snippet", "article_id"]
        rows = [(round(h.score, 3), h.published_at, h.feed, h.title, h.url, h.snippet,
                 h.article_id) for h in hits]  # fmt: skip
        print(render(cols, rows, args.format))
        return 0
    if unindexed:
        print(
            f"newsflow: {unindexed} article(s) loaded since the index was built are not searched"
            " (newsflow search --rebuild, or the daily maintenance, adds them)",
            file=sys.stderr,
        )
    if not hits:
        print(f"no article matches {args.query!r}")
    for rank, h in enumerate(hits, 1):
        when = h.published_at.strftime("%Y-%m-%d %H:%M") if h.published_at else "undated"
        print(f"{rank:>2}. [{h.score:.2f}] {h.title or '(no title)'}")
        print(f"    {when}  {h.feed or ''}  {h.url}")
        print(f"    {h.snippet}\n")
    return 0


def cmd_export(args) -> int:
    from newsflow.db.export import export

    since = _parse_since(args.since)
    with _open(args, read_only=True) as store:
        written = export(store.con, Path(args.out_dir), args.format, since)
    for table, rows in written.items():
        print(f"{table:<19} {rows:>8} rows")
    print(f"written to {args.out_dir} ({args.format}, one folder per day: day=YYYY-MM-DD)")
    return 0


def _previous_demo_port(lake: LakeLocation) -> int:
    if not store_exists(lake):
        return 0
    try:
        with Store(lake, read_only=True, lock_wait=0) as store:
            row = store.named("demo/newsroom_url")[1]
    except StoreError:
        return 0
    m = re.match(r"http://127\.0\.0\.1:(\d+)/", row[0][0]) if row else None
    return int(m.group(1)) if m else 0


DEMO_DB_NAME = "demo.sqlite"
# What `newsflow demo` shows at the end: sql/demo/<name>.sql, run and printed with its SQL.
DEMO_SHOWS = ("latest_articles", "top_entities")


def _shown(catalog: str) -> str:
    """A catalog's path as a user would type it: relative to the current folder when inside."""
    path = Path(catalog)
    try:
        return str(path.relative_to(Path.cwd())) if path.is_absolute() else catalog
    except ValueError:
        return catalog


def cmd_demo(args) -> int:
    from newsflow.demo.newsroom import Newsroom
    from newsflow.run.cycle import run_cycle

    base = _settings(args)
    settings = replace(
        base,
        catalog=args.db or str(base.data_dir / DEMO_DB_NAME),
        allow_private=True,  # the sample newsroom lives on 127.0.0.1
        per_host_delay=0.0,  # and it is our own server, so no politeness pause
        per_host_concurrency=8,
    )
    port = args.port or _previous_demo_port(settings.lake)
    try:
        newsroom = Newsroom(port=port)
    except OSError:
        newsroom = Newsroom(port=0)
    print(f"sample newsroom serving {len(newsroom.feeds)} feeds at {newsroom.base_url}")
    with newsroom, Store(settings.lake) as store:
        summary = run_cycle(
            settings,
            store,
            feeds=newsroom.feeds,
            trigger="demo",
            include_not_due=True,
            progress=ProgressLine(sys.stderr.isatty()),
        )
        print(f"ingested into {_shown(settings.database)}")
        print(summary_text(summary.as_dict()))
        shown = [(queries.text(f"demo/{n}").strip(), store.named(f"demo/{n}")) for n in DEMO_SHOWS]
    for sql, (cols, rows) in shown:
        print(f'\n$ newsflow sql --catalog {_shown(settings.database)} "{sql}"')
        print(format_table(cols, rows))
    return 0


def cmd_migrate(args) -> int:
    settings = _settings(args)
    lake = settings.lake
    with Store(lake, lock_wait=settings.load_lock_wait) as store:
        counts = store.migrate_from_file(args.source)
    print(f"copied {args.source} into the lake {lake.catalog} (data files in {lake.data_path}):")
    print(format_table(["table", "rows in the file", "rows in the lake"], counts))
    print("row counts verified; the search index is rebuilt. The file was not changed.")
    return 0


def cmd_newsroom(args) -> int:
    from newsflow.demo.newsroom import Newsroom

    try:
        newsroom = Newsroom(port=args.port)
    except OSError as exc:
        raise UsageError(f"newsroom: cannot listen on 127.0.0.1:{args.port}: {exc}") from None
    with newsroom:
        print(f"sample newsroom at {newsroom.base_url} (Ctrl-C stops it)", flush=True)
        for feed in newsroom.feeds:
            print(f"  {feed.url}  {feed.name}", flush=True)
        if args.feeds_out:
            Path(args.feeds_out).write_text(
                to_yaml(
                    [
                        {"url": f.url, "title": f.name, "tags": f.tags, "language": f.language}
                        for f in newsroom.feeds
                    ]
                ),
                encoding="utf-8",
            )
            print(f"feed list written to {args.feeds_out}", flush=True)
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        try:
            while not stop:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0
