"""The ``newsflow`` command line: a thin edge over the library.

Exit codes: 0 done (feeds that failed are recorded, not fatal), 2 bad input (the message names
the file, entry or setting), 1 a systemic fault (database unusable, unexpected error), 3 from
``maintain`` when feeds that used to work have gone silent.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from newsflow import __version__
from newsflow.config import ConfigError, Settings, load_settings
from newsflow.db.store import Store, StoreError
from newsflow.enrich.entities import ModelNotInstalled
from newsflow.fetching.feedlist import FeedFileError, FeedSpec, load_feed_file, to_opml, to_yaml
from newsflow.fetching.urls import InvalidURL, validate_http_url

LOGGER = logging.getLogger("newsflow")


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


# -- output helpers ---------------------------------------------------------------------------


def _cell(value, width: int | None = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, list | tuple):
        text = ", ".join(map(str, value))
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    text = text.replace("\n", " ").replace("\r", " ")
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def format_table(columns: list[str], rows: list[tuple]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, r)) for r in rows], default=_json_default, indent=1)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v, width=None) for v in row])
        return buf.getvalue().rstrip("\n")
    return format_table(columns, rows)


class ProgressLine:
    """A one-line progress display on a terminal; silent elsewhere."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        label = {
            "poll": "polling feeds",
            "fetch": "fetching articles",
            "tag": "tagging batches",
            "retag": "re-tagging articles",
        }.get(stage, stage)
        sys.stderr.write(f"\r\033[K{label}: {done}/{total}")
        if done == total:
            sys.stderr.write("\r\033[K")
        sys.stderr.flush()


# -- commands ---------------------------------------------------------------------------------


def _settings(args) -> Settings:
    settings = load_settings()
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "db", None):
        overrides["db_path"] = Path(args.db)
    if getattr(args, "allow_private", False):
        overrides["allow_private"] = True
    if getattr(args, "no_tag", False):
        overrides["tagging"] = False
    return settings.with_overrides(**overrides)


def _existing_database(settings: Settings) -> Path:
    """The database a command over stored articles works on; it must exist."""
    path = settings.database
    demo = settings.data_dir / DEMO_DB_NAME
    if settings.db_path is None and not path.exists() and demo.exists():
        # Right after `make demo` the only database is the demo's: use that one, and say so.
        print(f"newsflow: using {demo} (no {path} yet; --db chooses)", file=sys.stderr)
        return demo
    if not path.exists():
        raise StoreError(f"no database at {path}; run `newsflow ingest` to create it")
    return path


def _open(args, read_only: bool = False) -> Store:
    settings = _settings(args)
    if read_only:
        return Store(_existing_database(settings), read_only=True)
    return Store(settings.database)


def summary_text(s: dict) -> str:
    f, a = s["feeds"], s["articles"]
    lines = [f"run {s['run_id']}  ({s['elapsed_s']:.1f}s)"]
    if s["resumed_runs"]:
        lines.append(f"  resumed   {len(s['resumed_runs'])} interrupted run(s) and loaded them")
    if s["feeds_registered"]:
        lines.append(f"  registry  {s['feeds_registered']} new feed(s) registered")
    lines.append(
        f"  feeds     {f['feeds']} polled: {f['ok']} ok, {f['not_modified']} not modified, "
        f"{f['failed']} failed"
    )
    lines.append(f"  items     {f['items_new']} new of {f['items_seen']} seen")
    lines.append(
        f"  articles  {s['articles_loaded']} loaded: {a['ok']} extracted, "
        f"{a['feed_content']} from feed content, {a['failed']} failed"
    )
    if s.get("articles_upgraded"):
        lines.append(
            f"  upgraded  {s['articles_upgraded']} stored article(s) whose page came at a later "
            "attempt (same article_id)"
        )
    if a.get("pages_pending") or a.get("pages_retry") or s.get("pages_requeued"):
        lines.append(
            f"  frontier  {s.get('pages_requeued', 0)} page(s) from the queue; "
            f"{a.get('pages_pending', 0)} left pending by the fetch budget, "
            f"{a.get('pages_retry', 0)} to retry; longest queue wait {a.get('max_queued_s', 0)}s"
        )
    for host in s.get("pages_waiting") or []:
        retry = (
            f", {host['retrying']} retrying (next {host['next_retry_at']:%Y-%m-%d %H:%M})"
            if host["retrying"]
            else ""
        )
        lines.append(f"  waiting   {host['host']}: {host['pending']} pending{retry}")
    t = s.get("tagging") or {}
    if t.get("articles"):
        problems = [f"{t[k]} {k}" for k in ("skipped", "failed") if t[k]]
        lines.append(
            f"  tags      {t['entities']} entities, {t['topics']} topics for {t['articles']} "
            f"articles" + (f" ({', '.join(problems)}; see article_tagging)" if problems else "")
        )
    timings = s.get("timings") or {}
    if any(t["wall_s"] >= 0.05 for t in timings.values()):
        steps = ", ".join(
            f"{n} {t['wall_s']:.1f}s" for n, t in timings.items() if t["wall_s"] >= 0.05
        )
        cpu = sum(t["cpu_s"] for t in timings.values())
        lines.append(f"  time      {steps}; {cpu:.1f}s of CPU in all")
    if s["articles_loaded"] == 0 and not s["resumed_runs"] and not s.get("articles_upgraded"):
        lines.append("  nothing new since the last run")
    for failure in s["failed_feeds"]:
        lines.append(f"  failed    {failure['url']}: {failure['outcome']} {failure['error'] or ''}")
    return "\n".join(lines)


def cmd_ingest(args) -> int:
    from newsflow.run.cycle import run_cycle

    settings = _settings(args)
    feeds_file = args.feeds or settings.feeds_file
    # Validate the feed list before the database is even opened.
    feeds = load_feed_file(feeds_file) if feeds_file else None
    with Store(settings.database) as store:
        summary = run_cycle(
            settings,
            store,
            feeds=feeds,
            trigger="cli",
            include_not_due=args.all,
            progress=ProgressLine(sys.stderr.isatty() and not args.json),
        )
    data = summary.as_dict()
    print(json.dumps(data, indent=1, default=_json_default) if args.json else summary_text(data))
    return 0


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
        print(render(cols, [tuple(f[c] for c in cols) for f in feeds], args.format))
        return 0
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
            cols, rows = store.query(query, params or None)
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
    print(render(rcols, [tuple(r[c] for c in rcols) for r in runs], args.format))
    return 0


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {value!r} is not a date or time (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)"
        ) from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)


def cmd_retag(args) -> int:
    from newsflow.enrich.tag import kinds_for, load_classifier, retag

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
    found = store.rows("select article_id from articles where article_id = ?", [aid])
    if not found:
        raise UsageError(f"no stored article has the URL {ref}")
    return aid


def cmd_tags(args) -> int:
    with _open(args, read_only=True) as store:
        aid = _article_id(store, args.article)
        art = store.rows(
            "select article_id, title, text, language, feed_categories, url from articles"
            " where article_id = ?",
            [aid],
        )
        if not art:
            raise UsageError(f"no stored article has the article_id {aid}")
        art = art[0]
        ecols, erows = store.query(
            "select entity, label, mentions, salience, in_title, first_offset, tagger"
            " from article_entities where article_id = ? order by salience desc, entity",
            [aid],
        )
        tcols, trows = store.query(
            "select topic_code, topic, score, evidence, tagger from article_topics"
            " where article_id = ? order by score desc",
            [aid],
        )
        ccols, crows = store.query(
            "select category, topic_code, topic from article_categories where article_id = ?",
            [aid],
        )
        scols, srows = store.query(
            "select kind, tagger, status, reason, items, tagged_at from article_tagging"
            " where article_id = ? order by kind",
            [aid],
        )
        stored_entities = store.rows(
            "select entity, label from article_entities where article_id = ?", [aid]
        )
    print(f"{art['title'] or '(no title)'}\n{art['url']}  [{aid}, language {art['language']}]")
    for heading, cols, rows in (
        ("entities", ecols, erows),
        ("topics", tcols, trows),
        ("publisher categories", ccols, crows),
        ("tagging", scols, srows),
    ):
        print(f"\n{heading}")
        print(render(cols, rows, args.format) if rows else "  (none)")
    if args.explain:
        from types import SimpleNamespace

        from newsflow.enrich.tag import load_classifier
        from newsflow.enrich.topics import LexiconClassifier, TopicInput

        settings = _settings(args)
        classifier = load_classifier(settings.topic_classifier, settings.topic_threshold)
        doc = TopicInput(
            art["title"] or "",
            art["text"] or "",
            art["language"],
            [SimpleNamespace(**e) for e in stored_entities],
            list(art["feed_categories"] or []),
        )
        kept = classifier.classify(doc)
        kept_codes = {s.code for s in kept}
        rule = (
            f": keeps scores >= {classifier.threshold} and >= {classifier.relative} x the best,"
            f" at most {classifier.max_topics}"
            if isinstance(classifier, LexiconClassifier)
            else ""
        )
        print(f"\nwhy ({classifier.name}/{classifier.version}{rule})")
        scores = classifier.scores(doc) if hasattr(classifier, "scores") else kept
        for sc in scores:
            cues = ", ".join(f"{cue} {weight:g}" for cue, weight in sc.evidence[:10])
            mark = "*" if sc.code in kept_codes else " "
            print(f" {mark} {sc.score:.3f}  {sc.topic}: {cues}")
    return 0


def cmd_report(args) -> int:
    from newsflow.analysis.report import write_report

    if args.days < 1:
        raise UsageError(f"--days must be at least 1, got {args.days}")
    as_of = _parse_since(args.as_of)
    with _open(args, read_only=True) as store:
        if as_of is None:
            # The period ends with the newest article, so a store that stopped ingesting
            # still gets a report of its last days.
            as_of = store.query(
                "select max(coalesce(published_at, first_seen_at)) from articles"
                " where coalesce(published_at, first_seen_at) <= now()"
            )[1][0][0]
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
    settings = replace(settings, db_path=_existing_database(settings))
    retention = None
    if args.retention_days is not None:
        if args.retention_days < 0:
            raise UsageError(f"--retention-days must not be negative, got {args.retention_days}")
        retention = timedelta(days=args.retention_days)
    removed = tasks.remove_stale_runs(settings, retention)
    print(
        f"retention  removed {removed['removed']} staged run folder(s), kept {removed['kept']}"
        " still to load"
    )
    indexed = tasks.rebuild_search(settings)
    print(f"search     {indexed.get('skipped') or str(indexed['articles']) + ' articles indexed'}")
    size = tasks.checkpoint(settings)
    print(f"checkpoint {size['database']}: {size['bytes']:,} bytes")
    report = tasks.feed_health(settings)
    if report["silent_feeds"]:
        print("feeds      " + tasks.describe_silent(report))
        return 3
    print(f"feeds      all {report['active_feeds']} active feeds healthy")
    return 0


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
    from newsflow.analysis.export import export

    since = _parse_since(args.since)
    with _open(args, read_only=True) as store:
        written = export(store.con, Path(args.out_dir), args.format, since)
    for table, rows in written.items():
        print(f"{table:<19} {rows:>8} rows")
    print(f"written to {args.out_dir} ({args.format}, one folder per day: day=YYYY-MM-DD)")
    return 0


def _previous_demo_port(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        with Store(db_path, read_only=True, lock_wait=0) as store:
            row = store.query(
                "select url from feeds where active and list_contains(tags, 'demo') limit 1"
            )[1]
    except StoreError:
        return 0
    m = re.match(r"http://127\.0\.0\.1:(\d+)/", row[0][0]) if row else None
    return int(m.group(1)) if m else 0


DEMO_DB_NAME = "demo.duckdb"
DEMO_QUERY = """\
select strftime(a.published_at, '%Y-%m-%d %H:%M') as published, f.title as feed,
       a.title, a.word_count as words
from articles a join feeds f using (feed_id)
order by a.published_at desc nulls last limit 8"""
DEMO_ENTITIES_QUERY = """\
select entity, label, count(*) as articles from article_entities
group by all order by articles desc, entity limit 12"""


def cmd_demo(args) -> int:
    from newsflow.demo.newsroom import Newsroom
    from newsflow.run.cycle import run_cycle

    base = _settings(args)
    settings = replace(
        base,
        db_path=Path(args.db) if args.db else base.data_dir / DEMO_DB_NAME,
        allow_private=True,  # the sample newsroom lives on 127.0.0.1
        per_host_delay=0.0,  # and it is our own server, so no politeness pause
        per_host_concurrency=8,
    )
    port = args.port or _previous_demo_port(settings.database)
    try:
        newsroom = Newsroom(port=port)
    except OSError:
        newsroom = Newsroom(port=0)
    print(f"sample newsroom serving {len(newsroom.feeds)} feeds at {newsroom.base_url}")
    with newsroom, Store(settings.database) as store:
        summary = run_cycle(
            settings,
            store,
            feeds=newsroom.feeds,
            trigger="demo",
            include_not_due=True,
            progress=ProgressLine(sys.stderr.isatty()),
        )
        print(f"ingested into {settings.database}")
        print(summary_text(summary.as_dict()))
        cols, rows = store.query(DEMO_QUERY)
        ecols, erows = store.query(DEMO_ENTITIES_QUERY)
    print(f'\n$ newsflow sql --db {settings.database} "{DEMO_QUERY}"')
    print(format_table(cols, rows))
    print(f'\n$ newsflow sql --db {settings.database} "{DEMO_ENTITIES_QUERY}"')
    print(format_table(ecols, erows))
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


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsflow",
        description="News feeds to a queryable DuckDB database.",
        epilog="Settings also come from NEWSFLOW_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"newsflow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def db_args(p):
        p.add_argument(
            "--db",
            metavar="PATH",
            help="DuckDB file (default $NEWSFLOW_DB or <data-dir>/newsflow.duckdb)",
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
    p.add_argument("query", help="words to look for")
    p.add_argument("--since", metavar="DATE", help="only articles published since DATE")
    p.add_argument("--entity", metavar="NAME", help="only articles that name this entity")
    p.add_argument("--limit", type=int, default=10, metavar="N")
    p.add_argument("--rebuild", action="store_true", help="rebuild the index first")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="write the public tables as Parquet or CSV, by day")
    db_args(p)
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    p.add_argument("--since", metavar="DATE", help="only days from DATE on")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="a self-contained HTML page of charts")
    db_args(p)
    p.add_argument("--days", type=int, default=14, metavar="N", help="period length (14)")
    p.add_argument("-o", "--output", default="report.html", metavar="FILE")
    p.add_argument(
        "--as-of", metavar="DATE", help="end of the period (default: the newest article)"
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "maintain", help="retention of staged files, CHECKPOINT, and the feed-health check"
    )
    db_args(p)
    p.add_argument("--retention-days", type=float, metavar="N", help="default: setting (7)")
    p.add_argument("--silence-hours", type=float, metavar="H", help="default: setting (48)")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("tags", help="an article's entities, topics and tagging status")
    db_args(p)
    p.add_argument("article", help="article_id or the article's URL")
    p.add_argument(
        "--explain", action="store_true", help="show every topic's score and the cues behind it"
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_tags)

    p = sub.add_parser("feeds", help="manage the feed registry")
    fsub = p.add_subparsers(dest="feeds_action", metavar="ACTION")
    q = fsub.add_parser("list", help="list registered feeds")
    db_args(q)
    q.add_argument("--all", action="store_true", help="include removed feeds")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table")
    q = fsub.add_parser("add", help="register one feed")
    db_args(q)
    q.add_argument("url")
    q.add_argument("--name")
    q.add_argument("--tag", action="append", help="a tag (repeatable)")
    q.add_argument("--language", help="language code, e.g. en")
    q = fsub.add_parser("remove", help="stop polling a feed (its articles stay)")
    db_args(q)
    q.add_argument("url")
    q = fsub.add_parser("import", help="register the feeds of a YAML or OPML file")
    db_args(q)
    q.add_argument("file", type=Path)
    q = fsub.add_parser("export", help="write the registry as YAML or OPML")
    db_args(q)
    q.add_argument("--format", choices=["yaml", "opml"], default="yaml")
    q.add_argument("-o", "--output", metavar="FILE")
    p.set_defaults(func=cmd_feeds, feeds_action=None)

    p = sub.add_parser("sql", help="run read-only SQL against the database")
    db_args(p)
    p.add_argument("query", nargs="?", help="SQL text")
    p.add_argument("-f", "--file", metavar="FILE", help="read the SQL from a file")
    p.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="bind $KEY in the query (repeatable)"
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("status", help="feed health and the last runs")
    db_args(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("demo", help="ingest the bundled sample newsroom into data/demo.duckdb")
    db_args(p)
    p.add_argument("--port", type=int, default=0, help="newsroom port (default: a free one)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("newsroom", help="serve the sample newsroom on 127.0.0.1 in the foreground")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--feeds-out", metavar="FILE", help="also write its feed list (YAML) here")
    p.set_defaults(func=cmd_newsroom)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "feeds" and not args.feeds_action:
        parser.parse_args(["feeds", "--help"])
    try:
        return args.func(args)
    except (UsageError, FeedFileError, ConfigError, InvalidURL, ModelNotInstalled) as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a systemic fault: say what it was; -v shows where
        LOGGER.debug("unexpected error", exc_info=True)
        print(f"newsflow: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not args.verbose:
            print("newsflow: run with -v for the traceback", file=sys.stderr)
        else:
            LOGGER.error("traceback", exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
